"""The scheduler's `/metrics` (wire-format.md §6.2, docs/monitoring.md).

Two halves in one private `CollectorRegistry` (the process-wide default registry is not used):

* HAMi's allocation metrics, computed at scrape time from the live cache by `CacheCollector`
  (HAMi recomputes them every 15 s; ours are never stale). Names, labels, units and the
  constant label ``zone="vGPU"`` are HAMi's; ``--legacy-metrics`` adds the pre-rename names.
  Unlike HAMi, ``container_index`` is the container's real position in the pod's device list
  (init containers first), not always 0.
* Our operational metrics: request and decision counters, filter/bind latency, node-lock waits
  and Kubernetes API errors, fed through the small hook methods of `Metrics`. Everything works
  when a hook is never called: the series simply stay absent or at zero.

`Metrics.render` is what /metrics serves: the operational metrics, build info and cache gauges go
through prometheus_client's ``generate_latest``; the §6.2 families (320,000 series at 5,000 nodes)
are written as text-format 0.0.4 lines here, byte for byte what ``generate_latest(registry)``
writes (sorted label names, the same escaping and float spelling), with each node's lines (its
devices and its pods) kept between scrapes while its `NodeState` and placed pods are the same
objects, so an unchanged node costs a few list appends.
"""

from __future__ import annotations

import math
import operator
import platform
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import (
    UNDERSCORES,
    escape_label_name,
    escape_metric_name,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from hami import __version__
from hami.api.types import ContainerDevice
from hami.core.accounting import PlacedPod
from hami.core.cluster import ClusterView, NodeState
from hami.core.model import Device, DeviceUsage

MIB = 1024 * 1024
ZONE = "vGPU"
AMD_VENDOR = "AMD"  # HAMi normalises AMD cores to a 0–100 scale
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30)
LOCK_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 25, 60)


# --- what the collector reads --------------------------------------------------------------


@runtime_checkable
class CacheSource(Protocol):
    """What `CacheCollector` reads from the scheduler cache (`ClusterCache` satisfies it)."""

    @property
    def view(self) -> ClusterView: ...

    @property
    def synced(self) -> bool: ...

    def pods_on(self, node: str) -> list[PlacedPod]: ...


@dataclass(frozen=True, slots=True)
class _ViewOnly:
    """Adapts a bare ``() -> ClusterView`` callable: no pods, sync state unknown."""

    get: Callable[[], ClusterView]

    @property
    def view(self) -> ClusterView:
        return self.get()

    @property
    def synced(self) -> bool:
        return True

    def pods_on(self, node: str) -> list[PlacedPod]:
        return []


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """One quota line for `hami_resource_quota_*` (memory in MiB units, cores in %)."""

    namespace: str
    name: str  # the resource name, e.g. nvidia.com/gpumem
    used: float
    limit: float | None = None


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
    """Where `add_device`, `add_pod` and `add_quota` put samples (`Families` or `_Lines`)."""

    def add(
        self,
        spec: Spec,
        labels: Mapping[str, str],
        value: float,
        legacy_value: float | None = None,
    ) -> None: ...


def _escape_value(value: str) -> str:
    """A label value as generate_latest escapes it (backslash, newline, double quote)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


@dataclass(frozen=True, slots=True)
class _Line:
    """One family's sample line up to its value: a ``%`` template over escaped label values."""

    slot: int  # the family's position in the exposition
    template: str  # name{label="%(key)s",...} (labels sorted by name, as generate_latest does)


def _line(slot: int, name: str, labels: Iterable[tuple[str, str]], zone: bool) -> _Line:
    """``labels``: (label name, key); the constant zone label joins them, all sorted by name."""
    pairs: list[tuple[str, str | None]] = [*labels, *((("zone", None),) if zone else ())]
    pairs.sort(key=lambda pair: pair[0])  # generate_latest sorts a sample's labels by name

    def part(label: str, key: str | None) -> str:
        value = _escape_value(ZONE).replace("%", "%%") if key is None else f"%({key})s"
        return f'{escape_label_name(label, UNDERSCORES).replace("%", "%%")}="{value}"'

    parts = [part(label, key) for label, key in pairs]
    head = escape_metric_name(name, UNDERSCORES).replace("%", "%%")
    labelstr = "{" + ",".join(parts) + "}" if parts else ""
    return _Line(slot, f"{head}{labelstr} ")


def _header(name: str, help_text: str) -> str:
    escaped = escape_metric_name(name, UNDERSCORES)
    doc = help_text.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {escaped} {doc}\n# TYPE {escaped} gauge\n"


