"""The monitor's metrics (wire-format.md §6.3, docs/monitoring.md): names, help, labels and
HAMi's legacy names. Here, below both, so the web UI's Prometheus queries name what the
monitor exports."""

from __future__ import annotations

from hami.metrics.specs import Spec

_HOST = ("node", "device_index", "device_uuid", "device_type")
_LEGACY_HOST = (
    ("nodeid", "node"),
    ("deviceidx", "device_index"),
    ("deviceuuid", "device_uuid"),
    ("devicetype", "device_type"),
)
_CTR = ("namespace", "pod", "container", "vdevice_index", "device_uuid")
_LEGACY_CTR = (
    ("podnamespace", "namespace"),
    ("podname", "pod"),
    ("ctrname", "container"),
    ("vdeviceid", "vdevice_index"),
    ("deviceuuid", "device_uuid"),
)

HOST_MEMORY = Spec(
    "hami_host_gpu_memory_used_bytes",
    "GPU memory used on the host (NVML), bytes",
    _HOST,
    "HostGPUMemoryUsage",
    _LEGACY_HOST,
)
HOST_UTIL = Spec(
    "hami_host_gpu_utilization_ratio",
    "GPU utilisation on the host (NVML), percent 0-100",
    _HOST,
    "HostCoreUtilization",
    _LEGACY_HOST,
)
HOST_MEM_UTIL = Spec(
    "hami_host_gpu_memory_controller_utilization_ratio",
    "GPU memory-controller utilisation on the host (NVML), percent 0-100",
    _HOST[1:],
)
VGPU_USED = Spec(
    "hami_vgpu_memory_used_bytes",
    "Device memory used by a container (sum over its live processes), bytes",
    _CTR,
    "vGPU_device_memory_usage_in_bytes",
    _LEGACY_CTR,
)
VGPU_LIMIT = Spec(
    "hami_vgpu_memory_limit_bytes",
    "Device memory limit of a container, bytes",
    _CTR,
    "vGPU_device_memory_limit_in_bytes",
    _LEGACY_CTR,
)
CTR_MEMORY = Spec(
    "hami_container_device_memory_bytes",
    "Device memory used by a container, bytes (same value as hami_vgpu_memory_used_bytes)",
    _CTR,
    "Device_memory_desc_of_container",
    (
        *_LEGACY_CTR,
        ("context", "context"),
        ("module", "module"),
        ("data", "data"),
        ("offset", "offset"),
    ),
)
CTR_UTIL = Spec(
    "hami_container_device_utilization_ratio",
    "SM utilisation of a container (sum over its live processes), percent",
    _CTR,
    "Device_utilization_desc_of_container",
    _LEGACY_CTR,
)
CTR_LAST_KERNEL = Spec(
    "hami_container_last_kernel_elapsed_seconds",
    "Seconds since the container last launched a kernel (v1 regions only)",
    _CTR,
    "Device_last_kernel_of_container",
    _LEGACY_CTR,
)
CONTEXT = Spec("hami_vgpu_memory_context_bytes", "Context memory of a container, bytes", _CTR)
MODULE = Spec("hami_vgpu_memory_module_bytes", "Module memory of a container, bytes", _CTR)
BUFFER = Spec("hami_vgpu_memory_buffer_bytes", "Buffer (data) memory of a container, bytes", _CTR)
MIG_INFO = Spec(
    "hami_mig_device_info",
    "One per realised MIG instance of a container",
    (*_CTR, "mig_uuid", "profile", "gpu_instance_id", "compute_instance_id"),
    "MigInfo",
    (*_LEGACY_CTR, ("instanceid", "mig_uuid")),
)
MONITOR_SPECS = (
    HOST_MEMORY,
    HOST_UTIL,
    HOST_MEM_UTIL,
    VGPU_USED,
    VGPU_LIMIT,
    CTR_MEMORY,
    CTR_UTIL,
    CTR_LAST_KERNEL,
    CONTEXT,
    MODULE,
    BUFFER,
    MIG_INFO,
)
