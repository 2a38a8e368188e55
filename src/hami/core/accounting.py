"""Usage accounting: what placed pods take from devices (wire-format.md §3.15, §7.3).

A pod's usage per device is collapsed: init containers run one after another before the app
containers, so a device carries max(Σ app containers, largest init container) of memory and
cores, and max(app occurrences, 1) slots.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hami.api.types import ContainerDevice, MigAllocation
from hami.core.model import EMPTY_USAGE, DeviceUsage, MigReservation, Node


@dataclass(frozen=True, slots=True)
class PlacedPod:
    """A pod already bound to (or reserved on) a node, as its annotations describe it."""

    key: str  # namespace/name
    node: str
    devices: Mapping[str, tuple[tuple[ContainerDevice, ...], ...]]  # vendor → per container
    init_count: int = 0
    init_done: bool = False  # every init container finished successfully: usage shrinks
    mig: tuple[MigAllocation, ...] = ()


def collapse(
    containers: Iterable[Sequence[ContainerDevice]],
    init_count: int,
    init_done: bool = False,
    mig: Iterable[tuple[str, MigReservation]] = (),
) -> dict[str, DeviceUsage]:
    """Per-UUID usage of one pod's containers (one vendor or all vendors flattened)."""
    app: dict[str, list[int]] = {}
    init: dict[str, list[int]] = {}
    for position, container in enumerate(containers):
        is_init = position < init_count
        if is_init and init_done:
            continue
        per_container: dict[str, list[int]] = {}
        for device in container:
            slot = per_container.setdefault(device.uuid, [0, 0, 0])
            slot[0] += 1
            slot[1] += device.usedmem
            slot[2] += device.usedcores
        target = init if is_init else app
        for uuid, (count, mem, cores) in per_container.items():
            acc = target.setdefault(uuid, [0, 0, 0])
            if is_init:
                acc[0] = 1
                acc[1] = max(acc[1], mem)
                acc[2] = max(acc[2], cores)
            else:
                acc[0] += count
                acc[1] += mem
                acc[2] += cores
    reservations: dict[str, tuple[MigReservation, ...]] = {}
    for uuid, reservation in mig:
        reservations[uuid] = (*reservations.get(uuid, ()), reservation)
    result: dict[str, DeviceUsage] = {}
    for uuid in app.keys() | init.keys():
        a = app.get(uuid, [0, 0, 0])
        i = init.get(uuid, [0, 0, 0])
        result[uuid] = DeviceUsage(
            used=max(a[0], i[0], 1),
            usedmem=max(a[1], i[1]),
            usedcores=max(a[2], i[2]),
            mig=reservations.get(uuid, ()),
        )
    return result


def pod_usage(pod: PlacedPod) -> dict[str, DeviceUsage]:
    """Collapsed usage of a placed pod over all its vendors, MIG reservations included."""
    containers = _flatten(pod.devices)
    mig = [(a.gpu_uuid, MigReservation(a.profile, a.placement)) for a in pod.mig]
    return collapse(containers, pod.init_count, pod.init_done, mig)


def _flatten(
    devices: Mapping[str, tuple[tuple[ContainerDevice, ...], ...]],
) -> list[tuple[ContainerDevice, ...]]:
    width = max((len(v) for v in devices.values()), default=0)
    merged: list[tuple[ContainerDevice, ...]] = [() for _ in range(width)]
    for per_vendor in devices.values():
        for position, container in enumerate(per_vendor):
            merged[position] = merged[position] + container
    return merged


def node_usage(
    node: Node, pods: Iterable[PlacedPod]
) -> tuple[tuple[DeviceUsage, ...], tuple[str, ...]]:
    """Usage of every device of ``node`` from the pods placed on it, and the unknown UUIDs.

    UUIDs the node does not register are reported (not applied): a stale pod must not poison
    other devices.
    """
    index = {d.uuid: i for i, d in enumerate(node.devices)}
    usage = [EMPTY_USAGE] * len(node.devices)
    unknown: list[str] = []
    for pod in pods:
        for uuid, taken in pod_usage(pod).items():
            position = index.get(uuid)
            if position is None:
                unknown.append(uuid)
                continue
            usage[position] = _add(usage[position], taken)
    return tuple(usage), tuple(unknown)


def _add(base: DeviceUsage, extra: DeviceUsage) -> DeviceUsage:
    return DeviceUsage(
        used=base.used + extra.used,
        usedmem=base.usedmem + extra.usedmem,
        usedcores=base.usedcores + extra.usedcores,
        mig=base.mig + extra.mig,
    )


def apply(
    node: Node, usage: Sequence[DeviceUsage], delta: Mapping[str, DeviceUsage]
) -> tuple[DeviceUsage, ...]:
    """Usage after adding one pod's collapsed usage."""
    return tuple(
        _add(u, delta[d.uuid]) if d.uuid in delta else u
        for d, u in zip(node.devices, usage, strict=True)
    )


def release(
    node: Node, usage: Sequence[DeviceUsage], delta: Mapping[str, DeviceUsage]
) -> tuple[DeviceUsage, ...]:
    """Usage after removing one pod's collapsed usage (never below zero)."""
    return tuple(
        u.minus(delta[d.uuid]) if d.uuid in delta else u
        for d, u in zip(node.devices, usage, strict=True)
    )
