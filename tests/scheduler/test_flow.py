"""Filter and bind through the HTTP app against the in-memory API (wire-format.md §3, §10)."""

from __future__ import annotations

import asyncio

from hami.api import annotations as codec
from hami.api import keys
from hami.k8s import objects
from hami.k8s.api import NODES, PODS, Unavailable
from hami.k8s.fake import FakeKube, node_manifest
from hami.scheduler.events import MESSAGE_LIMIT, clip, name_list

from .harness import T0, UUID_A, container, gpu_node, gpu_pod, running

ALLOC = f"{UUID_A},NVIDIA,3000,30:;"


async def test_worked_example_byte_for_byte() -> None:
    async with running() as h:
        await h.add_node(gpu_node("node-a", uuids=[UUID_A]))
        await h.add_node(node_manifest("node-b"))
        await h.add_pod(gpu_pod("gpu-pod"))
        await h.settle()
        result = await h.filter("gpu-pod")
        assert result == {
            "Nodes": None,
            "NodeNames": ["node-a"],
            "FailedNodes": {},
            "FailedAndUnresolvableNodes": None,
            "Error": "",
        }
        assert h.annotations("gpu-pod") == {
            keys.VGPU_NODE: "node-a",
            keys.VGPU_TIME: str(int(T0.timestamp())),
            keys.NVIDIA_TO_ALLOCATE: ALLOC,
            keys.NVIDIA_ALLOCATED: ALLOC,
        }
        assert objects.labels(h.kube.stored(PODS, "gpu-pod", "default")) == {
            keys.VGPU_NODE: "node-a"
        }
        h.clock.advance(1)
        assert await h.bind("gpu-pod", "node-a") == {"Error": ""}
        node = h.kube.stored(NODES, "node-a")
        assert objects.annotations(node)[keys.NODE_LOCK] == "2026-08-21T06:20:40Z,default,gpu-pod"
        pod = h.kube.stored(PODS, "gpu-pod", "default")
        assert objects.spec(pod)["nodeName"] == "node-a"
        assert h.annotations("gpu-pod")[keys.BIND_PHASE] == "allocating"
        assert h.annotations("gpu-pod")[keys.BIND_TIME] == str(int(T0.timestamp()) + 1)
        [ok] = await h.events("FilteringSucceed")
        assert ok["message"] == "find fit node(node-a), 1 nodes not fit, 1 nodes fit(node-a:0.00)"
        [bound] = await h.events("BindingSucceed")
        assert bound["message"] == "Successfully binding node [node-a] to default/gpu-pod"
        assert bound["source"] == {"component": "hami-scheduler"}


async def test_three_writes_per_pod_without_events() -> None:
    async with running(events=False) as h:
        await h.add_node(gpu_node("n1"))
        await h.add_pod(gpu_pod("p"))
        await h.settle()
        before = h.kube.writes()
        assert await h.schedule("p") == "n1"
        assert h.kube.writes() - before == 3


async def test_pod_without_devices_passes_through() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1"))
        await h.add_pod(gpu_pod("web", {"name": "web", "image": "nginx"}))
        result = await h.filter("web", nodes=["n1", "other"])
        assert result["NodeNames"] == ["n1", "other"]
        assert h.annotations("web") == {}


async def test_no_fit_reports_hami_reasons_and_event() -> None:
    async with running() as h:
        await h.add_node(gpu_node("small", memory=1000))
        await h.add_pod(gpu_pod("big"))
        await h.settle()
        result = await h.filter("big", nodes=["small", "ghost"])
        assert result["NodeNames"] == []
        assert result["FailedNodes"] == {
            "ghost": "node unregistered",
            "small": "1/1 CardInsufficientMemory",
        }
        [failed] = await h.events("FilteringFailed")
        assert failed["type"] == "Warning"
        assert "no available node, 2 nodes do not meet" in str(failed["message"])


async def test_failed_event_says_how_many_node_names_it_left_out() -> None:
    async with running() as h:
        for i in range(12):
            await h.add_node(gpu_node(f"small{i:02}", memory=1000))
        await h.add_pod(gpu_pod("big"))
        await h.settle()
        ghosts = [f"ghost{i}" for i in range(3)]
        result = await h.filter("big", nodes=[*h.node_names(), *ghosts])
        assert result["NodeNames"] == [] and len(result["FailedNodes"]) == 15
        [failed] = await h.events("FilteringFailed")
        shown = ",".join(f"small{i:02}" for i in range(10))
        assert failed["message"] == (
            "no available node, 15 nodes do not meet; "
            f"12 nodes CardInsufficientMemory({shown} +2 more); "
            "3 nodes node unregistered(ghost0,ghost1,ghost2)"
        )


def test_long_event_messages_are_cut_with_a_marker() -> None:
    assert name_list(["a", "b"], 2) == "a,b"
    assert name_list(["a", "b", "c"], 2) == "a,b +1 more"
    assert clip("short") == "short"
    for size in (1025, 1100, 5000, 100_000):
        cut = clip("x" * size)
        assert len(cut) == MESSAGE_LIMIT
        hidden = size - cut.index("…")
        assert cut.endswith(f"… +{hidden} more characters")


async def test_invalid_pod_is_an_error_naming_container() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1"))
        await h.add_pod(gpu_pod("bad", container("trainer", gpu=1, gpucores=300)))
        result = await h.filter("bad")
        assert "container trainer" in result["Error"] and "nvidia.com/gpucores" in result["Error"]


