"""The monitor's `/metrics` (wire-format.md §6.3, docs/monitoring.md), read at scrape time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hami.metrics.monitor import (
    BUFFER,
    CONTEXT,
    CTR_LAST_KERNEL,
    CTR_MEMORY,
    CTR_UTIL,
    HOST_MEM_UTIL,
    HOST_MEMORY,
    HOST_UTIL,
    MIG_INFO,
    MODULE,
    MONITOR_SPECS,
    VGPU_LIMIT,
    VGPU_USED,
)
from hami.metrics.specs import BuildInfo, Families, build_info
from hami.monitor.host import HostGpu, HostGpus
from hami.monitor.monitor import ContainerReading, Monitor
from hami.monitor.pods import mig_allocations
from hami.monitor.region import RegionDevice


def add_host(families: Families, node: str, gpu: HostGpu) -> None:
    labels = {
        "node": node,
        "device_index": str(gpu.index),
        "device_uuid": gpu.uuid,
        "device_type": f"NVIDIA-{gpu.name}",
    }
    families.add(HOST_MEMORY, labels, gpu.memory_used)
    families.add(HOST_UTIL, labels, gpu.utilization)
    families.add(HOST_MEM_UTIL, labels, gpu.memory_utilization)


def add_device(
    families: Families, reading: ContainerReading, dev: RegionDevice, now: float
) -> None:
    pod = reading.pod
    labels = {
        "namespace": pod.namespace,
        "pod": pod.name,
        "container": reading.container,
        "vdevice_index": str(dev.index),
        "device_uuid": dev.uuid,
        "context": str(dev.context),
        "module": str(dev.module),
        "data": str(dev.buffer),
        "offset": str(dev.total - dev.context - dev.module - dev.buffer),
    }
    families.add(VGPU_USED, labels, dev.total)
    families.add(VGPU_LIMIT, labels, dev.limit)
    families.add(CTR_MEMORY, labels, dev.total)
    families.add(CTR_UTIL, labels, dev.sm_util)
    last = reading.snapshot.last_kernel_time
    if last > 0:
        families.add(CTR_LAST_KERNEL, labels, max(now - last, 0.0))
    families.add(CONTEXT, labels, dev.context)
    families.add(MODULE, labels, dev.module)
    families.add(BUFFER, labels, dev.buffer)


def add_mig(families: Families, reading: ContainerReading) -> None:
    pod = reading.pod
    position = pod.position(reading.container)
    for mig in mig_allocations(pod):
        if mig.container_index != position or mig.mig_uuid is None:
            continue
        labels = {
            "namespace": pod.namespace,
            "pod": pod.name,
            "container": reading.container,
            "vdevice_index": str(mig.device_index),
            "device_uuid": mig.gpu_uuid,
            "mig_uuid": mig.mig_uuid,
            "profile": mig.profile,
            "gpu_instance_id": "" if mig.gpu_instance_id is None else str(mig.gpu_instance_id),
            "compute_instance_id": (
                "" if mig.compute_instance_id is None else str(mig.compute_instance_id)
            ),
        }
        families.add(MIG_INFO, labels, 1)


class MonitorCollector(Collector):
    def __init__(
        self,
        monitor: Monitor,
        host: HostGpus,
        *,
        legacy: bool = False,
        build: BuildInfo | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._monitor = monitor
        self._host = host
        self._legacy = legacy
        self._build = build or BuildInfo()
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        yield build_info(self._build)
        families = Families(MONITOR_SPECS, self._legacy)
        node = self._monitor.settings.node
        for gpu in self._host.read():
            add_host(families, node, gpu)
        now = self._clock()
        for reading in self._monitor.containers():
            for device in reading.snapshot.devices:
                add_device(families, reading, device, now)
            add_mig(families, reading)
        yield from families
        yield from self._operational()

    def _operational(self) -> Iterator[Metric]:
        m = self._monitor
        errors = GaugeMetricFamily(
            "hami_monitor_region_errors",
            "1 per container cache directory whose region file is corrupt, foreign or ambiguous",
            labels=("pod_uid", "container", "reason"),
        )
        for issue in m.errors.values():
            errors.add_metric([issue.pod_uid, issue.container, issue.reason], 1)
        yield errors
        regions = GaugeMetricFamily(
            "hami_monitor_regions", "Open region files by pod match", labels=("matched",)
        )
        unmatched = m.unmatched()
        regions.add_metric(["true"], m.tracked - unmatched)
        regions.add_metric(["false"], unmatched)
        yield regions
        yield CounterMetricFamily(
            "hami_monitor_stale_directories_removed",
            "Cache directories of deleted pods removed since start",
            m.removed,
        )
        yield CounterMetricFamily(
            "hami_monitor_kube_errors", "Failed pod lists since start", m.kube_errors
        )
        yield GaugeMetricFamily(
            "hami_monitor_last_refresh_timestamp_seconds",
            "Unix time of the last discovery pass",
            m.last_refresh,
        )


def registry_for(collector: MonitorCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry
