"""The metric families: names, labels, help texts and legacy spellings (wire-format.md §6.2)."""

from __future__ import annotations

import platform
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric

from hami import __version__

MIB = 1024 * 1024
ZONE = "vGPU"
AMD_VENDOR = "AMD"  # HAMi normalises AMD cores to a 0–100 scale
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30)
LOCK_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 25, 60)


@dataclass(frozen=True, slots=True)
class BuildInfo:
    version: str = __version__
    revision: str = "unknown"
    build_date: str = "unknown"
    go_version: str = field(default_factory=lambda: f"python{platform.python_version()}")
    compiler: str = field(default_factory=platform.python_implementation)
    platform: str = field(default_factory=lambda: f"{sys.platform}/{platform.machine()}")


# --- family specs (one place for names, labels and their legacy spellings) -------------------


@dataclass(frozen=True, slots=True)
class Spec:
    """A metric: its labels (keys into the sample's label dict) and its optional legacy twin."""

    name: str
    help: str
    labels: tuple[str, ...]
    legacy: str = ""
    legacy_labels: tuple[tuple[str, str], ...] = ()  # (legacy label name, key)
    zone: bool = True


_DEV = ("node", "device_uuid", "device_index", "device_type")
_LEGACY_DEV = (
    ("nodeid", "node"),
    ("deviceuuid", "device_uuid"),
    ("deviceidx", "device_index"),
    ("devicetype", "device_type"),
)
_POD = ("namespace", "node", "pod", "container_index", "device_uuid")
_LEGACY_POD = (
    ("podnamespace", "namespace"),
    ("nodename", "node"),
    ("podname", "pod"),
    ("containeridx", "container_index"),
    ("deviceuuid", "device_uuid"),
)

BUILD_INFO = Spec(
    "hami_build_info",
    "Build information of the running binary",
    ("version", "revision", "build_date", "go_version", "compiler", "platform"),
    zone=False,
)
MEMORY_LIMIT = Spec(
    "hami_gpu_memory_limit_bytes",
    "Registered device memory in bytes",
    _DEV,
    "GPUDeviceMemoryLimit",
    _LEGACY_DEV,
)
CORE_LIMIT = Spec(
    "hami_gpu_core_limit_ratio",
    "Registered device cores (100 = one whole device; AMD normalised to 100)",
    _DEV,
    "GPUDeviceCoreLimit",
    _LEGACY_DEV,
)
MEMORY_ALLOCATED = Spec(
    "hami_gpu_memory_allocated_bytes",
    "Device memory allocated to pods in bytes (device_cores = registered cores)",
    ("node", "device_uuid", "device_index", "device_cores", "device_type"),
    "GPUDeviceMemoryAllocated",
    (*_LEGACY_DEV[:3], ("devicecores", "device_cores"), ("devicetype", "device_type")),
)
SHARED_COUNT = Spec(
    "hami_gpu_shared_count",
    "Number of allocated slots (tasks) on the device",
    _DEV,
    "GPUDeviceSharedNum",
    _LEGACY_DEV,
)
CORE_ALLOCATED = Spec(
    "hami_gpu_core_allocated_ratio",
    "Device cores allocated to pods (AMD: percent of the device)",
    _DEV,
    "GPUDeviceCoreAllocated",
    _LEGACY_DEV,
)
NODE_OVERVIEW = Spec(
    "hami_node_gpu_overview",
    "Allocated device memory in bytes (device_memory_limit label = registered MiB)",
    ("node", "device_uuid", "device_index", "device_cores", "device_memory_limit", "device_type"),
    "nodeGPUOverview",
    (
        *_LEGACY_DEV[:3],
        ("devicecores", "device_cores"),
        ("devicememorylimit", "device_memory_limit"),
        ("devicetype", "device_type"),
    ),
)
MEMORY_RATIO = Spec(
    "hami_node_gpu_memory_allocated_ratio",
    "Allocated over registered device memory (0-1)",
    _DEV,
    "nodeGPUMemoryPercentage",
    _LEGACY_DEV[:3],
)
MIG_INSTANCE = Spec(
    "hami_node_gpu_mig_instance_info",
    "One per realised MIG instance reserved by a pod",
    (
        "node",
        "device_uuid",
        "device_index",
        "mig_uuid",
        "profile",
        "gpu_instance_id",
        "compute_instance_id",
        "placement_start",
        "placement_size",
    ),
    "nodeGPUMigInstance",
    (*_LEGACY_DEV[:3], ("migname", "migname")),
)
QUOTA_USED = Spec(
    "hami_resource_quota_used",
    "Quota usage (memory in MiB units, cores in percent); limit label = configured limit",
    ("namespace", "quota_name", "limit"),
    "QuotaUsed",
    (("quotanamespace", "namespace"), ("quotaName", "quota_name"), ("limit", "limit")),
)
QUOTA_LIMIT = Spec(
    "hami_resource_quota_limit",
    "Configured quota limit",
    ("namespace", "quota_name"),
)
VGPU_MEMORY = Spec(
    "hami_vgpu_memory_allocated_bytes",
    "Device memory allocated to one container of a pod, in bytes",
    _POD,
    "vGPUMemoryAllocated",
    _LEGACY_POD,
)
VGPU_CORES = Spec(
    "hami_vgpu_core_allocated_ratio",
    "Device cores allocated to one container of a pod (AMD normalised)",
    _POD,
    "vGPUCoreAllocated",
    _LEGACY_POD,
)
SCHEDULER_SPECS = (
    MEMORY_LIMIT,
    CORE_LIMIT,
    MEMORY_ALLOCATED,
    SHARED_COUNT,
    CORE_ALLOCATED,
    NODE_OVERVIEW,
    MEMORY_RATIO,
    MIG_INSTANCE,
    QUOTA_USED,
    QUOTA_LIMIT,
    VGPU_MEMORY,
    VGPU_CORES,
)


