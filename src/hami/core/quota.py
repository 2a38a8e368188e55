"""Namespace GPU quotas (wire-format.md §7.2): ResourceQuota ``spec.hard`` keys
``limits.<memory resource>`` / ``limits.<core resource>`` (e.g. ``limits.nvidia.com/gpumem``)
limit what the pods of a namespace may hold in total.

`QuotaBook` keeps the limits (fed by a ResourceQuota informer); usage is summed from the
cache's placed pods of that namespace (init/app collapse, so it matches the accounting of the
devices), so the room handed to the webhook and the filter is never stale. Several quotas in
one namespace all apply: the smallest limit wins. A limit of 0 blocks the resource.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from hami.api.errors import WireFormatError
from hami.api.quantity import parse_int_quantity
from hami.core.accounting import PlacedPod, collapse
from hami.core.config import SchedulerConfig
from hami.core.request import Manifest, mapping, pod_identity
from hami.core.vendor import QuotaRoom

LIMITS_PREFIX = "limits."

QuotaRooms = Callable[[str], Mapping[str, QuotaRoom]]  # namespace → vendor key → room


@dataclass(frozen=True, slots=True)
class QuotaSpec:
    """One vendor's quota dimensions: its memory and core resource names."""

    vendor: str
    memory: str
    cores: str
    memory_factor: int = 1


def quota_specs(config: SchedulerConfig) -> tuple[QuotaSpec, ...]:
    nvidia = config.nvidia
    return (
        QuotaSpec(
            "NVIDIA", nvidia.resource_memory_name, nvidia.resource_core_name, nvidia.memory_factor
        ),
    )


@dataclass(frozen=True, slots=True)
class Usage:
    memory: int = 0
    cores: int = 0


def pod_usage(pod: PlacedPod, vendor: str) -> Usage:
    """What one placed pod holds of ``vendor``'s devices (init/app collapsed)."""
    containers = pod.devices.get(vendor)
    if not containers:
        return Usage()
    per_device = collapse(containers, pod.init_count, pod.init_done)
    return Usage(
        sum(u.usedmem for u in per_device.values()), sum(u.usedcores for u in per_device.values())
    )


class QuotaBook:
    """Limits by namespace, from ResourceQuota objects; rooms computed against usage."""

    def __init__(self, specs: Iterable[QuotaSpec]) -> None:
        self._specs = tuple(specs)
        self._tracked = {s.memory for s in self._specs} | {s.cores for s in self._specs}
        # namespace → quota name → resource name → limit
        self._limits: dict[str, dict[str, dict[str, int]]] = {}
        self.synced = False

    # --- informer sink ------------------------------------------------------------------

    def replace(self, items: Iterable[Manifest]) -> None:
        self._limits.clear()
        for item in items:
            self.apply("ADDED", item)
        self.synced = True

    def apply(self, event: str, quota: Manifest) -> None:
        namespace, name = pod_identity(quota)
        quotas = self._limits.setdefault(namespace, {})
        limits = {} if event == "DELETED" else self._tracked_limits(quota)
        if limits:
            quotas[name] = limits
        else:
            quotas.pop(name, None)
        if not quotas:
            self._limits.pop(namespace, None)

    def _tracked_limits(self, quota: Manifest) -> dict[str, int]:
        hard = mapping(mapping(quota.get("spec")).get("hard"))
        limits = {}
        for key, raw in hard.items():
            resource = key.removeprefix(LIMITS_PREFIX)
            if key.startswith(LIMITS_PREFIX) and resource in self._tracked:
                try:
                    limits[resource] = parse_int_quantity(raw, key)
                except WireFormatError:
                    continue  # the API server validates quantities; nothing sane to enforce
        return limits

    # --- queries ------------------------------------------------------------------------

    def limited(self, namespace: str) -> bool:
        return namespace in self._limits

    def limit(self, namespace: str, resource: str) -> int | None:
        """The smallest limit on ``resource`` over the namespace's quotas (None: unlimited)."""
        found = [q[resource] for q in self._limits.get(namespace, {}).values() if resource in q]
        return min(found) if found else None

    def rooms(self, namespace: str, pods: Iterable[PlacedPod]) -> dict[str, QuotaRoom]:
        """Per vendor: how much more memory (scaled MiB) and cores the namespace may take."""
        if not self.limited(namespace):
            return {}
        held = list(pods)
        rooms = {}
        for spec in self._specs:
            memory, cores = self.limit(namespace, spec.memory), self.limit(namespace, spec.cores)
            if memory is None and cores is None:
                continue
            used = [pod_usage(p, spec.vendor) for p in held]
            factor = spec.memory_factor if spec.memory_factor > 1 else 1
            rooms[spec.vendor] = QuotaRoom(
                memory=None if memory is None else memory * factor - sum(u.memory for u in used),
                cores=None if cores is None else cores - sum(u.cores for u in used),
            )
        return rooms

    def lines(
        self, pods_of: Callable[[str], Iterable[PlacedPod]]
    ) -> list[tuple[str, str, int, int]]:
        """(namespace, resource, used, limit) for every limited resource, for metrics."""
        out = []
        for namespace in sorted(self._limits):
            held = list(pods_of(namespace))
            for spec in self._specs:
                used = [pod_usage(p, spec.vendor) for p in held]
                for resource, total in (
                    (spec.memory, sum(u.memory for u in used)),
                    (spec.cores, sum(u.cores for u in used)),
                ):
                    limit = self.limit(namespace, resource)
                    if limit is not None:
                        out.append((namespace, resource, total, limit))
        return out
