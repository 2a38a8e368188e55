"""Scheduler metrics: HAMi's §6.2 families computed from the cache, legacy names, hooks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hami.api import annotations as codec
from hami.api import keys
from hami.api.types import ContainerDevice, MigAllocation, MigPlacement
from hami.core.accounting import PlacedPod, node_usage
from hami.core.cluster import ClusterView, NodeState
from hami.core.config import SchedulerConfig
from hami.core.model import Device, Node
from hami.scheduler.cache import ClusterCache
from hami.scheduler.metrics import (
    MIB,
    BuildInfo,
    CacheSource,
    Metrics,
    QuotaUsage,
    container_usage,
)
from hami.vendors.registry import build

from .harness import gpu_node, gpu_pod, running

Sample = tuple[str, dict[str, str], float]


@dataclass
class StubCache:
    nodes: list[Node]
    pods: list[PlacedPod] = field(default_factory=list)
    synced: bool = True

    @property
    def view(self) -> ClusterView:
        return ClusterView.of(
            NodeState.of(n, node_usage(n, self.pods_on(n.name))[0]) for n in self.nodes
        )

    def pods_on(self, node: str) -> list[PlacedPod]:
        return [p for p in self.pods if p.node == node]


def samples(metrics: Metrics) -> list[Sample]:
    text = metrics.render().decode()  # what /metrics serves (equal to generate_latest, below)
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def find(found: Iterable[Sample], name: str, **labels: str) -> list[Sample]:
    return [s for s in found if s[0] == name and labels.items() <= s[1].items()]


def one(found: Iterable[Sample], name: str, **labels: str) -> float:
    matches = find(found, name, **labels)
    assert len(matches) == 1, (name, labels, matches)
    return matches[0][2]


def gpu(uuid: str, index: int, vendor: str = "NVIDIA", cores: int = 100) -> Device:
    return Device(
        uuid=uuid,
        vendor=vendor,
        type="NVIDIA-A100",
        count=10,
        memory=40960,
        cores=cores,
        index=index,
    )


def cd(uuid: str, mem: int, cores: int) -> ContainerDevice:
    return ContainerDevice(uuid=uuid, type="NVIDIA", usedmem=mem, usedcores=cores)


NODE = Node("n1", (gpu("GPU-a", 0), gpu("GPU-b", 1)))
POD = PlacedPod(
    key="team/train",
    node="n1",
    devices={"NVIDIA": ((cd("GPU-a", 1000, 10),), (cd("GPU-a", 2000, 20), cd("GPU-b", 4000, 40)))},
)


def test_device_families_from_the_cache_with_hami_names_labels_and_units() -> None:
    found = samples(Metrics(StubCache([NODE], [POD])))
    a = {"node": "n1", "device_uuid": "GPU-a", "device_index": "0", "zone": "vGPU"}
    assert one(found, "hami_gpu_memory_limit_bytes", **a) == 40960 * MIB
    assert one(found, "hami_gpu_core_limit_ratio", **a) == 100
    allocated = find(found, "hami_gpu_memory_allocated_bytes", **a)
    assert allocated == [
        (
            "hami_gpu_memory_allocated_bytes",
            {**a, "device_cores": "100", "device_type": "NVIDIA-A100"},
            3000 * MIB,
        )
    ]
    assert one(found, "hami_gpu_shared_count", **a) == 2
    assert one(found, "hami_gpu_core_allocated_ratio", **a) == 30
    assert one(found, "hami_node_gpu_overview", device_memory_limit="40960", **a) == 3000 * MIB
    assert one(found, "hami_node_gpu_memory_allocated_ratio", **a) == 3000 / 40960
    b = {"node": "n1", "device_uuid": "GPU-b"}
    assert one(found, "hami_gpu_memory_allocated_bytes", **b) == 4000 * MIB


def test_per_container_families_carry_the_real_container_index() -> None:
    found = samples(Metrics(StubCache([NODE], [POD])))
    pod = {"namespace": "team", "pod": "train", "node": "n1", "zone": "vGPU"}
    first = {**pod, "container_index": "0", "device_uuid": "GPU-a"}
    second = {**pod, "container_index": "1", "device_uuid": "GPU-a"}
    assert one(found, "hami_vgpu_memory_allocated_bytes", **first) == 1000 * MIB
    assert one(found, "hami_vgpu_memory_allocated_bytes", **second) == 2000 * MIB
    assert one(found, "hami_vgpu_core_allocated_ratio", **second) == 20
    assert one(found, "hami_vgpu_core_allocated_ratio", container_index="1", device_uuid="GPU-b")
    assert len(find(found, "hami_vgpu_memory_allocated_bytes")) == 3


def test_finished_init_containers_are_not_reported() -> None:
    pod = PlacedPod(
        key="a/b",
        node="n1",
        devices={"NVIDIA": ((cd("GPU-a", 500, 5),), (cd("GPU-a", 100, 1),))},
        init_count=1,
        init_done=True,
    )
    assert container_usage(pod) == {(1, "GPU-a"): (100, 1)}


def test_memory_ratio_absent_without_registered_memory_and_amd_is_normalised() -> None:
    zero = Device(uuid="GPU-z", vendor="NVIDIA", type="T", count=1, memory=0, cores=100)
    amd = Device(uuid="AMD-0", vendor="AMD", type="MI210", count=4, memory=65536, cores=104)
    node = Node("n2", (zero, amd))
    pod = PlacedPod(key="x/y", node="n2", devices={"AMD": ((cd("AMD-0", 1024, 52),),)})
    found = samples(Metrics(StubCache([node], [pod]), legacy=True))
    assert not find(found, "hami_node_gpu_memory_allocated_ratio", device_uuid="GPU-z")
    assert one(found, "hami_gpu_core_limit_ratio", device_uuid="AMD-0") == 100
    assert one(found, "hami_gpu_core_allocated_ratio", device_uuid="AMD-0") == 50
    assert one(found, "hami_vgpu_core_allocated_ratio", device_uuid="AMD-0") == 50
    # legacy values stay raw
    assert one(found, "GPUDeviceCoreLimit", deviceuuid="AMD-0") == 104
    assert one(found, "GPUDeviceCoreAllocated", deviceuuid="AMD-0") == 52
    assert one(found, "vGPUCoreAllocated", deviceuuid="AMD-0") == 52


def test_legacy_names_only_with_the_option_and_with_hami_label_names() -> None:
    plain = samples(Metrics(StubCache([NODE], [POD])))
    assert not find(plain, "GPUDeviceMemoryLimit")
    found = samples(Metrics(StubCache([NODE], [POD]), legacy=True))
    legacy = find(found, "GPUDeviceMemoryAllocated", deviceuuid="GPU-a")
    assert legacy == [
        (
            "GPUDeviceMemoryAllocated",
            {
                "nodeid": "n1",
                "deviceuuid": "GPU-a",
                "deviceidx": "0",
                "devicecores": "100",
                "devicetype": "NVIDIA-A100",
                "zone": "vGPU",
            },
            3000 * MIB,
        )
    ]
    assert set(find(found, "nodeGPUMemoryPercentage")[0][1]) == {
        "nodeid",
        "deviceuuid",
        "deviceidx",
        "zone",
    }
    assert one(found, "vGPUMemoryAllocated", podname="train", containeridx="1", deviceuuid="GPU-b")
    assert one(found, "hami_gpu_memory_limit_bytes", device_uuid="GPU-a")  # new names stay


def test_mig_instances_quotas_and_build_info() -> None:
    mig = MigAllocation(
        container_index=0,
        device_index=0,
        gpu_uuid="GPU-b",
        profile="1g.10gb",
        placement=MigPlacement(start=2, size=1),
        mig_uuid="MIG-1",
        gpu_instance_id=9,
        compute_instance_id=0,
    )
    pending = MigAllocation(0, 0, "GPU-b", "2g.20gb", MigPlacement(4, 2))
    pod = PlacedPod(key="m/p", node="n1", devices=POD.devices, mig=(mig, pending))
    quotas = [QuotaUsage("team", "nvidia.com/gpumem", 3000, 10000), QuotaUsage("b", "x", 1)]
    build = BuildInfo(revision="abc123", build_date="2026-01-01")
    found = samples(
        Metrics(StubCache([NODE], [pod]), quotas=lambda: quotas, build=build, legacy=True)
    )
    info = find(found, "hami_node_gpu_mig_instance_info")
    assert info == [
        (
            "hami_node_gpu_mig_instance_info",
            {
                "node": "n1",
                "device_uuid": "GPU-b",
                "device_index": "1",
                "mig_uuid": "MIG-1",
                "profile": "1g.10gb",
                "gpu_instance_id": "9",
                "compute_instance_id": "0",
                "placement_start": "2",
                "placement_size": "1",
                "zone": "vGPU",
            },
            1.0,
        )
    ]
    assert one(found, "nodeGPUMigInstance", migname="1g.10gb-9") == 1
    assert one(found, "hami_resource_quota_used", namespace="team", limit="10000") == 3000
    assert one(found, "hami_resource_quota_limit", namespace="team") == 10000
    assert not find(found, "hami_resource_quota_limit", namespace="b")
    assert one(found, "QuotaUsed", quotanamespace="team", quotaName="nvidia.com/gpumem") == 3000
    labels = find(found, "hami_build_info")[0][1]
    assert labels["revision"] == "abc123" and "zone" not in labels
    assert set(labels) == {
        "version",
        "revision",
        "build_date",
        "go_version",
        "compiler",
        "platform",
    }


def test_hooks_and_cache_gauges() -> None:
    cache = StubCache([NODE], synced=False)
    metrics = Metrics(cache, leader=lambda: True)
    before = samples(metrics)
    assert one(before, "hami_scheduler_cache_synced") == 0
    assert one(before, "hami_scheduler_cache_nodes") == 1
    assert not find(before, "hami_scheduler_decisions_total")
    metrics.request("filter", "placed", 0.003)
    metrics.decision("unfit", "CardInsufficientMemory")
    metrics.lock_wait(0.2, "acquired")
    metrics.api_error("patch", "pods", 409)
    cache.synced = True
    found = samples(metrics)
    assert one(found, "hami_scheduler_cache_synced") == 1
    assert one(found, "hami_scheduler_leader") == 1
    assert one(found, "hami_scheduler_requests_total", route="filter", outcome="placed") == 1
    assert one(found, "hami_scheduler_request_seconds_count", route="filter") == 1
    assert one(found, "hami_scheduler_decisions_total", reason="CardInsufficientMemory") == 1
    assert one(found, "hami_scheduler_node_lock_wait_seconds_count", outcome="acquired") == 1
    assert one(found, "hami_scheduler_kube_api_errors_total", verb="patch", status="409") == 1


def test_a_bare_view_callable_still_works() -> None:
    view = StubCache([NODE], [POD]).view
    found = samples(Metrics(lambda: view))
    assert one(found, "hami_gpu_memory_allocated_bytes", device_uuid="GPU-a") == 3000 * MIB
    assert not find(found, "hami_vgpu_memory_allocated_bytes")


def test_registries_are_per_instance() -> None:
    first, second = Metrics(StubCache([NODE])), Metrics(StubCache([NODE]))
    first.decision("placed")
    assert not find(samples(second), "hami_scheduler_decisions_total")


def test_the_real_cache_is_a_source() -> None:
    cache = ClusterCache(build(SchedulerConfig()))
    assert isinstance(cache, CacheSource)
    cache.replace_nodes([gpu_node("n1", uuids=["GPU-1"])])
    pod = gpu_pod("p", namespace="team")
    pod["metadata"].update(
        uid="uid-1",
        annotations={
            keys.VGPU_NODE: "n1",
            keys.NVIDIA_ALLOCATED: codec.encode_pod_devices([[cd("GPU-1", 3000, 30)]]),
        },
    )
    cache.replace_pods([pod])
    found = samples(Metrics(cache))
    labels = {"namespace": "team", "pod": "p", "container_index": "0", "device_uuid": "GPU-1"}
    assert one(found, "hami_vgpu_memory_allocated_bytes", **labels) == 3000 * MIB
    assert one(found, "hami_gpu_shared_count", device_uuid="GPU-1") == 1
    assert one(found, "hami_scheduler_cache_pods") == 1


async def test_scrape_after_scheduling_through_the_service() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1"))
        await h.add_pod(gpu_pod("p"))
        await h.settle()
        assert await h.schedule("p") == "n1"
        found = samples(Metrics(h.service.cache))
        pod = {"namespace": "default", "pod": "p", "node": "n1", "container_index": "0"}
        assert one(found, "hami_vgpu_memory_allocated_bytes", **pod) == 3000 * MIB
        assert one(found, "hami_vgpu_core_allocated_ratio", **pod) == 30
        text = (await h.client.get("/metrics")).text
        assert "hami_build_info{" in text and "hami_gpu_core_limit_ratio{" in text


def test_render_is_byte_for_byte_generate_latest_and_follows_cache_changes() -> None:
    odd = Device(uuid='GPU-"q\\n', vendor="NVIDIA", type="T\nx", count=2, memory=0, cores=100)
    amd = Device(uuid="AMD-0", vendor="AMD", type="MI210", count=4, memory=65536, cores=104)
    mig = MigAllocation(0, 0, "GPU-b", "1g.10gb", MigPlacement(2, 1), "MIG-1", 9, 0)
    pods = [
        PlacedPod(key="team/train", node="n1", devices=POD.devices, mig=(mig,)),
        PlacedPod(key="x/y", node="n2", devices={"AMD": ((cd("AMD-0", 1024, 52),),)}),
        PlacedPod(key='q/"p', node="n2", devices={"NVIDIA": ((cd('GPU-"q\\n', 7, 3),),)}),
    ]
    cache = StubCache([NODE, Node("n2", (odd, amd))], pods)
    quotas = [QuotaUsage("team", "nvidia.com/gpumem", 3000, 10000), QuotaUsage("b", "x", -0.0)]
    for legacy in (False, True):
        metrics = Metrics(cache, legacy=legacy, quotas=lambda: quotas, leader=lambda: False)
        metrics.request("filter", "placed", 0.003)
        metrics.decision("unfit", 'a "reason"\\n')
        assert metrics.render() == generate_latest(metrics.registry)
        assert metrics.render() == generate_latest(metrics.registry)  # from cached node lines
        cache.pods = pods[1:]  # a pod leaves n1: n1 re-rendered, n2's lines reused
        assert metrics.render() == generate_latest(metrics.registry)
        cache.nodes = [NODE]  # a node leaves the view
        assert metrics.render() == generate_latest(metrics.registry)
        cache.nodes, cache.pods = [NODE, Node("n2", (odd, amd))], pods
        assert metrics.render() == generate_latest(metrics.registry)
        assert b"TYPE hami_gpu_memory_limit_bytes gauge" in metrics.render()


def test_unchanged_nodes_reuse_their_rendered_lines() -> None:
    cache = ClusterCache(build(SchedulerConfig()))
    cache.replace_nodes([gpu_node("n1", uuids=["GPU-1"]), gpu_node("n2", uuids=["GPU-2"])])
    metrics = Metrics(cache)
    first = metrics.render()
    chunks = {name: entry[2] for name, entry in metrics.collector._rendered.items()}
    assert metrics.render() == first == generate_latest(metrics.registry)
    again = metrics.collector._rendered
    assert all(again[name][2] is chunks[name] for name in chunks)
