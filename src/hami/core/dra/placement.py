"""Pure: DRA state in the extender's terms, so the web UI, ``hami sim`` and the scheduler's
metrics show DRA devices and allocations next to extender ones (docs/dra.md).

A published device becomes a :class:`~hami.core.model.Device` (vendor ``NVIDIA``, mode
:data:`MODE`, memory in MiB, cores 100); a pod's allocated claims become a
:class:`~hami.core.accounting.PlacedPod` whose containers hold the claims they reference, each
device result one :class:`~hami.api.types.ContainerDevice` carrying its ``consumedCapacity``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hami.api.types import ContainerDevice
from hami.core.accounting import PlacedPod
from hami.core.cluster import NodeState
from hami.core.dra import names, records
from hami.core.model import Device, DeviceUsage, Node

Manifest = Mapping[str, Any]

VENDOR = "NVIDIA"  # the vendor key DRA devices are shown and accounted under
MODE = "dra"  # Device.mode of a DRA device (the extender never places on one)
SLOTS = 100  # shown as the device's slots: many claims share a GPU (allowMultipleAllocations)


def _attr(attrs: Mapping[str, Any], key: str) -> Any:
    value = attrs.get(key) or {}
    for kind in ("string", "int", "bool", "version"):
        if kind in value:
            return value[kind]
    return None


def _int(raw: object, default: int = 0) -> int:
    try:
        return int(raw)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return default


def uuid_of(node: str, device: str, attrs: Mapping[str, Any] | None = None) -> str:
    """The device's ``uuid`` attribute, else ``<node>/<device>`` (unique in the cluster)."""
    uuid = _attr(attrs or {}, names.ATTR_UUID)
    return str(uuid) if uuid else f"{node}/{device}"


def devices(
    slices: Iterable[Manifest], driver: str = names.DRIVER
) -> dict[str, tuple[Device, ...]]:
    """Node (pool) → its published devices, by minor."""
    found: dict[str, list[Device]] = {}
    for item in slices:
        spec = item.get("spec") or {}
        if spec.get("driver") != driver:
            continue
        node = str(spec.get("nodeName") or (spec.get("pool") or {}).get("name", ""))
        capacity = records.capacities([item], driver)
        pool = str((spec.get("pool") or {}).get("name", ""))
        for raw in spec.get("devices") or []:
            name = str(raw.get("name", ""))
            attrs = raw.get("attributes") or {}
            have = capacity.get((pool, name), records.Usage())
            found.setdefault(node, []).append(
                Device(
                    uuid=uuid_of(pool, name, attrs),
                    vendor=VENDOR,
                    type=str(_attr(attrs, names.ATTR_PRODUCT) or names.DEVICE_TYPE),
                    count=SLOTS,
                    memory=have.memory_bytes // names.MIB,
                    cores=have.cores,
                    index=_int(_attr(attrs, names.ATTR_MINOR)),
                    numa=_int(_attr(attrs, names.ATTR_NUMA)),
                    mode=MODE,
                )
            )
    return {node: tuple(sorted(ds, key=lambda d: d.index)) for node, ds in found.items()}


def uuids(slices: Iterable[Manifest], driver: str = names.DRIVER) -> dict[records.DeviceKey, str]:
    """(pool, device) → the UUID :func:`devices` gives it."""
    return {
        (pool, str(raw.get("name", ""))): uuid_of(
            pool, str(raw.get("name", "")), raw.get("attributes") or {}
        )
        for pool, raw in records.published(slices, driver)
    }


def containers(pod: Manifest) -> list[tuple[str, list[str]]]:
    """(container name, the pod claim names it references), init containers first."""
    spec = pod.get("spec") or {}
    out = []
    for group in ("initContainers", "containers"):
        for c in spec.get(group) or []:
            refs = ((c.get("resources") or {}).get("claims")) or []
            out.append((str(c.get("name", "")), [str(r.get("name")) for r in refs]))
    return out


def placed_pod(
    pod: Manifest,
    by_claim: Mapping[tuple[str, str], Sequence[records.Allocation]],
    uuid_at: Mapping[records.DeviceKey, str],
) -> PlacedPod | None:
    """The pod's DRA allocation as a placed pod (None: no allocated claim of the driver).
    ``by_claim``: (namespace, claim name) → its allocations (:func:`by_claim`)."""
    meta = pod.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    wanted = records.claim_names(pod)
    per_container: list[tuple[ContainerDevice, ...]] = []
    node = ""
    spec = pod.get("spec") or {}
    inits = len(spec.get("initContainers") or [])
    for _, refs in containers(pod):
        held = []
        for ref in refs:
            for a in by_claim.get((namespace, wanted.get(ref, "")), ()):
                node = node or a.node
                uuid = uuid_at.get(a.key) or f"{a.node}/{a.device}"
                held.append(ContainerDevice(uuid, names.DEVICE_TYPE, a.memory_mib, a.cores))
        per_container.append(tuple(held))
    if not node:
        return None
    key = f"{namespace}/{meta.get('name', '')}"
    return PlacedPod(key, node, {VENDOR: tuple(per_container)}, init_count=inits)


def by_claim(
    allocated: Iterable[records.Allocation],
) -> dict[tuple[str, str], list[records.Allocation]]:
    out: dict[tuple[str, str], list[records.Allocation]] = {}
    for a in allocated:
        out.setdefault((a.namespace, a.claim), []).append(a)
    return out


def placed_pods(
    pods: Iterable[Manifest], claims: Iterable[Manifest], slices: Sequence[Manifest]
) -> dict[str, PlacedPod]:
    """``namespace/name`` → placed pod, for every pod with an allocated DRA claim."""
    allocated = by_claim(records.allocations(claims))
    if not allocated:
        return {}
    uuid_at = uuids(slices)
    out = {}
    for pod in pods:
        if not (pod.get("spec") or {}).get("resourceClaims"):
            continue
        placed = placed_pod(pod, allocated, uuid_at)
        if placed is not None:
            out[placed.key] = placed
    return out


def device_usage(
    claims: Iterable[Manifest], slices: Sequence[Manifest], driver: str = names.DRIVER
) -> dict[str, DeviceUsage]:
    """Device UUID (as :func:`devices` names it) → what the claims consume of it
    (``used``: the claims on it, memory in MiB, cores)."""
    uuid_at = uuids(slices, driver)
    out = {}
    for where, use in records.usage(records.allocations(claims, driver)).items():
        uuid = uuid_at.get(where, f"{where[0]}/{where[1]}")
        out[uuid] = DeviceUsage(
            used=use.claims, usedmem=use.memory_bytes // names.MIB, usedcores=use.cores
        )
    return out


def node_states(
    claims: Iterable[Manifest], slices: Sequence[Manifest], driver: str = names.DRIVER
) -> list[NodeState]:
    """Each node's published DRA devices with what the claims consume of them, by node name."""
    used = device_usage(claims, slices, driver)
    return [
        NodeState.of(Node(node, published), [used.get(d.uuid, DeviceUsage()) for d in published])
        for node, published in sorted(devices(slices, driver).items())
    ]
