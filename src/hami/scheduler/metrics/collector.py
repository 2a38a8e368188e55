"""The allocation families, computed at scrape time from the live cache."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hami.api.types import ContainerDevice
from hami.core.accounting import PlacedPod
from hami.core.cluster import ClusterView, NodeState
from hami.core.dra import placement, records
from hami.core.model import Device, DeviceUsage
from hami.core.vendor import Held, Vendor
from hami.metrics.specs import (
    AMD_VENDOR,
    CORE_ALLOCATED,
    CORE_LIMIT,
    MEMORY_ALLOCATED,
    MEMORY_LIMIT,
    MEMORY_RATIO,
    MIB,
    MIG_INSTANCE,
    NODE_OVERVIEW,
    QUOTA_LIMIT,
    QUOTA_USED,
    SCHEDULER_SPECS,
    SHARED_COUNT,
    VGPU_CORES,
    VGPU_MEMORY,
    BuildInfo,
    Families,
    Sink,
    build_info,
)
from hami.scheduler.metrics.text import (
    Layout,
    SampleLines,
)

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
class ViewOnly:
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


@runtime_checkable
class DraSource(Protocol):
    """The cluster's ResourceClaims and ResourceSlices (`hami.scheduler.dra_watch.DraWatch`);
    ``version`` changes whenever they do."""

    @property
    def version(self) -> int: ...

    def claims(self) -> list[Mapping[str, object]]: ...

    def slices(self) -> list[Mapping[str, object]]: ...


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """One quota line for `hami_resource_quota_*` (memory in MiB units, cores in %)."""

    namespace: str
    name: str  # the resource name, e.g. nvidia.com/gpumem
    used: float
    limit: float | None = None


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


def add_device(
    families: Sink,
    state: NodeState,
    device: Device,
    usage: DeviceUsage,
    vendor: Vendor | None = None,
) -> None:
    """The per-device series of one registered device: what its vendor says the allocation
    holds (a whole-card hold is the whole card), compute as a percentage of the card when the
    vendor counts it in its own unit (AMD CUs, NeuronCores, Moore Threads cores…)."""
    labels = _device_labels(state, device)
    if vendor is None:
        held = Held(
            usage.usedmem,
            usage.usedcores,
            device.cores,
            "CUs" if device.vendor == AMD_VENDOR else "%",
        )
    else:
        held = vendor.held(device, usage)
    percent = held.unit != "%"
    families.add(MEMORY_LIMIT, labels, device.memory * MIB)
    families.add(
        CORE_LIMIT, labels, 100.0 if percent else float(device.cores), legacy_value=device.cores
    )
    families.add(MEMORY_ALLOCATED, labels, held.memory * MIB)
    families.add(SHARED_COUNT, labels, usage.used)
    cores = float(math.ceil(held.percent)) if percent else float(held.cores)
    families.add(CORE_ALLOCATED, labels, cores, legacy_value=usage.usedcores)
    families.add(NODE_OVERVIEW, labels, held.memory * MIB)
    if device.memory > 0:
        families.add(MEMORY_RATIO, labels, held.memory / device.memory)


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


def add_pod(
    families: Sink,
    pod: PlacedPod,
    devices: Mapping[str, Device],
    vendors: Mapping[str, Vendor] | None = None,
) -> None:
    """A placed pod's series; with ``vendors``, each container's slice as its vendor reads it
    (a whole-card hold is the card, a vendor unit a percentage of the card)."""
    namespace, _, name = pod.key.partition("/")
    for (position, uuid), (mem, cores) in sorted(container_usage(pod).items()):
        labels = {
            "namespace": namespace,
            "node": pod.node,
            "pod": name,
            "container_index": str(position),
            "device_uuid": uuid,
        }
        device = devices.get(uuid)
        vendor = (vendors or {}).get(device.vendor) if device is not None else None
        if device is not None and vendor is not None:
            held = vendor.held(device, DeviceUsage(used=1, usedmem=mem, usedcores=cores))
            memory = held.memory
            normalised = float(math.ceil(held.percent)) if held.unit != "%" else float(held.cores)
        else:
            memory = mem
            normalised = _normalised_cores(device, cores) if device is not None else cores
        families.add(VGPU_MEMORY, labels, memory * MIB)
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


# The webhook names a pod's claims gpu-<i> (container i) and gpu-init-<i> (init container i);
# kube-controller-manager records that name on the claim it makes.
POD_CLAIM_NAME = "resource.kubernetes.io/pod-claim-name"


def _container_index(claim: str, annotation: str) -> str:
    """``<i>`` for claim gpu-<i>, ``init-<i>`` for gpu-init-<i>, else the pod claim name."""
    prefix = "gpu-"
    return annotation[len(prefix) :] if annotation.startswith(prefix) else annotation or claim


def add_dra(
    families: Sink, claims: Iterable[Mapping[str, object]], slices: Iterable[Mapping[str, object]]
) -> int:
    """DRA mode's allocations (docs/dra.md) under the same families as the extender's: per
    published device its capacity and what the claims consume of it (``hami_gpu_shared_count``:
    the claims on it), per claim's device the owner pod's series (``container_index``: the
    container number from the pod claim name, ``init-<i>`` for an init container). Returns
    the number of pods."""
    slices = list(slices)
    claims = list(claims)
    uuid_at = placement.uuids(slices)
    allocated = records.allocations(claims)
    for state in placement.node_states(claims, slices):
        for device, usage in zip(state.node.devices, state.usage, strict=True):
            add_device(families, state, device, usage)
    annotations = {
        (str(m.get("namespace", "")), str(m.get("name", ""))): (m.get("annotations") or {})
        for c in claims
        for m in [c.get("metadata") or {}]
        if isinstance(m, Mapping)
    }
    per_pod: dict[tuple[str, str, str, str, str], tuple[int, int]] = {}
    for a in allocated:
        pod_claim = str(annotations.get((a.namespace, a.claim), {}).get(POD_CLAIM_NAME, ""))
        uuid = uuid_at.get(a.key, f"{a.node}/{a.device}")
        key = (a.namespace, a.node, a.owner or a.claim, _container_index(a.claim, pod_claim), uuid)
        mem, cores = per_pod.get(key, (0, 0))
        per_pod[key] = (mem + a.memory_bytes, cores + a.cores)
    for (namespace, node, pod, index, uuid), (mem, cores) in sorted(per_pod.items()):
        labels = {
            "namespace": namespace,
            "node": node,
            "pod": pod,
            "container_index": index,
            "device_uuid": uuid,
        }
        families.add(VGPU_MEMORY, labels, mem)
        families.add(VGPU_CORES, labels, float(cores), legacy_value=cores)
    return len({(k[0], k[2]) for k in per_pod})


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
        dra: DraSource | None = None,
    ) -> None:
        self._source = source
        self._dra = dra
        self._dra_rendered: tuple[int, _Chunks, int] = (-1, (), 0)  # version, chunks, pods
        # the vendors say how an allocation reads (units, whole-card holds); the scheduler
        # cache has them, a bare view does not
        self._vendors: Mapping[str, Vendor] = getattr(source, "vendors", {})
        self._legacy = legacy
        self._quotas = quotas
        self._build = build or BuildInfo()
        self._leader = leader
        self._layout = Layout(SCHEDULER_SPECS, legacy)
        self._build_text = generate_latest(MetricList([build_info(self._build)]))
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
                add_device(families, state, device, usage, self._vendors.get(device.vendor))
            for pod in self._source.pods_on(state.node.name):
                add_pod(families, pod, by_uuid, self._vendors)
                pods += 1
        if self._dra is not None:
            pods += add_dra(families, self._dra.claims(), self._dra.slices())
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
                entry = (state, tuple(placed), _render_node(layout, state, placed, self._vendors))
            rendered[name] = entry
            for slot, text in entry[2]:
                families[slot].append(text)
        self._rendered = rendered  # nodes gone from the view drop out here
        if self._dra is not None:
            version = self._dra.version
            if self._dra_rendered[0] != version:
                lines = SampleLines(layout)
                count = add_dra(lines, self._dra.claims(), self._dra.slices())
                self._dra_rendered = (version, lines.chunks(), count)
            pods += self._dra_rendered[2]
            for slot, text in self._dra_rendered[1]:
                families[slot].append(text)
        quotas = SampleLines(layout)
        for quota in self._quotas():
            add_quota(quotas, quota)
        for slot, text in quotas.chunks():
            families[slot].append(text)
        pieces = [self._build_text]
        for family in families:
            pieces += family
        pieces.append(generate_latest(MetricList(self._cache_gauges(view, pods))))
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


def _render_node(
    layout: Layout,
    state: NodeState,
    placed: Iterable[PlacedPod],
    vendors: Mapping[str, Vendor],
) -> _Chunks:
    """One node's lines: its devices', then its pods' (as `CacheCollector.collect` adds them)."""
    lines = SampleLines(layout)
    by_uuid = {d.uuid: d for d in state.node.devices}
    for device, usage in zip(state.node.devices, state.usage, strict=True):
        add_device(lines, state, device, usage, vendors.get(device.vendor))
    for pod in placed:
        add_pod(lines, pod, by_uuid, vendors)
    return lines.chunks()


@dataclass(frozen=True, slots=True)
class MetricList:
    """Already-built families as something ``generate_latest`` can render."""

    families: Iterable[Metric]

    def collect(self) -> Iterable[Metric]:
        return self.families