class Families:
    """Gauge families under construction for one scrape; ``legacy`` adds the old names too."""

    def __init__(self, specs: Iterable[Spec], legacy: bool = False) -> None:
        self._legacy = legacy
        self._new: dict[str, GaugeMetricFamily] = {}
        self._old: dict[str, GaugeMetricFamily] = {}
        for spec in specs:
            zone = ("zone",) if spec.zone else ()
            self._new[spec.name] = GaugeMetricFamily(
                spec.name, spec.help, labels=(*spec.labels, *zone)
            )
            if legacy and spec.legacy:
                names = tuple(n for n, _ in spec.legacy_labels)
                self._old[spec.name] = GaugeMetricFamily(
                    spec.legacy, spec.help, labels=(*names, *zone)
                )

    def add(
        self,
        spec: Spec,
        labels: Mapping[str, str],
        value: float,
        legacy_value: float | None = None,
    ) -> None:
        zone = [ZONE] if spec.zone else []
        self._new[spec.name].add_metric([*(labels[k] for k in spec.labels), *zone], value)
        old = self._old.get(spec.name)
        if old is not None:
            values = [labels[k] for _, k in spec.legacy_labels]
            old.add_metric([*values, *zone], value if legacy_value is None else legacy_value)

    def __iter__(self) -> Iterator[Metric]:
        yield from self._new.values()
        yield from self._old.values()


class Sink(Protocol):
    """Where `add_device`, `add_pod` and `add_quota` put samples (`Families` or `SampleLines`)."""

    def add(
        self,
        spec: Spec,
        labels: Mapping[str, str],
        value: float,
        legacy_value: float | None = None,
    ) -> None: ...


def build_info(build: BuildInfo) -> GaugeMetricFamily:
    """`hami_build_info` (no zone label), shared by the scheduler and the monitor."""
    family = GaugeMetricFamily(BUILD_INFO.name, BUILD_INFO.help, labels=BUILD_INFO.labels)
    b = build
    family.add_metric(
        [b.version, b.revision, b.build_date, b.go_version, b.compiler, b.platform], 1
    )
    return family
