"""Pure: ResourceClaims (and ResourceSlices) → allocation records, usage per device and an
audit that no device's ``memory`` or ``cores`` is consumed beyond its capacity.

These are what ``hami sim``/``explain``/the web UI and the e2e tests read DRA allocations from:
a claim's ``status.allocation.devices.results[]`` says which device of which pool (node) serves
which request, and ``consumedCapacity`` how much of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hami.api.errors import WireFormatError
from hami.api.quantity import parse_int_quantity
from hami.core.dra import names

Manifest = Mapping[str, Any]
DeviceKey = tuple[str, str]  # (pool, device); our pools are named after their node


@dataclass(frozen=True, slots=True)
class Allocation:
    """One device of one allocated claim."""

    namespace: str
    claim: str
    claim_uid: str
    owner: str  # the pod that owns the claim ("" for a claim nobody owns)
    node: str
    device: str
    request: str
    memory_bytes: int
    cores: int
    share_id: str = ""

    @property
    def key(self) -> DeviceKey:
        return (self.node, self.device)

    @property
    def memory_mib(self) -> int:
        return self.memory_bytes // names.MIB


@dataclass(frozen=True, slots=True)
class Usage:
    memory_bytes: int = 0
    cores: int = 0
    claims: int = 0


def _quantity(raw: object, what: str) -> int:
    try:
        return parse_int_quantity(raw, what) if raw is not None else 0
    except WireFormatError:
        return 0


def _owner(meta: Manifest) -> str:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "Pod":
            return str(ref.get("name", ""))
    return ""


def allocations(claims: Iterable[Manifest], driver: str = names.DRIVER) -> list[Allocation]:
    """Every device result of ``driver`` in the claims' ``status.allocation``."""
    out = []
    for claim in claims:
        meta = claim.get("metadata") or {}
        results = (((claim.get("status") or {}).get("allocation") or {}).get("devices") or {}).get(
            "results"
        ) or []
        for result in results:
            if result.get("driver") != driver:
                continue
            consumed = result.get("consumedCapacity") or {}
            out.append(
                Allocation(
                    namespace=str(meta.get("namespace", "")),
                    claim=str(meta.get("name", "")),
                    claim_uid=str(meta.get("uid", "")),
                    owner=_owner(meta),
                    node=str(result.get("pool", "")),
                    device=str(result.get("device", "")),
                    request=str(result.get("request", "")),
                    memory_bytes=_quantity(consumed.get(names.MEMORY), "memory"),
                    cores=_quantity(consumed.get(names.CORES), "cores"),
                    share_id=str(result.get("shareID") or ""),
                )
            )
    return out


def usage(allocated: Iterable[Allocation]) -> dict[DeviceKey, Usage]:
    """What the claims consume of each device."""
    sums: dict[DeviceKey, list[int]] = defaultdict(lambda: [0, 0, 0])
    for a in allocated:
        entry = sums[a.key]
        entry[0] += a.memory_bytes
        entry[1] += a.cores
        entry[2] += 1
    return {key: Usage(*values) for key, values in sums.items()}


def published(
    slices: Iterable[Manifest], driver: str = names.DRIVER
) -> Iterator[tuple[str, Manifest]]:
    """(pool, device) of every device ``driver``'s slices publish."""
    for item in slices:
        spec = item.get("spec") or {}
        if spec.get("driver") != driver:
            continue
        pool = str((spec.get("pool") or {}).get("name", ""))
        for device in spec.get("devices") or []:
            yield pool, device


def claim_names(pod: Manifest) -> dict[str, str]:
    """A pod's claim name → its ResourceClaim's name (from the pod's status, else its spec)."""
    out = {
        str(c.get("name")): str(c.get("resourceClaimName"))
        for c in (pod.get("status") or {}).get("resourceClaimStatuses") or []
        if c.get("resourceClaimName")
    }
    for entry in (pod.get("spec") or {}).get("resourceClaims") or []:
        if entry.get("resourceClaimName"):
            out.setdefault(str(entry["name"]), str(entry["resourceClaimName"]))
    return out


