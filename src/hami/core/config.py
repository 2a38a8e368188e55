"""Scheduler configuration as the core sees it (loading and validation live in `hami.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hami.api import keys

NODE_POLICIES = ("binpack", "spread")
GPU_POLICIES = ("binpack", "spread", "topology-aware", "mutex", "numa")


@dataclass(frozen=True, slots=True)
class NvidiaConfig:
    """The `nvidia:` section of HAMi's device-config.yaml (wire-format.md §1.4)."""

    resource_count_name: str = keys.NVIDIA_GPU
    resource_memory_name: str = keys.NVIDIA_GPUMEM
    resource_memory_percentage_name: str = keys.NVIDIA_GPUMEM_PERCENTAGE
    resource_core_name: str = keys.NVIDIA_GPUCORES
    resource_priority_name: str = keys.NVIDIA_PRIORITY
    default_memory: int = 0
    default_cores: int = 0
    default_gpu_num: int = 1
    memory_factor: int = 1
    overwrite_env: bool = False
    gpu_core_policy: str = "default"
    runtime_class_name: str = ""
    disable_core_limit: bool = False
    # node-side settings (the device plugin reads the same file)
    device_split_count: int = 10
    device_memory_scaling: float = 1.0
    device_core_scaling: float = 1.0
    pre_configured_device_memory: int = 0
    lib_cuda_log_level: int = 1
    enable_numa_topology: bool = False


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """Everything the decision core needs to know about the configuration."""

    nvidia: NvidiaConfig = field(default_factory=NvidiaConfig)
    node_scheduler_policy: str = "binpack"
    gpu_scheduler_policy: str = "spread"
    scheduler_name: str = "hami-scheduler"
