"""Convergence (issue 24): one rule for stale decisions, applied alike by a live and a fresh cache;
locks whose owner no longer needs them; the periodic self-check; bad Leases."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from hami.api import keys
from hami.core.accounting import PlacedPod
from hami.k8s import objects
from hami.k8s.api import EVENTS, LEASES, NODES, PODS, NotFound, Unavailable
from hami.k8s.fake import FakeKube
from hami.scheduler.events import EventRecorder
from hami.scheduler.leader import LeaderElector

from .harness import Harness, gpu_node, gpu_pod, running
from .test_leader import Tick

# --- helpers ------------------------------------------------------------------------------------


def counted(h: Harness) -> dict[str, PlacedPod]:
    """What the cache counts, by namespace/name."""
    cache = h.service.cache
    found = {key: cache.placed(uid) for uid, key in cache.counted().items()}
    return {k: v for k, v in found.items() if v is not None}


async def fresh_counts(kube: FakeKube) -> dict[str, PlacedPod]:
    """What a scheduler started now over the same API counts."""
    async with running(kube) as fresh:
        return counted(fresh)


def uid(h: Harness, name: str) -> str:
    return objects.uid(h.kube.stored(PODS, name, "default"))


async def touch(h: Harness, name: str) -> None:
    """A pod change nobody in hami makes (kube-scheduler's status condition, say)."""
    patch = {"status": {"conditions": [{"type": "PodScheduled", "status": "False"}]}}
    await h.kube.merge_patch(PODS, name, patch, "default")
    await h.settle()


def lock_of(h: Harness, node: str = "n1") -> str | None:
    return objects.annotations(h.kube.stored(NODES, node)).get(keys.NODE_LOCK)


async def set_lock(h: Harness, value: str, node: str = "n1") -> None:
    await h.kube.merge_patch(NODES, node, {"metadata": {"annotations": {keys.NODE_LOCK: value}}})
    await h.settle()


# --- one rule for stale decisions ---------------------------------------------------------------


async def test_a_dropped_decision_leaves_the_pod_and_a_fresh_cache_agrees() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1"))
        await h.add_pod(gpu_pod("a"))
        await h.settle()
        assert (await h.filter("a"))["NodeNames"] == ["n1"]
        await h.settle()
        assert set(counted(h)) == {"default/a"}
        assert (await h.filter("a", nodes=["elsewhere"]))["NodeNames"] == []  # fits nowhere now
        annotations = h.annotations("a")
        assert keys.VGPU_NODE not in annotations and keys.VGPU_TIME not in annotations
        labels = objects.labels(h.kube.stored(PODS, "a", "default"))
        assert keys.VGPU_NODE not in labels
        await touch(h, "a")  # a later event does not bring the decision back
        assert counted(h) == {}
        assert await fresh_counts(h.kube) == {}


async def test_a_failed_redecision_counts_the_decision_still_on_the_pod() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1", gpus=2))
        await h.add_pod(gpu_pod("a"))
        await h.settle()
        await h.filter("a")
        await h.settle()
        before = counted(h)
        h.kube.fail_next("merge_patch", Unavailable("down"), PODS)
        assert "down" in (await h.filter("a"))["Error"]
        assert counted(h) == before  # the old decision, which the pod still carries
        assert await fresh_counts(h.kube) == before


async def test_a_failed_removal_keeps_counting_what_the_pod_carries() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1"))
        await h.add_pod(gpu_pod("a"))
        await h.settle()
        await h.filter("a")
        await h.settle()
        before = counted(h)
        h.kube.fail_next("merge_patch", Unavailable("down"), PODS)
        assert (await h.filter("a", nodes=["elsewhere"]))["NodeNames"] == []
        assert h.annotations("a")[keys.VGPU_NODE] == "n1"
        assert counted(h) == before
        await touch(h, "a")
        assert counted(h) == before == await fresh_counts(h.kube)


async def test_older_events_never_move_a_pod_backwards() -> None:
    async with running(start=False) as h:
        cache = h.service.cache
        cache.apply_node("ADDED", gpu_node("n1"))
        pod: dict[str, Any] = gpu_pod("p")
        alloc = "GPU-n1-0,NVIDIA,3000,30:;"
        pod["metadata"].update(
            uid="u",
            resourceVersion="9",
            annotations={keys.VGPU_NODE: "n1", keys.NVIDIA_ALLOCATED: alloc},
        )
        cache.apply_pod("MODIFIED", pod)
        older = {**pod, "metadata": {**pod["metadata"], "resourceVersion": "8", "annotations": {}}}
        cache.apply_pod("MODIFIED", older)
        assert [p.key for p in cache.pods_on("n1")] == ["default/p"]


# --- the self-check -----------------------------------------------------------------------------


async def test_self_check_finds_and_repairs_every_kind_of_drift() -> None:
    async with running() as h:
        h.service.selfcheck.settle = 0.0
        await h.add_node(gpu_node("n1", gpus=2))
        for name in ("a", "b"):
            await h.add_pod(gpu_pod(name))
        await h.settle()
        for name in ("a", "b"):
            await h.filter(name)
        await h.settle()
        truth = counted(h)
        cache = h.service.cache
        cache.discard(uid(h, "a"))  # a missed event: "a" not counted
        other = PlacedPod("default/b", "n1", {"NVIDIA": ((),)})
        cache.assume(uid(h, "b"), other)  # "b" counted with other devices
        cache.confirm(uid(h, "b"), objects.resource_version(h.kube.stored(PODS, "b", "default")))
        ghost = gpu_pod("ghost")
        ghost["metadata"].update(uid="uid-ghost", resourceVersion="1")
        ghost["metadata"]["annotations"] = dict(h.annotations("b"))
        cache.apply_pod("ADDED", ghost)  # a pod whose DELETED event was missed
        drift = await h.service.selfcheck.check()
        assert drift.missing == ("default/a",)
        assert drift.different == ("default/b",)
        assert drift.extra == ("default/ghost",)
        assert counted(h) == truth
        assert len(await h.events("CacheRepaired")) == 3
        again = await h.service.selfcheck.check()
        assert again.total == 0


async def test_self_check_skips_a_decision_in_flight() -> None:
    async with running() as h:
        h.service.selfcheck.settle = 0.0
        await h.add_node(gpu_node("n1"))
        await h.add_pod(gpu_pod("a"))
        await h.settle()
        placed = PlacedPod("default/a", "n1", {"NVIDIA": ((),)})
        h.service.cache.assume(uid(h, "a"), placed)  # the patch is still on its way
        assert (await h.service.selfcheck.check()).total == 0
        assert "default/a" in counted(h)


# --- node locks whose owner no longer needs them -----------------------------------------------


async def test_a_lock_of_an_allocated_owner_is_taken_over_at_once() -> None:
    async with running(bind_lock_wait=20.0) as h:
        await h.add_node(gpu_node("n1"))
        for name in ("a", "b"):
            await h.add_pod(gpu_pod(name))
        await h.settle()
        assert await h.schedule("a") == "n1"
        # the device plugin marked "a" allocated, then crashed before releasing the lock
        phase = {"metadata": {"annotations": {keys.BIND_PHASE: keys.BIND_PHASE_SUCCESS}}}
        await h.kube.merge_patch(PODS, "a", phase, "default")
        await h.settle()
        await h.filter("b")
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await h.bind("b", "n1") == {"Error": ""}
        assert loop.time() - started < 1.0  # not waited out
        assert str(lock_of(h)).endswith(",default,b")
        reclaimed = h.service.metrics.locks_reclaimed.labels("owner-allocated")._value.get()
        assert reclaimed == 1
        assert not await h.events("NodeLockReclaimed")  # the everyday race: no Event


async def test_self_check_removes_a_lock_naming_a_pod_that_no_longer_exists(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running() as h:
        h.service.selfcheck.settle = 0.0
        await h.add_node(gpu_node("n1"))
        await h.add_node(gpu_node("n2"))
        await h.add_pod(gpu_pod("live"))
        await h.settle()
        await h.filter("live", nodes=["n2"])
        await h.settle()
        now = "2026-08-21T06:20:39Z"
        await set_lock(h, f"{now},default,ghost")
        await set_lock(h, f"{now},default,live", node="n2")  # its owner still needs it
        with caplog.at_level(logging.WARNING):
            await h.service.selfcheck.check()
        assert lock_of(h) is None
        assert lock_of(h, "n2") == f"{now},default,live"
        assert "default/ghost" in caplog.text and "no longer exists" in caplog.text
        [event] = await h.events("NodeLockReclaimed")
        assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Node", "name": "n1"}


async def test_a_follower_leaves_locks_alone() -> None:
    async with running(start=False, leader_elect=True, identity="me") as h:
        await h.add_node(gpu_node("n1"))
        h.service.cache.replace_nodes(h.kube.all(NODES))
        h.service.cache.replace_pods([])
        h.service.selfcheck.settle = 0.0
        await set_lock(h, "2026-08-21T06:20:39Z,default,ghost")
        h.service.cache.replace_nodes(h.kube.all(NODES))
        await h.service.selfcheck.check()
        assert lock_of(h) is not None


# --- bad Leases ---------------------------------------------------------------------------------


def lease_events(kube: FakeKube) -> list[dict[str, Any]]:
    written: list[Any] = kube.all(EVENTS)
    return [e for e in written if e["involvedObject"]["kind"] == "Lease"]


async def test_an_unknown_holder_is_followed_while_it_renews_then_taken_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube, tick = FakeKube(), Tick()
    recorder = EventRecorder(kube, "hami-scheduler")
    me = LeaderElector(kube, "hami", "ns", "me", monotonic=tick, recorder=recorder)
    lease = {"metadata": {"name": "hami", "namespace": "ns"}, "spec": {"holderIdentity": "who?"}}
    await kube.create(LEASES, {**lease, "spec": {**lease["spec"], "renewTime": "1"}}, "ns")
    with caplog.at_level(logging.INFO):
        await me.step()
        for second in range(1, 16):  # the stranger renews every second
            tick.now = second
            stored = kube.stored(LEASES, "hami", "ns")
            stored = {**stored, "spec": {**objects.spec(stored), "renewTime": str(second)}}
            await kube.replace(LEASES, "hami", stored, "ns")
            await me.step()
            assert not me.is_leader
        tick.now = 26.5  # then stops: taken over after the duration
        await me.step()
    assert me.is_leader
    assert "held by who?" in caplog.text and "took over from who?" in caplog.text
    await recorder.flush()
    [event] = lease_events(kube)
    assert event["reason"] == "LeaderElection" and "took over from who?" in event["message"]
    assert event["involvedObject"]["apiVersion"] == "coordination.k8s.io/v1"


async def test_a_deleted_lease_is_written_again_by_its_leader_not_taken_by_a_follower(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube, tick = FakeKube(), Tick()
    recorder = EventRecorder(kube, "hami-scheduler")
    a = LeaderElector(kube, "hami", "ns", "a", monotonic=tick, recorder=recorder)
    b = LeaderElector(kube, "hami", "ns", "b", monotonic=tick, recorder=recorder)
    await a.step()
    await b.step()
    await kube.delete(LEASES, "hami", "ns")  # by hand
    with caplog.at_level(logging.WARNING):
        tick.now = 1
        await b.step()  # the follower sees it missing first: it waits
        assert not b.is_leader
        await a.step()  # the leader writes it again
        assert a.is_leader
        for second in (3, 5, 7, 9, 11, 13):
            tick.now = second
            await a.step()
            await b.step()
            assert (a.is_leader, b.is_leader) == (True, False)
    assert objects.spec(kube.stored(LEASES, "hami", "ns"))["holderIdentity"] == "a"
    assert "was deleted" in caplog.text and "is missing" in caplog.text
    await recorder.flush()
    assert [e["reason"] for e in lease_events(kube)] == ["LeaderElection", "LeaseRecreated"]


async def test_a_lease_missing_for_a_whole_duration_is_created_by_a_follower() -> None:
    kube, tick = FakeKube(), Tick()
    a = LeaderElector(kube, "hami", "ns", "a", monotonic=tick)
    b = LeaderElector(kube, "hami", "ns", "b", monotonic=tick)
    await a.step()
    await b.step()
    await kube.delete(LEASES, "hami", "ns")  # and the leader is gone too
    tick.now = 1
    await b.step()
    tick.now = 11.5
    await b.step()
    assert b.is_leader


async def test_losing_the_race_to_create_the_lease_is_a_lost_round() -> None:
    kube, tick = FakeKube(), Tick()
    a = LeaderElector(kube, "hami", "ns", "a", monotonic=tick)
    b = LeaderElector(kube, "hami", "ns", "b", monotonic=tick)
    await a.step()
    await b.step()
    await kube.delete(LEASES, "hami", "ns")
    tick.now = 1
    await b.step()
    tick.now = 12
    await b.step()  # b creates it (a did not renew for 11 s)
    assert b.is_leader
    kube.fail_next("get", NotFound("gone"), LEASES)
    await a.step()  # a sees it missing, its create conflicts: a lost round, not a won one
    assert not a.is_leader
