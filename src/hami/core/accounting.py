"""Usage accounting: what placed pods take from devices (wire-format.md §3.15, §7.3).

A pod's usage per device is collapsed: init containers run one after another before the app
containers, so a device carries max(Σ app containers, largest init container) of memory and
cores, and max(Σ app slots, largest init slots, 1) slots. An entry takes one slot unless its
vendor says otherwise (`Pick.slots` while fitting, `Vendor.slots` when rebuilding from annotations).

A pod with a task class on a vendor's devices (`Pick.task_class` while fitting, `Vendor.task_class`
when rebuilding) counts its collapsed slots on each such device under that class
(`DeviceUsage.tasks`): the class is the pod's, so a device's classed tasks follow its slots,
init containers included (and released with them once every init container is done).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hami.api import annotations as codec
from hami.api import keys
from hami.api.types import ContainerDevice, MigAllocation
from hami.core.model import EMPTY_USAGE, DeviceUsage, MigReservation, Node, merge_tasks
from hami.core.vendor import Vendor

# The slots one recorded entry of a vendor takes: (vendor key, entry) → slots.
SlotsOf = Callable[[str, ContainerDevice], int]


@dataclass(frozen=True, slots=True)
class PlacedPod:
    """A pod already bound to (or reserved on) a node, as its annotations describe it."""

    key: str  # namespace/name
    node: str
    devices: Mapping[str, tuple[tuple[ContainerDevice, ...], ...]]  # vendor → per container
    init_count: int = 0
    init_done: bool = False  # every init container finished successfully: usage shrinks
    mig: tuple[MigAllocation, ...] = ()
    # vendor → the pod's task class on that vendor's devices (`task_classes`); empty: none
    task_classes: Mapping[str, str] = field(default_factory=dict)


def task_classes(
    annotations: Mapping[str, str], vendors: Mapping[str, Vendor], used: Iterable[str]
) -> dict[str, str]:
    """The pod's task class per vendor, for the ``used`` vendors with task classes that give
    the pod (by its ``annotations``) a non-empty class."""
    found: dict[str, str] = {}
    for key in used:
        vendor = vendors.get(key)
        task_class = vendor.task_class(annotations) if vendor is not None and vendor.classed else ""
        if task_class:
            found[key] = task_class
    return found


def placed_pod(
    key: str,
    node: str,
    annotations: Mapping[str, str],
    vendors: Mapping[str, Vendor],
    init_count: int,
    init_done: bool = False,
) -> PlacedPod | None:
    """A pod's allocation from its annotations (None when it holds no device): the one reading
    behind the scheduler's cache, `hami sim`'s placed pods and the web UI.

    ``annotations`` are the pod's own, allocation included: a `TaskClassVendor` reads the
    pod's task class from them (`PlacedPod.task_classes`).

    Raises WireFormatError for a malformed allocation annotation.
    """
    devices = {}
    for vendor in vendors.values():
        found = vendor.allocated_devices(annotations)
        if found is not None and any(found):
            devices[vendor.key] = found
    if not devices:
        return None
    mig_value = annotations.get(keys.MIG_ALLOCATIONS)
    mig = codec.decode_mig_allocations(mig_value) if mig_value else ()
    return PlacedPod(
        key=key,
        node=node,
        devices=devices,
        init_count=init_count,
        init_done=init_done,
        mig=mig,
        task_classes=task_classes(annotations, vendors, devices),
    )


def _one_each(container: Sequence[ContainerDevice]) -> Iterable[tuple[ContainerDevice, int]]:
    return ((device, 1) for device in container)


def collapse(
    containers: Iterable[Sequence[ContainerDevice]],
    init_count: int,
    init_done: bool = False,
    mig: Iterable[tuple[str, MigReservation]] = (),
    slots: Iterable[Sequence[int]] | None = None,
    classes: Mapping[str, str] | None = None,
) -> dict[str, DeviceUsage]:
    """Per-UUID usage of one pod's containers (one vendor or all vendors flattened).

    ``slots``, when given, runs parallel to ``containers``: the slots each entry takes (default
    1 each). An app container adds its entries' slots; an init container holds the largest slot
    count among its entries on a device (1 for ordinary entries: HAMi counts it once, §7.3).
    ``classes`` (UUID → the pod's task class there) counts the device's collapsed slots under
    that class in `DeviceUsage.tasks`.
    """
    app: dict[str, list[int]] = {}
    init: dict[str, list[int]] = {}
    sizes_of = iter(slots) if slots is not None else None
    for position, container in enumerate(containers):
        sizes = next(sizes_of) if sizes_of is not None else None
        is_init = position < init_count
        if is_init and init_done:
            continue
        per_container: dict[str, list[int]] = {}  # uuid → [slots, mem, cores, largest entry]
        entries = zip(container, sizes, strict=True) if sizes is not None else _one_each(container)
        for device, size in entries:
            slot = per_container.setdefault(device.uuid, [0, 0, 0, size])
            slot[0] += size
            slot[1] += device.usedmem
            slot[2] += device.usedcores
            slot[3] = max(slot[3], size)
        target = init if is_init else app
        for uuid, (count, mem, cores, peak) in per_container.items():
            acc = target.setdefault(uuid, [0, 0, 0])
            if is_init:
                acc[0] = max(acc[0], peak)
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
        used = max(a[0], i[0], 1)
        task_class = classes.get(uuid) if classes else None
        result[uuid] = DeviceUsage(
            used=used,
            usedmem=max(a[1], i[1]),
            usedcores=max(a[2], i[2]),
            mig=reservations.get(uuid, ()),
            tasks=((task_class, used),) if task_class else (),
        )
    return result


def pod_usage(pod: PlacedPod, slots_of: SlotsOf | None = None) -> dict[str, DeviceUsage]:
    """Collapsed usage of a placed pod over all its vendors, MIG reservations included.

    ``slots_of`` says how many slots a recorded entry takes (None: one each).
    """
    containers, slots = _flatten(pod.devices, slots_of)
    mig = [(a.gpu_uuid, MigReservation(a.profile, a.placement)) for a in pod.mig]
    classes = None
    if pod.task_classes:
        classes = {
            d.uuid: task_class
            for vendor, task_class in pod.task_classes.items()
            for container in pod.devices.get(vendor, ())
            for d in container
        }
    return collapse(containers, pod.init_count, pod.init_done, mig, slots, classes)


def _flatten(
    devices: Mapping[str, tuple[tuple[ContainerDevice, ...], ...]],
    slots_of: SlotsOf | None = None,
) -> tuple[list[tuple[ContainerDevice, ...]], list[tuple[int, ...]] | None]:
    width = max((len(v) for v in devices.values()), default=0)
    merged: list[tuple[ContainerDevice, ...]] = [() for _ in range(width)]
    sizes: list[tuple[int, ...]] | None = None
    if slots_of is not None:
        sizes = [() for _ in range(width)]
    for vendor, per_vendor in devices.items():
        for position, container in enumerate(per_vendor):
            merged[position] = merged[position] + container
            if sizes is not None and slots_of is not None:
                sizes[position] += tuple(slots_of(vendor, d) for d in container)
    return merged, sizes


def slot_counter(node: Node, vendors: Mapping[str, Vendor] | None) -> SlotsOf | None:
    """How many slots a recorded entry takes on ``node``, from the vendors whose picks may
    take several slots and that have devices there; None (one slot each) when there are none."""
    if not vendors:
        return None
    present = {d.vendor for d in node.devices}
    hooks = {k: v for k, v in vendors.items() if v.slotted and k in present}
    if not hooks:
        return None
    index = {d.uuid: d for d in node.devices}

    def slots_of(vendor: str, entry: ContainerDevice) -> int:
        hook = hooks.get(vendor)
        device = index.get(entry.uuid)
        if hook is None or device is None:
            return 1
        return max(hook.slots(device, entry), 1)

    return slots_of


def node_usage(
    node: Node, pods: Iterable[PlacedPod], vendors: Mapping[str, Vendor] | None = None
) -> tuple[tuple[DeviceUsage, ...], tuple[str, ...]]:
    """Usage of every device of ``node`` from the pods placed on it, and the unknown UUIDs.

    UUIDs the node does not register are reported (not applied): a stale pod must not poison
    other devices. Pass the ``vendors`` so that a multi-slot vendor's entries take their real slot
    count (without them every entry takes one slot).
    """
    index = {d.uuid: i for i, d in enumerate(node.devices)}
    usage = [EMPTY_USAGE] * len(node.devices)
    unknown: list[str] = []
    slots_of = slot_counter(node, vendors)
    for pod in pods:
        for uuid, taken in pod_usage(pod, slots_of).items():
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
        tasks=merge_tasks(base.tasks, extra.tasks) if extra.tasks else base.tasks,
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