class Layout:
    """The families of `Families` (same order, same legacy twins) as text-format pieces."""

    def __init__(self, specs: Iterable[Spec], legacy: bool = False) -> None:
        specs = tuple(specs)
        self.headers: list[str] = []
        self.new: dict[str, _Line] = {}
        self.old: dict[str, _Line] = {}
        for spec in specs:
            pairs = ((label, label) for label in spec.labels)
            self.new[spec.name] = _line(len(self.headers), spec.name, pairs, spec.zone)
            self.headers.append(_header(spec.name, spec.help))
        for spec in specs:
            if legacy and spec.legacy:
                line = _line(len(self.headers), spec.legacy, spec.legacy_labels, spec.zone)
                self.old[spec.name] = line
                self.headers.append(_header(spec.legacy, spec.help))
        self.encoded_headers = [header.encode("utf-8") for header in self.headers]
        self._numbers: dict[float, str] = {}

    def number(self, value: float) -> str:
        """``floatToGoString(value)``, remembered (sample values repeat across devices)."""
        text = self._numbers.get(value)
        if text is None:
            text = floatToGoString(value)  # type: ignore[no-untyped-call]
            if value and len(self._numbers) < 65536:  # 0 and -0.0 are equal but spelt apart
                self._numbers[value] = text
        return text


class _Lines:
    """A `Sink` that writes sample lines per family slot (one node's, or the quotas')."""

    __slots__ = ("_escaped", "_labels", "_layout", "lines")

    def __init__(self, layout: Layout) -> None:
        self._layout = layout
        self.lines: list[list[str]] = [[] for _ in layout.headers]
        self._labels: Mapping[str, str] | None = None  # the last label dict, escaped once
        self._escaped: dict[str, str] = {}

    def add(
        self,
        spec: Spec,
        labels: Mapping[str, str],
        value: float,
        legacy_value: float | None = None,
    ) -> None:
        if labels is not self._labels:
            self._labels = labels
            self._escaped = {k: _escape_value(v) for k, v in labels.items()}
        escaped, number = self._escaped, self._layout.number
        line = self._layout.new[spec.name]
        self.lines[line.slot].append(f"{line.template % escaped}{number(value)}\n")
        old = self._layout.old.get(spec.name)
        if old is not None:
            value = value if legacy_value is None else legacy_value
            self.lines[old.slot].append(f"{old.template % escaped}{number(value)}\n")

    def chunks(self) -> tuple[tuple[int, bytes], ...]:
        """(slot, UTF-8 text) of every family that got lines."""
        return tuple(
            (slot, "".join(lines).encode("utf-8")) for slot, lines in enumerate(self.lines) if lines
        )


def build_info(build: BuildInfo) -> GaugeMetricFamily:
    """`hami_build_info` (no zone label), shared by the scheduler and the monitor."""
    family = GaugeMetricFamily(BUILD_INFO.name, BUILD_INFO.help, labels=BUILD_INFO.labels)
    b = build
    family.add_metric(
        [b.version, b.revision, b.build_date, b.go_version, b.compiler, b.platform], 1
    )
    return family


# --- the allocation collector ----------------------------------------------------------------


def _normalised_cores(device: Device, cores: float) -> float:
    """AMD reports cores in its own units; HAMi exports ceil(used / total × 100)."""
    if device.vendor != AMD_VENDOR or device.cores <= 0:
        return cores
    return float(math.ceil(cores / device.cores * 100))


def _device_labels(state: NodeState, device: Device) -> dict[str, str]:
    return {
        "node": state.node.name,
        "device_uuid": device.uuid,
        "device_index": str(device.index),
        "device_type": device.type,
        "device_cores": str(device.cores),
        "device_memory_limit": str(device.memory),
    }


def add_device(families: Sink, state: NodeState, device: Device, usage: DeviceUsage) -> None:
    """The per-device series of one registered device."""
    labels = _device_labels(state, device)
    core_limit = 100.0 if device.vendor == AMD_VENDOR else float(device.cores)
    families.add(MEMORY_LIMIT, labels, device.memory * MIB)
    families.add(CORE_LIMIT, labels, core_limit, legacy_value=device.cores)
    families.add(MEMORY_ALLOCATED, labels, usage.usedmem * MIB)
    families.add(SHARED_COUNT, labels, usage.used)
    cores = _normalised_cores(device, usage.usedcores)
    families.add(CORE_ALLOCATED, labels, cores, legacy_value=usage.usedcores)
    families.add(NODE_OVERVIEW, labels, usage.usedmem * MIB)
    if device.memory > 0:
        families.add(MEMORY_RATIO, labels, usage.usedmem / device.memory)


def container_usage(pod: PlacedPod) -> dict[tuple[int, str], tuple[int, int]]:
    """(container index, device UUID) → (MiB, cores) over every vendor of a placed pod.

    The index is the container's position in the pod's device list (init containers first);
    init containers that have all finished are left out, as the cache releases their usage.
    """
    result: dict[tuple[int, str], tuple[int, int]] = {}
    for per_container in pod.devices.values():
        for position, devices in enumerate(per_container):
            if position < pod.init_count and pod.init_done:
                continue
            for device in devices:
                _accumulate(result, position, device)
    return result


