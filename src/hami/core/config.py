"""Scheduler configuration as the core sees it (loading and validation live in `hami.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from annotated_types import Ge, Gt, Le, MinLen

from hami.api import keys

NODE_POLICIES = ("binpack", "spread")
GPU_POLICIES = ("binpack", "spread", "topology-aware", "mutex", "numa")


# Constraints `hami.config` checks when it validates a section (annotated_types markers: data,
# no validation code here).
NonNegative = Annotated[int, Ge(0)]
Positive = Annotated[int, Ge(1)]
Scale = Annotated[float, Gt(0)]


@dataclass(frozen=True, slots=True)
class MigProfileRule:
    """One `nvidia.migProfileAllowlist` rule: a GPU whose model contains one of ``models`` is
    split into ``profiles`` only."""

    models: Annotated[tuple[str, ...], MinLen(1)]
    profiles: Annotated[tuple[str, ...], MinLen(1)]


@dataclass(frozen=True, slots=True)
class NvidiaConfig:
    """The `nvidia:` section of HAMi's device-config.yaml (wire-format.md §1.4): its defaults
    and constraints, written once."""

    resource_count_name: str = keys.NVIDIA_GPU
    resource_memory_name: str = keys.NVIDIA_GPUMEM
    resource_memory_percentage_name: str = keys.NVIDIA_GPUMEM_PERCENTAGE
    resource_core_name: str = keys.NVIDIA_GPUCORES
    resource_priority_name: str = keys.NVIDIA_PRIORITY
    default_memory: NonNegative = 0
    default_cores: Annotated[int, Ge(0), Le(100)] = 0
    default_gpu_num: NonNegative = 1
    memory_factor: Positive = 1
    overwrite_env: bool = False
    gpu_core_policy: Literal["default", "force", "disable"] = "default"
    runtime_class_name: str = ""
    disable_core_limit: bool = False
    mig_profile_allowlist: tuple[MigProfileRule, ...] = ()
    # node-side settings (the device plugin reads the same file)
    device_split_count: Positive = 10
    device_memory_scaling: Scale = 1.0
    device_core_scaling: Scale = 1.0
    pre_configured_device_memory: NonNegative = 0
    lib_cuda_log_level: Annotated[int, Ge(0), Le(4)] = 1
    enable_numa_topology: bool = False


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """Everything the decision core needs to know about the configuration."""

    nvidia: NvidiaConfig = field(default_factory=NvidiaConfig)
    node_scheduler_policy: str = "binpack"
    gpu_scheduler_policy: str = "spread"
    scheduler_name: str = "hami-scheduler"