async def test_concurrent_filters_never_share_capacity() -> None:
    kube = FakeKube()
    kube.delays["merge_patch"] = 0.01  # every patch yields; filters interleave
    async with running(kube) as h:
        await h.add_node(gpu_node("n1", gpus=2, count=4, memory=10000))
        for i in range(20):
            await h.add_pod(gpu_pod(f"p{i}", gpu=1, gpumem=3000, gpucores=10))
        await h.settle()
        results = await asyncio.gather(*(h.filter(f"p{i}") for i in range(20)))
        placed = [r for r in results if r["NodeNames"]]
        assert len(placed) == 6  # 3 × 3000 MiB per 10000 MiB card, two cards
        per_device: dict[str, int] = {}
        for i in range(20):
            value = h.annotations(f"p{i}").get(keys.NVIDIA_ALLOCATED)
            if value:
                [[device]] = codec.decode_pod_devices(value)
                per_device[device.uuid] = per_device.get(device.uuid, 0) + device.usedmem
        assert all(total <= 10000 for total in per_device.values())


async def test_failed_patch_undoes_the_assumption() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1", count=1))
        await h.add_pod(gpu_pod("a"))
        await h.add_pod(gpu_pod("b"))
        await h.settle()
        h.kube.fail_next("merge_patch", Unavailable("apiserver down"), PODS)
        result = await h.filter("a")
        assert "apiserver down" in result["Error"]
        assert await h.schedule("b") == "n1"
        assert await h.events("FilteringFailed")


async def test_deleted_pod_frees_capacity_at_once() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1", count=1))
        await h.add_pod(gpu_pod("first"))
        await h.add_pod(gpu_pod("second"))
        await h.settle()
        assert await h.schedule("first") == "n1"
        assert (await h.filter("second"))["NodeNames"] == []
        await h.kube.delete(PODS, "first", "default")
        await h.until(lambda: not h.service.cache.pods_on("n1"))
        assert (await h.filter("second"))["NodeNames"] == ["n1"]


async def test_restart_rebuilds_usage_from_annotations() -> None:
    kube = FakeKube()
    async with running(kube) as h:
        await h.add_node(gpu_node("n1", count=1))
        await h.add_pod(gpu_pod("first"))
        await h.settle()
        assert await h.schedule("first") == "n1"
    async with running(kube) as again:
        await again.add_pod(gpu_pod("second"))
        await again.settle()
        result = await again.filter("second")
        assert result["NodeNames"] == []
        assert result["FailedNodes"] == {"n1": "1/1 CardTimeSlicingExhausted"}


async def test_refilter_releases_previous_choice() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1", count=1))
        await h.add_pod(gpu_pod("p"))
        await h.settle()
        assert (await h.filter("p"))["NodeNames"] == ["n1"]
        assert (await h.filter("p"))["NodeNames"] == ["n1"]


async def test_registration_change_is_seen_without_a_tick() -> None:
    async with running() as h:
        await h.add_node(node_manifest("late"))
        await h.add_pod(gpu_pod("p"))
        await h.settle()
        assert (await h.filter("p"))["FailedNodes"] == {"late": "node unregistered"}
        registered = gpu_node("late")
        await h.kube.merge_patch(NODES, "late", {"metadata": registered["metadata"]})
        await h.until(lambda: "late" in h.service.cache.view)
        assert (await h.filter("p"))["NodeNames"] == ["late"]


async def test_malformed_registration_skips_only_that_node() -> None:
    async with running() as h:
        broken = node_manifest("broken", {keys.NVIDIA_REGISTER: "[{not json"})
        await h.add_node(broken)
        await h.add_node(gpu_node("good"))
        await h.add_pod(gpu_pod("p"))
        await h.settle()
        assert await h.schedule("p") == "good"
        [event] = await h.events("RegistrationInvalid")
        assert keys.NVIDIA_REGISTER in str(event["message"])
        assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Node", "name": "broken"}


async def test_simulation_path_has_no_side_effects() -> None:
    async with running() as h:
        await h.add_pod(gpu_pod("p"))
        template = gpu_node("template-a")
        small = gpu_node("template-b", memory=100)
        pod = h.kube.stored(PODS, "p", "default")
        before = h.kube.writes()
        body = {"Pod": pod, "Nodes": {"items": [template, small]}, "NodeNames": None}
        result = (await h.client.post("/filter", json=body)).json()
        assert [objects.name(n) for n in result["Nodes"]["items"]] == ["template-a"]
        assert result["FailedNodes"] == {}
        assert h.kube.writes() == before
        body = {"Pod": pod, "Nodes": {"items": [small, node_manifest("cold")]}}
        result = (await h.client.post("/filter", json=body)).json()
        assert result["Nodes"] == {"metadata": {}, "items": []}
        assert result["FailedNodes"] == {
            "cold": "node unregistered",
            "template-b": "1/1 CardInsufficientMemory",
        }


async def test_init_container_usage_collapses() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1", memory=10000))
        pod = gpu_pod(
            "p",
            container("app", gpu=1, gpumem=4000),
            init=[container("setup", gpu=1, gpumem=6000)],
        )
        await h.add_pod(pod)
        await h.settle()
        assert await h.schedule("p") == "n1"
        [state] = h.service.cache.view.states()
        assert state.usage[0].usedmem == 6000
        assert h.annotations("p")[keys.NVIDIA_ALLOCATED] == (
            "GPU-n1-0,NVIDIA,6000,0:;GPU-n1-0,NVIDIA,4000,0:;"
        )