def _accumulate(
    into: dict[tuple[int, str], tuple[int, int]], position: int, device: ContainerDevice
) -> None:
    mem, cores = into.get((position, device.uuid), (0, 0))
    into[(position, device.uuid)] = (mem + device.usedmem, cores + device.usedcores)


def add_pod(families: Sink, pod: PlacedPod, devices: Mapping[str, Device]) -> None:
    namespace, _, name = pod.key.partition("/")
    for (position, uuid), (mem, cores) in sorted(container_usage(pod).items()):
        labels = {
            "namespace": namespace,
            "node": pod.node,
            "pod": name,
            "container_index": str(position),
            "device_uuid": uuid,
        }
        families.add(VGPU_MEMORY, labels, mem * MIB)
        device = devices.get(uuid)
        normalised = _normalised_cores(device, cores) if device is not None else cores
        families.add(VGPU_CORES, labels, normalised, legacy_value=cores)
    for mig in pod.mig:
        device = devices.get(mig.gpu_uuid)
        if mig.mig_uuid is None or device is None:
            continue  # only realised instances on registered GPUs
        gi = "" if mig.gpu_instance_id is None else str(mig.gpu_instance_id)
        labels = {
            "node": pod.node,
            "device_uuid": mig.gpu_uuid,
            "device_index": str(device.index),
            "mig_uuid": mig.mig_uuid,
            "profile": mig.profile,
            "gpu_instance_id": gi,
            "compute_instance_id": (
                "" if mig.compute_instance_id is None else str(mig.compute_instance_id)
            ),
            "placement_start": str(mig.placement.start),
            "placement_size": str(mig.placement.size),
            "migname": f"{mig.profile}-{gi}",
        }
        families.add(MIG_INSTANCE, labels, 1)


def add_quota(families: Sink, quota: QuotaUsage) -> None:
    limit = "" if quota.limit is None else f"{quota.limit:g}"
    labels = {"namespace": quota.namespace, "quota_name": quota.name, "limit": limit}
    families.add(QUOTA_USED, labels, quota.used)
    if quota.limit is not None:
        families.add(QUOTA_LIMIT, labels, quota.limit)


class CacheCollector(Collector):
    """HAMi's §6.2 families plus cache gauges, computed from the cache on every scrape."""

    def __init__(
        self,
        source: CacheSource,
        *,
        legacy: bool = False,
        quotas: Callable[[], Iterable[QuotaUsage]] = tuple,
        build: BuildInfo | None = None,
        leader: Callable[[], bool] | None = None,
    ) -> None:
        self._source = source
        self._legacy = legacy
        self._quotas = quotas
        self._build = build or BuildInfo()
        self._leader = leader
        self._layout = Layout(SCHEDULER_SPECS, legacy)
        self._build_text = generate_latest(_Families([build_info(self._build)]))
        # node name -> (its NodeState, its placed pods, its (slot, text) chunks)
        self._rendered: dict[str, tuple[NodeState, tuple[PlacedPod, ...], _Chunks]] = {}

    def collect(self) -> Iterator[Metric]:
        yield build_info(self._build)
        view = self._source.view
        families = Families(SCHEDULER_SPECS, self._legacy)
        pods = 0
        for state in view.states():
            by_uuid = {d.uuid: d for d in state.node.devices}
            for device, usage in zip(state.node.devices, state.usage, strict=True):
                add_device(families, state, device, usage)
            for pod in self._source.pods_on(state.node.name):
                add_pod(families, pod, by_uuid)
                pods += 1
        for quota in self._quotas():
            add_quota(families, quota)
        yield from families
        yield from self._cache_gauges(view, pods)

    def render(self) -> bytes:
        """What ``generate_latest`` writes for `collect`, byte for byte, but from cached lines."""
        return b"".join(self.render_pieces())

    def render_pieces(self) -> list[bytes]:
        """`render` in pieces (build info, each family's header and node chunks, cache gauges)."""
        view = self._source.view
        layout = self._layout
        families: list[list[bytes]] = [[header] for header in layout.encoded_headers]
        previous, rendered = self._rendered, {}
        pods = 0
        for state in view.states():
            name = state.node.name
            placed = self._source.pods_on(name)
            pods += len(placed)
            entry = previous.get(name)
            if entry is None or entry[0] is not state or not _same(entry[1], placed):
                entry = (state, tuple(placed), _render_node(layout, state, placed))
            rendered[name] = entry
            for slot, text in entry[2]:
                families[slot].append(text)
        self._rendered = rendered  # nodes gone from the view drop out here
        quotas = _Lines(layout)
        for quota in self._quotas():
            add_quota(quotas, quota)
        for slot, text in quotas.chunks():
            families[slot].append(text)
        pieces = [self._build_text]
        for family in families:
            pieces += family
        pieces.append(generate_latest(_Families(self._cache_gauges(view, pods))))
        return pieces

    def _cache_gauges(self, view: ClusterView, pods: int) -> Iterator[GaugeMetricFamily]:
        synced = GaugeMetricFamily(
            "hami_scheduler_cache_synced", "1 once the node and pod informers have listed"
        )
        synced.add_metric([], 1.0 if self._source.synced else 0.0)
        yield synced
        yield GaugeMetricFamily(
            "hami_scheduler_cache_nodes", "Nodes with usable devices in the cache", len(view)
        )
        yield GaugeMetricFamily(
            "hami_scheduler_cache_pods", "Placed pods holding devices on cached nodes", pods
        )
        if self._leader is not None:
            yield GaugeMetricFamily(
                "hami_scheduler_leader", "1 while this replica holds the lease", self._leader()
            )


