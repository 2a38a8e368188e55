"""Cache rules: handshake health, assumptions versus stale watch events, informer recovery."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC

from hami.api import annotations as codec
from hami.api import keys
from hami.core.accounting import placed_pod
from hami.core.config import SchedulerConfig
from hami.k8s import objects
from hami.k8s.api import NODES, PODS, Unavailable
from hami.k8s.fake import FakeKube
from hami.scheduler.cache import ClusterCache
from hami.scheduler.informer import Informer, Sink
from hami.scheduler.registration import handshake_specs
from hami.vendors.metax import MetaxSgpuVendor
from hami.vendors.registry import build

from .harness import T0, FakeClock, gpu_node, gpu_pod, running

VENDORS = build(SchedulerConfig())


def handshake(h: object, node: str = "n1") -> str | None:
    return objects.annotations(h.kube.stored(NODES, node)).get(keys.NVIDIA_HANDSHAKE)  # type: ignore[attr-defined]


async def test_handshake_written_then_node_dropped_when_plugin_is_gone() -> None:
    async with running() as h:
        node = gpu_node("n1")
        node["status"] = {"allocatable": {}}  # plugin never advertised the count resource
        await h.add_node(node)
        await h.until(lambda: handshake(h) is not None)
        assert handshake(h) == codec.encode_handshake_requesting(T0)
        assert "n1" in h.service.cache.view
        h.clock.advance(61)
        h.service.cache.reassess()
        await h.until(lambda: handshake(h) is None)
        assert "n1" not in h.service.cache.view
        h.service.cache.reassess()
        await h.settle()
        assert handshake(h) is None  # stays down: no flapping on our own write


async def test_node_with_allocatable_devices_stays_healthy_and_loses_them() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1"))
        await h.until(lambda: handshake(h) is not None)
        h.clock.advance(120)
        h.service.cache.reassess()
        await h.settle()
        assert "n1" in h.service.cache.view
        await h.kube.merge_patch(NODES, "n1", {"status": {"allocatable": {"nvidia.com/gpu": "0"}}})
        await h.until(lambda: "n1" not in h.service.cache.view)
        await h.kube.merge_patch(NODES, "n1", {"status": {"allocatable": {"nvidia.com/gpu": "10"}}})
        await h.until(lambda: "n1" in h.service.cache.view)


def test_assumption_survives_older_events_and_yields_to_newer() -> None:
    cache = ClusterCache(VENDORS, handshake_specs(VENDORS), clock=FakeClock())
    cache.apply_node(
        "ADDED",
        {
            **gpu_node("n1", count=1),
            "metadata": {**gpu_node("n1", count=1)["metadata"], "resourceVersion": "1"},
        },
    )
    alloc = "GPU-n1-0,NVIDIA,3000,30:;"
    annotations = {keys.VGPU_NODE: "n1", keys.NVIDIA_ALLOCATED: alloc}
    placed = placed_pod("default/p", "n1", annotations, VENDORS, 0)
    assert placed is not None
    cache.assume("uid-p", placed)
    pod = gpu_pod("p")
    pod["metadata"].update(uid="uid-p", resourceVersion="5")
    cache.apply_pod("MODIFIED", pod)  # no annotations yet: older than our patch
    assert cache.pods_on("n1") == [placed]
    cache.confirm("uid-p", "7")
    pod["metadata"]["resourceVersion"] = "6"
    cache.apply_pod("MODIFIED", pod)
    assert cache.pods_on("n1") == [placed]
    pod["metadata"].update(resourceVersion="7", annotations=annotations)
    cache.apply_pod("MODIFIED", pod)
    assert cache.pods_on("n1") == [placed]
    pod["status"] = {"phase": "Succeeded"}
    pod["metadata"]["resourceVersion"] = "8"
    cache.apply_pod("MODIFIED", pod)
    assert cache.pods_on("n1") == []


def test_init_usage_released_once_init_containers_succeed() -> None:
    cache = ClusterCache(VENDORS)
    cache.apply_node("ADDED", gpu_node("n1"))
    alloc = "GPU-n1-0,NVIDIA,6000,0:;GPU-n1-0,NVIDIA,1000,0:;"
    pod = gpu_pod("p", init=[{"name": "i"}])
    pod["metadata"].update(
        uid="u", annotations={keys.VGPU_NODE: "n1", keys.NVIDIA_ALLOCATED: alloc}
    )
    cache.apply_pod("ADDED", pod)
    [state] = cache.view.states()
    assert state.usage[0].usedmem == 6000
    pod["status"] = {"initContainerStatuses": [{"state": {"terminated": {"exitCode": 0}}}]}
    cache.apply_pod("MODIFIED", pod)
    [state] = cache.view.states()
    assert state.usage[0].usedmem == 1000


def test_malformed_allocation_is_ignored() -> None:
    cache = ClusterCache(VENDORS)
    cache.apply_node("ADDED", gpu_node("n1"))
    pod = gpu_pod("p")
    pod["metadata"].update(
        uid="u", annotations={keys.VGPU_NODE: "n1", keys.NVIDIA_ALLOCATED: "G,NVIDIA,x,1:;"}
    )
    cache.apply_pod("ADDED", pod)
    assert cache.pods_on("n1") == []


async def test_informer_relists_after_410_and_retries_after_errors() -> None:
    kube = FakeKube(history=1)
    seen: list[str] = []
    informer = Informer(
        kube,
        PODS,
        Sink(
            lambda items: seen.append(f"list {len(list(items))}"),
            lambda t, o: seen.append(f"{t} {objects.name(o)}"),
        ),
        backoff=(0.001, 0.01),
    )
    await kube.create(PODS, {"metadata": {"name": "a"}})
    kube.fail_next("list", Unavailable("down"))
    task = asyncio.create_task(informer.run())
    try:
        for _ in range(50):
            await asyncio.sleep(0.005)
            if seen:
                break
        assert seen == ["list 1"]
        await kube.create(PODS, {"metadata": {"name": "b"}})
        await asyncio.sleep(0.01)
        assert seen[-1] == "ADDED b"
        await kube.close_watches()
        kube.forget_history()
        await kube.create(PODS, {"metadata": {"name": "c"}})
        await kube.create(PODS, {"metadata": {"name": "d"}})
        await asyncio.sleep(0.05)
        assert informer.relists >= 1
        assert "ADDED d" in seen or seen[-1] == "list 4"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_unknown_uuid_does_not_poison_the_node() -> None:
    cache = ClusterCache(VENDORS)
    cache.apply_node("ADDED", gpu_node("n1"))
    pod = gpu_pod("p")
    pod["metadata"].update(
        uid="u", annotations={keys.VGPU_NODE: "n1", keys.NVIDIA_ALLOCATED: "GPU-x,NVIDIA,1,1:;"}
    )
    cache.apply_pod("ADDED", pod)
    [state] = cache.view.states()
    assert state.usage[0].used == 0
    assert T0.tzinfo is UTC


def test_metax_app_class_of_placed_pods_reaches_device_usage() -> None:
    """The pod's own annotations give its task class (`Vendor.task_class`): the cache's usage
    counts online/offline tasks per device, as the fit did."""
    register = json.dumps(
        [
            {
                "uuid": "MX-0",
                "bdf": "0000:01:00.0",
                "model": "C500",
                "totalDevCount": 16,
                "totalCompute": 100,
                "totalVRam": 65536,
                "availableDevCount": 16,
                "availableCompute": 100,
                "availableVRam": 65536,
                "numa": 0,
                "healthy": True,
                "qosPolicy": "best-effort",
                "linkZone": 0,
            }
        ]
    )
    vendors = {**VENDORS, "Metax-SGPU": MetaxSgpuVendor()}
    cache = ClusterCache(vendors, handshake_specs(vendors), clock=FakeClock())
    node = {
        "metadata": {
            "name": "m1",
            "resourceVersion": "1",
            "annotations": {keys.METAX_SGPU_REGISTER: register},
        },
        "status": {"allocatable": {"metax-tech.com/sgpu": "16"}},
    }
    cache.apply_node("ADDED", node)
    alloc = "MX-0,Metax-SGPU,1024,0:;"
    for i, app_class in enumerate(["online", "online", "offline", ""]):
        notes = {keys.VGPU_NODE: "m1", keys.METAX_SGPU_ALLOCATED: alloc}
        if app_class:
            notes[keys.METAX_APP_CLASS] = app_class
        placed = placed_pod(f"default/p{i}", "m1", notes, vendors, 0)
        assert placed is not None
        assert placed.task_classes == ({"Metax-SGPU": app_class} if app_class else {})
        pod = gpu_pod(f"p{i}")
        pod["metadata"].update(uid=f"uid-{i}", resourceVersion="2", annotations=notes)
        cache.apply_pod("ADDED", pod)
    state = cache.view.get("m1")
    assert state is not None
    (usage,) = state.usage
    assert usage.used == 4 and usage.tasks == (("offline", 1), ("online", 2))
