"""The domain in frozen dataclasses: devices, their usage, nodes, requests and allocations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hami.api.types import MigPlacement, MigProfile, ScoringWeights

MEM_PCT_UNSET = 101  # HAMi's sentinel for "no memory percentage given"


@dataclass(frozen=True, slots=True)
class Device:
    """One registered device of a node."""

    uuid: str
    vendor: str  # vendor key, e.g. "NVIDIA"
    type: str  # model string as registered, e.g. "NVIDIA A100-SXM4-40GB"
    count: int  # concurrent tasks (split count)
    memory: int  # MiB
    cores: int  # core capacity (100 = one whole device)
    index: int = 0
    numa: int = 0
    mode: str = ""
    health: bool = True
    mig_profiles: tuple[MigProfile, ...] = ()
    pair_scores: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MigReservation:
    profile: str
    placement: MigPlacement


# Per-device task counts by class, e.g. (("offline", 1), ("online", 2)): sorted, no zero counts.
TaskClasses = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class DeviceUsage:
    """What is already taken on one device.

    ``tasks`` counts the device's *classed* tasks (MetaX sGPU `online`/`offline` pods): a pod
    whose vendor gives it a class (`Pick.task_class` while fitting, `Vendor.task_class` when
    rebuilding) counts its slots on the device under that class; unclassed tasks are
    ``used`` minus the classed ones. Empty for every other vendor.
    """

    used: int = 0  # slots
    usedmem: int = 0
    usedcores: int = 0
    mig: tuple[MigReservation, ...] = ()
    tasks: TaskClasses = ()

    def plus(
        self,
        slots: int,
        mem: int,
        cores: int,
        mig: MigReservation | None = None,
        task_class: str = "",
    ) -> DeviceUsage:
        return DeviceUsage(
            used=self.used + slots,
            usedmem=self.usedmem + mem,
            usedcores=self.usedcores + cores,
            mig=(*self.mig, mig) if mig else self.mig,
            tasks=merge_tasks(self.tasks, ((task_class, slots),)) if task_class else self.tasks,
        )

    def minus(self, other: DeviceUsage) -> DeviceUsage:
        reserved = list(self.mig)
        for item in other.mig:
            if item in reserved:
                reserved.remove(item)
        return DeviceUsage(
            used=max(self.used - other.used, 0),
            usedmem=max(self.usedmem - other.usedmem, 0),
            usedcores=max(self.usedcores - other.usedcores, 0),
            mig=tuple(reserved),
            tasks=merge_tasks(self.tasks, other.tasks, -1) if other.tasks else self.tasks,
        )

    def tasks_of(self, task_class: str) -> int:
        """How many tasks of ``task_class`` run on the device."""
        for name, count in self.tasks:
            if name == task_class:
                return count
        return 0


def merge_tasks(base: TaskClasses, extra: TaskClasses, sign: int = 1) -> TaskClasses:
    """``base`` plus (``sign`` 1) or minus (-1, never below zero) ``extra``, per class."""
    if not extra:
        return base
    counts = dict(base)
    for name, count in extra:
        counts[name] = counts.get(name, 0) + sign * count
    return tuple(sorted((name, count) for name, count in counts.items() if count > 0))


EMPTY_USAGE = DeviceUsage()


@dataclass(frozen=True, slots=True)
class Node:
    """A node's inventory, as registered, plus the operator's cordon list."""

    name: str
    devices: tuple[Device, ...]
    cordoned: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ContainerRequest:
    """One vendor's request of one container (HAMi's ContainerDeviceRequest)."""

    vendor: str
    nums: int
    memreq: int = 0  # MiB per device, 0 = use the percentage
    mem_pct: int = MEM_PCT_UNSET
    coresreq: int = 0

    def memory_on(self, device: Device) -> int:
        """The memory this request takes on ``device`` (MiB)."""
        if self.memreq > 0:
            return self.memreq
        if self.mem_pct not in (0, MEM_PCT_UNSET):
            return device.memory * self.mem_pct // 100
        return 0


# A container's requests, one per vendor it asks for (usually just NVIDIA).
ContainerRequests = tuple[ContainerRequest, ...]


@dataclass(frozen=True, slots=True)
class PodOptions:
    """Per-pod scheduling options taken from the pod's annotations."""

    node_policy: str = "binpack"
    gpu_policy: tuple[str, ...] = ("spread",)
    weights: ScoringWeights = ScoringWeights()
    use_types: tuple[str, ...] = ()
    nouse_types: tuple[str, ...] = ()
    use_uuids: tuple[str, ...] = ()
    nouse_uuids: tuple[str, ...] = ()
    numa_bind: bool = False
    vgpu_mode: str | None = None


@dataclass(frozen=True, slots=True)
class PodRequest:
    """A pod's device requests: one entry per container, init containers first."""

    namespace: str
    name: str
    containers: tuple[ContainerRequests, ...]
    init_count: int = 0
    uid: str = ""
    container_names: tuple[str, ...] = ()
    options: PodOptions = PodOptions()
    # the pod's annotations, for vendor-specific filters and modes (FitContext.annotations)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def wants_devices(self) -> bool:
        return any(self.containers)

    def vendors(self) -> frozenset[str]:
        return frozenset(r.vendor for c in self.containers for r in c)