_Chunks = tuple[tuple[int, bytes], ...]


def _same(cached: tuple[PlacedPod, ...], placed: list[PlacedPod]) -> bool:
    return len(cached) == len(placed) and all(map(operator.is_, cached, placed))


def _render_node(layout: Layout, state: NodeState, placed: Iterable[PlacedPod]) -> _Chunks:
    """One node's lines: its devices', then its pods' (as `CacheCollector.collect` adds them)."""
    lines = _Lines(layout)
    by_uuid = {d.uuid: d for d in state.node.devices}
    for device, usage in zip(state.node.devices, state.usage, strict=True):
        add_device(lines, state, device, usage)
    for pod in placed:
        add_pod(lines, pod, by_uuid)
    return lines.chunks()


@dataclass(frozen=True, slots=True)
class _Families:
    """Already-built families as something ``generate_latest`` can render."""

    families: Iterable[Metric]

    def collect(self) -> Iterable[Metric]:
        return self.families


# --- the service-facing object ----------------------------------------------------------------


class Metrics:
    """One registry per scheduler instance, plus the hooks the service calls.

    ``source`` is the cache (any `CacheSource`) or, for callers that only have one, a bare
    ``() -> ClusterView`` callable (then the per-pod families stay empty).
    """

    def __init__(
        self,
        source: CacheSource | Callable[[], ClusterView],
        *,
        legacy: bool = False,
        quotas: Callable[[], Iterable[QuotaUsage]] = tuple,
        build: BuildInfo | None = None,
        leader: Callable[[], bool] | None = None,
    ) -> None:
        cache = source if isinstance(source, CacheSource) else _ViewOnly(source)
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hami_scheduler_requests",
            "Extender and webhook requests by route and outcome",
            ["route", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "hami_scheduler_request_seconds",
            "Extender and webhook latency by route (filter, bind, webhook)",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "hami_scheduler_decisions",
            "Filter decisions by outcome (placed, unfit, error) and first reason",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self.lock_waits = Histogram(
            "hami_scheduler_node_lock_wait_seconds",
            "Time /bind waited for a node lock, by outcome (acquired, timeout, error)",
            ["outcome"],
            buckets=LOCK_BUCKETS,
            registry=self.registry,
        )
        self.api_errors = Counter(
            "hami_scheduler_kube_api_errors",
            "Failed Kubernetes API calls by verb, resource and HTTP status (0 = unreachable)",
            ["verb", "resource", "status"],
            registry=self.registry,
        )
        self.collector = CacheCollector(
            cache, legacy=legacy, quotas=quotas, build=build, leader=leader
        )
        self.registry.register(self.collector)
        ops = (self.requests, self.latency, self.decisions, self.lock_waits, self.api_errors)
        self._operational: tuple[Collector, ...] = ops

    def render(self) -> bytes:
        """The /metrics body: exactly ``generate_latest(self.registry)``, in a fraction of the time.

        The operational metrics (registered first) still go through prometheus_client; the cache
        families come from `CacheCollector.render`.
        """
        operational = _Families([m for c in self._operational for m in c.collect()])
        return b"".join([generate_latest(operational), *self.collector.render_pieces()])

    # hooks ------------------------------------------------------------------------------------

    def request(self, route: str, outcome: str, seconds: float) -> None:
        """One handled /filter, /bind or /webhook request."""
        self.requests.labels(route, outcome).inc()
        self.latency.labels(route).observe(seconds)

    def decision(self, outcome: str, reason: str = "") -> None:
        """One filter decision; ``reason`` is HAMi's failure reason (empty when placed)."""
        self.decisions.labels(outcome, reason).inc()

    def lock_wait(self, seconds: float, outcome: str) -> None:
        self.lock_waits.labels(outcome).observe(seconds)

    def api_error(self, verb: str, resource: str, status: int) -> None:
        self.api_errors.labels(verb, resource, str(status)).inc()
