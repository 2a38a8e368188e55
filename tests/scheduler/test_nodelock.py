"""The node lock inside /bind: contention, waiting, expiry, dead owners, release on failure."""

from __future__ import annotations

import asyncio

import pytest

from hami.api import keys
from hami.k8s import objects
from hami.k8s.api import NODES, PODS, Conflict, Unavailable
from hami.scheduler.nodelock import LockContended

from .harness import gpu_node, gpu_pod, running


def lock_of(h: object, node: str = "n1") -> str | None:
    return objects.annotations(h.kube.stored(NODES, node)).get(keys.NODE_LOCK)  # type: ignore[attr-defined]


async def release_as_device_plugin(h: object, node: str = "n1") -> None:
    await h.kube.merge_patch(NODES, node, {"metadata": {"annotations": {keys.NODE_LOCK: None}}})  # type: ignore[attr-defined]


async def test_second_bind_waits_for_the_device_plugin() -> None:
    async with running(bind_lock_wait=2.0) as h:
        await h.add_node(gpu_node("n1"))
        for name in ("a", "b"):
            await h.add_pod(gpu_pod(name))
        await h.settle()
        assert await h.schedule("a") == "n1"
        assert (await h.filter("b"))["NodeNames"] == ["n1"]
        waiting = asyncio.create_task(h.bind("b", "n1"))
        await h.settle(0.05)
        assert not waiting.done()
        await release_as_device_plugin(h)
        assert await asyncio.wait_for(waiting, 1.0) == {"Error": ""}
        assert str(lock_of(h)).endswith(",default,b")


async def test_contention_past_the_wait_fails_the_bind() -> None:
    async with running(bind_lock_wait=0.1) as h:
        await h.add_node(gpu_node("n1"))
        for name in ("a", "b"):
            await h.add_pod(gpu_pod(name))
        await h.settle()
        await h.schedule("a")
        await h.filter("b")
        result = await h.bind("b", "n1")
        assert "node lock contention" in result["Error"]
        assert "default/a" in result["Error"]
        assert objects.spec(h.kube.stored(PODS, "b", "default")).get("nodeName") is None
        assert await h.events("BindingFailed")


async def test_same_pod_reenters_and_a_live_owner_blocks() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1"))
        await h.add_pod(gpu_pod("p"))
        await h.settle()
        await h.filter("p")
        locker = h.service.locker
        await locker.acquire("n1", "default", "p")
        await h.settle()
        await locker.acquire("n1", "default", "p")  # re-entry
        with pytest.raises(LockContended, match="default/p"):
            await locker.acquire("n1", "default", "other", wait=0.05)


async def test_orphaned_and_expired_locks() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1"))
        await h.add_pod(gpu_pod("p"))
        await h.settle()
        locker = h.service.locker
        await locker.acquire("n1", "default", "gone")  # free: taken
        await h.settle()
        await locker.acquire("n1", "default", "p")  # owner "gone" has no pod: taken over
        await h.settle()
        assert str(lock_of(h)).endswith(",default,p")
        await h.add_pod(gpu_pod("q"))
        await h.settle()
        h.clock.advance(301)
        await locker.acquire("n1", "default", "q")  # p exists but the lock expired
        assert str(lock_of(h)).endswith(",default,q")
        await locker.release("n1", "default", "someone-else")
        await h.settle()
        assert lock_of(h) is not None
        await locker.release("n1", "default", "q")
        await h.settle()
        assert lock_of(h) is None


async def test_stale_cache_retries_on_conflict() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1"))
        await h.settle()
        h.kube.fail_next("merge_patch", Conflict("modified"), NODES)
        await h.service.locker.acquire("n1", "default", "p")
        assert str(lock_of(h)).endswith(",default,p")


async def test_failed_binding_releases_the_lock() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1"))
        await h.add_pod(gpu_pod("p"))
        await h.settle()
        await h.filter("p")
        h.kube.fail_next("bind", Unavailable("boom"))
        result = await h.bind("p", "n1")
        assert "boom" in result["Error"]
        await h.settle()
        assert lock_of(h) is None


async def test_bind_to_unknown_node_or_missing_pod() -> None:
    async with running() as h:
        await h.add_pod(gpu_pod("p"))
        await h.settle()
        # no filter decision for it: refused before the node is even looked at
        assert "has no decision" in (await h.bind("p", "nowhere"))["Error"]
        body = {"PodName": "ghost", "PodNamespace": "default", "PodUID": "x", "Node": "n1"}
        assert "not found" in (await h.client.post("/bind", json=body)).json()["Error"]
