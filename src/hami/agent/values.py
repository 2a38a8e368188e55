"""Frozen values the agent passes around: discovered GPUs, health events, allocation results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hami.api.types import MigProfile


@dataclass(frozen=True, slots=True)
class Gpu:
    """One physical GPU as discovery reports it (before any node configuration is applied)."""

    uuid: str
    index: int
    model: str
    memory_mib: int  # 0: NVML cannot tell (unified memory); preConfiguredDeviceMemory applies
    numa: int = 0
    bus_id: str = ""
    healthy: bool = True
    mig_profiles: tuple[MigProfile, ...] = ()


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """A health change reported by a backend; ``uuid=None`` means every device."""

    uuid: str | None
    healthy: bool
    reason: str
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Mount:
    container_path: str
    host_path: str
    read_only: bool


@dataclass(frozen=True, slots=True)
class DeviceNode:
    container_path: str
    host_path: str
    permissions: str = "rw"


@dataclass(frozen=True, slots=True)
class ContainerAllocation:
    """What one container gets from `Allocate` (mirrors ContainerAllocateResponse)."""

    envs: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    devices: tuple[DeviceNode, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    cdi_devices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KubeletDevice:
    """One device ID advertised to kubelet through ListAndWatch."""

    id: str
    healthy: bool
    numa: int | None = None
