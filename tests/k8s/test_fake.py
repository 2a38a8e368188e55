"""The in-memory KubeAPI behaves like the API server where hami depends on it."""

from __future__ import annotations

import asyncio

import pytest

from hami.k8s import objects
from hami.k8s.api import NODES, PODS, Conflict, Gone, KubeAPIError, NotFound, Unavailable, error_for
from hami.k8s.fake import FakeKube, merge_patch, node_manifest


def test_merge_patch_rfc7386() -> None:
    assert merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None, "e": 4}, "f": [1]}) == {
        "a": 1,
        "b": {"d": 3, "e": 4},
        "f": [1],
    }
    assert merge_patch({"a": 1}, "x") == "x"


def test_error_for_status() -> None:
    assert isinstance(error_for(404, "x"), NotFound)
    assert isinstance(error_for(409, "x"), Conflict)
    assert isinstance(error_for(410, "x"), Gone)
    assert isinstance(error_for(503, "x"), Unavailable)
    assert type(error_for(403, "x")) is KubeAPIError
    assert NODES.path(name="n") == "/api/v1/nodes/n"
    assert PODS.path("ns") == "/api/v1/namespaces/ns/pods"


async def test_resource_version_precondition() -> None:
    kube = FakeKube()
    node = await kube.create(NODES, node_manifest("n1"))
    rv = objects.resource_version(node)
    patched = await kube.merge_patch(
        NODES, "n1", {"metadata": {"annotations": {"k": "v"}, "resourceVersion": rv}}
    )
    assert objects.annotations(patched) == {"k": "v"}
    with pytest.raises(Conflict):
        await kube.merge_patch(
            NODES, "n1", {"metadata": {"annotations": {"k": "w"}, "resourceVersion": rv}}
        )
    with pytest.raises(NotFound):
        await kube.get(NODES, "nope")


async def test_watch_replays_then_streams_and_410_when_history_is_gone() -> None:
    kube = FakeKube()
    listed = await kube.list(PODS)
    await kube.create(PODS, {"metadata": {"name": "a", "namespace": "ns"}})
    seen: list[str] = []

    async def consume() -> None:
        async for event in kube.watch(PODS, resource_version=listed.resource_version):
            seen.append(f"{event.type} {objects.name(event.object)}")

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    await kube.bind("ns", "a", "n1", annotations={"x": "y"})
    await kube.delete(PODS, "a", "ns")
    await asyncio.sleep(0.01)
    await kube.close_watches()
    await task
    assert seen == ["ADDED a", "MODIFIED a", "DELETED a"]
    kube.forget_history()
    await kube.create(PODS, {"metadata": {"name": "b", "namespace": "ns"}})
    with pytest.raises(Gone):
        async for _ in kube.watch(PODS, resource_version=listed.resource_version):
            pass


async def test_bind_sets_node_and_annotations_once() -> None:
    kube = FakeKube()
    pod = await kube.create(PODS, {"metadata": {"name": "a"}})
    await kube.bind("default", "a", "n1", uid=objects.uid(pod), annotations={"k": "v"})
    stored = kube.stored(PODS, "a", "default")
    assert objects.spec(stored)["nodeName"] == "n1"
    assert objects.annotations(stored) == {"k": "v"}
    with pytest.raises(Conflict):
        await kube.bind("default", "a", "n2")
    assert kube.writes("bind") == 2  # attempts are counted, failed ones too


async def test_injected_faults_and_selectors() -> None:
    kube = FakeKube()
    await kube.create(NODES, {"metadata": {"name": "gpu", "labels": {"gpu": "on"}}})
    await kube.create(NODES, {"metadata": {"name": "cpu"}})
    assert [objects.name(n) for n in (await kube.list(NODES, label_selector="gpu=on")).items] == [
        "gpu"
    ]
    kube.fail_next("merge_patch", Unavailable("down"), NODES)
    with pytest.raises(Unavailable):
        await kube.merge_patch(NODES, "gpu", {"metadata": {"labels": {"a": "b"}}})
    await kube.merge_patch(NODES, "gpu", {"metadata": {"labels": {"a": "b"}}})
    lease = await kube.create(NODES, {"metadata": {"name": "x"}})
    with pytest.raises(Conflict):
        await kube.replace(NODES, "x", {"metadata": {"name": "x", "resourceVersion": "0"}})
    await kube.replace(NODES, "x", lease)
