"""Typed values of HAMi's wire formats (what the codec decodes to and encodes from)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class MigPlacement:
    """A GPU-instance placement: slices ``[start, start + size)``."""

    start: int
    size: int

    def overlaps(self, other: MigPlacement) -> bool:
        return self.start < other.start + other.size and other.start < self.start + self.size


@dataclass(frozen=True, slots=True)
class MigProfile:
    """One MIG profile a device can host (`migProfiles` in the registration JSON)."""

    name: str
    memory_mb: int
    core: int
    slice_count: int
    placements: tuple[MigPlacement, ...] = ()


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One device as a node registers it (`hami.io/node-nvidia-register` and friends)."""

    id: str
    count: int
    devmem: int
    devcore: int
    type: str
    index: int = 0
    numa: int = 0
    mode: str = ""
    health: bool = False
    mig_profiles: tuple[MigProfile, ...] = ()
    devicevendor: str = ""
    custominfo: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ContainerDevice:
    """One device of one container in a pod device list: ``UUID,TYPE,mem,cores:``."""

    uuid: str
    type: str
    usedmem: int
    usedcores: int


ContainerDevices = tuple[ContainerDevice, ...]
# One entry per container, init containers first (spec order), then regular containers.
PodDevices = tuple[ContainerDevices, ...]


@dataclass(frozen=True, slots=True)
class NodeLock:
    """Value of `hami.io/mutex.lock`: ``<RFC3339>,<namespace>,<pod>`` (or a bare legacy time)."""

    time: datetime
    namespace: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Handshake:
    """A handshake annotation value: ``Requesting_<time>``, ``Deleted_<time>``, ``Reported …``."""

    state: str  # "Requesting", "Deleted", "Reported" or "" (unrecognised)
    time: datetime | None = None


@dataclass(frozen=True, slots=True)
class ScoringWeights:
    """`hami.io/device-scoring-weights`: weights of the slot, core and memory terms."""

    slot: int = 1
    core: int = 1
    memory: int = 1


@dataclass(frozen=True, slots=True)
class MigAllocation:
    """One entry of `hami.io/vgpu-mig-allocations`."""

    container_index: int
    device_index: int
    gpu_uuid: str
    profile: str
    placement: MigPlacement
    mig_uuid: str | None = None
    gpu_instance_id: int | None = None
    compute_instance_id: int | None = None


@dataclass(frozen=True, slots=True)
class PairScores:
    """`hami.io/node-nvidia-score` entry: link scores from one GPU to its peers."""

    uuid: str
    scores: Mapping[str, int] = field(default_factory=dict)
