"""A minimal `/metrics`: request counters and latencies, plus HAMi's per-device allocation
gauges (wire-format.md §6.2) computed from the live cache at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hami.core.cluster import ClusterView

MIB = 1024 * 1024
_DEVICE_LABELS = ("node", "device_uuid", "device_index", "device_type", "zone")


class _DeviceCollector(Collector):
    def __init__(self, view: Callable[[], ClusterView]) -> None:
        self._view = view

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            "limit": GaugeMetricFamily(
                "hami_gpu_memory_limit_bytes", "Registered device memory", labels=_DEVICE_LABELS
            ),
            "mem": GaugeMetricFamily(
                "hami_gpu_memory_allocated_bytes", "Allocated device memory", labels=_DEVICE_LABELS
            ),
            "cores": GaugeMetricFamily(
                "hami_gpu_core_allocated_ratio", "Allocated device cores", labels=_DEVICE_LABELS
            ),
            "shared": GaugeMetricFamily(
                "hami_gpu_shared_count", "Tasks sharing the device", labels=_DEVICE_LABELS
            ),
        }
        for state in self._view().states():
            for device, usage in zip(state.node.devices, state.usage, strict=True):
                labels = [state.node.name, device.uuid, str(device.index), device.type, "vGPU"]
                families["limit"].add_metric(labels, device.memory * MIB)
                families["mem"].add_metric(labels, usage.usedmem * MIB)
                families["cores"].add_metric(labels, usage.usedcores)
                families["shared"].add_metric(labels, usage.used)
        yield from families.values()


class Metrics:
    """One registry per service instance (no process-wide state)."""

    def __init__(self, view: Callable[[], ClusterView]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hami_scheduler_requests",
            "Extender and webhook requests by route and outcome",
            ["route", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "hami_scheduler_request_seconds",
            "Extender and webhook latency",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30),
            registry=self.registry,
        )
        self.registry.register(_DeviceCollector(view))