def capacities(slices: Iterable[Manifest], driver: str = names.DRIVER) -> dict[DeviceKey, Usage]:
    """Each published device's capacity (``claims`` unused)."""
    out = {}
    for pool, device in published(slices, driver):
        capacity = device.get("capacity") or {}
        out[(pool, str(device.get("name")))] = Usage(
            memory_bytes=_quantity((capacity.get(names.MEMORY) or {}).get("value"), "memory"),
            cores=_quantity((capacity.get(names.CORES) or {}).get("value"), "cores"),
        )
    return out


def overcommitted(
    used: Mapping[DeviceKey, Usage], capacity: Mapping[DeviceKey, Usage]
) -> list[str]:
    """One line per device whose claims consume more ``memory`` or ``cores`` than it has, or
    that no slice publishes; empty when the audit passes."""
    problems = []
    for key, use in sorted(used.items()):
        have = capacity.get(key)
        where = f"{key[0]}/{key[1]}"
        if have is None:
            problems.append(f"{where}: allocated to {use.claims} claim(s) but not published")
            continue
        if use.memory_bytes > have.memory_bytes:
            problems.append(f"{where}: memory {use.memory_bytes} > {have.memory_bytes} bytes")
        if use.cores > have.cores:
            problems.append(f"{where}: cores {use.cores} > {have.cores}")
    return problems


def pending_reason(pod: Manifest) -> str:
    """Why kube-scheduler left a pod unscheduled (its ``PodScheduled`` condition), or ""."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return str(condition.get("message") or condition.get("reason") or "")
    return ""


def claim_requests(claim: Manifest) -> list[tuple[str, int, int, int]]:
    """(request, count, memory bytes, cores) of each ``exactly`` request of a claim's spec
    (0 where the request leaves a capacity to its default)."""
    out = []
    for request in ((claim.get("spec") or {}).get("devices") or {}).get("requests") or []:
        exactly = request.get("exactly") or {}
        wanted = (exactly.get("capacity") or {}).get("requests") or {}
        out.append(
            (
                str(request.get("name", "")),
                int(exactly.get("count") or 1),
                _quantity(wanted.get(names.MEMORY), "memory"),
                _quantity(wanted.get(names.CORES), "cores"),
            )
        )
    return out


def why_unallocatable(
    claim: Manifest, capacity: Mapping[DeviceKey, Usage], used: Mapping[DeviceKey, Usage]
) -> list[str]:
    """Capacity reasons a claim cannot be allocated now, one line per request that no set of
    devices can hold (selectors and constraints are kube-scheduler's to judge; "" lines never).
    Empty when capacity alone does not stand in the way."""
    reasons = []
    for request, count, memory, cores in claim_requests(claim):
        free = {
            key: Usage(
                have.memory_bytes - used.get(key, Usage()).memory_bytes,
                have.cores - used.get(key, Usage()).cores,
            )
            for key, have in capacity.items()
        }
        fitting = [
            key for key, room in free.items() if room.memory_bytes >= memory and room.cores >= cores
        ]
        per_node: dict[str, int] = defaultdict(int)
        for node, _ in fitting:
            per_node[node] += 1
        if max(per_node.values(), default=0) >= count:
            continue
        most_memory = max((room.memory_bytes for room in free.values()), default=0)
        most_cores = max((room.cores for room in free.values()), default=0)
        largest = max((have.memory_bytes for have in capacity.values()), default=0)
        what = f"{count} device(s) on one node" if count > 1 else "a device"
        if memory > largest:
            reasons.append(
                f"request {request}: {memory // names.MIB} MiB is more than any device has "
                f"({largest // names.MIB} MiB)"
            )
        else:
            reasons.append(
                f"request {request}: no node has {what} with {memory // names.MIB} MiB and "
                f"{cores} cores free (the most free on any device: "
                f"{most_memory // names.MIB} MiB, {most_cores} cores)"
            )
    return reasons
