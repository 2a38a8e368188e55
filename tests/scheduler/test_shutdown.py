"""Graceful shutdown: no new work, binds in flight finish, lock waits end, the Lease is released."""

from __future__ import annotations

import asyncio
import os
import signal

from hami.api import keys
from hami.k8s import objects
from hami.k8s.api import LEASES, NODES, PODS, KubeAPIError
from hami.k8s.fake import FakeKube
from hami.scheduler.main import serve
from hami.scheduler.settings import SchedulerSettings

from .harness import gpu_node, gpu_pod, running
from .test_metric_writers import value


async def leading(kube: FakeKube, identity: str = "me") -> None:
    async with asyncio.timeout(5.0):
        while holder(kube) != identity:
            await asyncio.sleep(0.01)


def holder(kube: FakeKube) -> str | None:
    try:
        lease = kube.stored(LEASES, "hami-scheduler", "kube-system")
    except KeyError:
        return None
    return str(objects.spec(lease).get("holderIdentity"))


async def test_drain_lets_a_bind_in_flight_finish_and_refuses_new_work() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1"))
        for name in ("a", "b"):
            await h.add_pod(gpu_pod(name))
        await h.settle()
        assert (await h.filter("a"))["NodeNames"] == ["n1"]
        h.kube.delays["bind"] = 0.3  # the Binding is slow to write
        binding = asyncio.create_task(h.bind("a", "n1"))
        await h.until(lambda: h.kube.writes("bind") == 1)
        draining = asyncio.create_task(h.service.drain(5.0))
        await h.settle()
        assert not draining.done()  # waits for the bind
        assert (await h.filter("b"))["Error"] == "scheduler is shutting down"
        assert (await h.client.get("/readyz")).status_code == 503
        assert await binding == {"Error": ""}
        assert await asyncio.wait_for(draining, 1.0) is True
        assert objects.spec(h.kube.stored(PODS, "a", "default"))["nodeName"] == "n1"
        assert (await h.bind("b", "n1"))["Error"] == "scheduler is shutting down"


async def test_drain_ends_a_lock_wait_and_keeps_the_holders_lock() -> None:
    async with running(bind_lock_wait=10.0) as h:
        await h.add_node(gpu_node("n1"))
        for name in ("a", "b"):
            await h.add_pod(gpu_pod(name))
        await h.settle()
        assert await h.schedule("a") == "n1"
        await h.filter("b")
        waiting = asyncio.create_task(h.bind("b", "n1"))
        await h.settle(0.05)
        assert not waiting.done()
        started = asyncio.get_running_loop().time()
        assert await h.service.drain(5.0) is True
        assert asyncio.get_running_loop().time() - started < 2.0  # not the 10 s lock wait
        result = await waiting
        assert "scheduler shutting down" in result["Error"] and "default/a" in result["Error"]
        lock = objects.annotations(h.kube.stored(NODES, "n1"))[keys.NODE_LOCK]
        assert lock.endswith(",default,a")
        waits = "hami_scheduler_node_lock_wait_seconds_count"
        assert value(h, waits, outcome="aborted") == 1


async def test_drain_gives_up_after_the_grace() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1"))
        await h.add_pod(gpu_pod("a"))
        await h.settle()
        await h.filter("a")
        h.kube.delays["bind"] = 1.0
        binding = asyncio.create_task(h.bind("a", "n1"))
        await h.until(lambda: h.kube.writes("bind") == 1)
        assert await h.service.drain(0.1) is False
        assert await binding == {"Error": ""}


def settings(**overrides: object) -> SchedulerSettings:
    base: dict[str, object] = {
        "http_bind": "127.0.0.1:0",
        "leader_elect": True,
        "identity": "me",
        "renew_interval": 0.05,
        "shutdown_grace": 2.0,
        "sync_wait": 1.0,
    }
    return SchedulerSettings(**{**base, **overrides})  # type: ignore[arg-type]


async def test_sigterm_releases_the_lease_and_returns_within_the_bound() -> None:
    kube = FakeKube()
    task = asyncio.create_task(serve(settings(), kube))
    await leading(kube)
    await asyncio.sleep(0.2)  # serving
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # ours, not the default
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, 5.0)
    assert holder(kube) == ""
    lease = objects.spec(kube.stored(LEASES, "hami-scheduler", "kube-system"))
    assert lease["leaseDurationSeconds"] == 1
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers removed again


async def test_stop_before_leading_writes_nothing_to_the_lease() -> None:
    kube = FakeKube()
    await kube.create(
        LEASES,
        {
            "metadata": {"name": "hami-scheduler", "namespace": "kube-system"},
            "spec": {"holderIdentity": "other", "renewTime": "x"},
        },
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings(lease_duration=60.0), kube, stop))
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, 5.0)
    assert holder(kube) == "other"
    assert kube.writes("replace", "leases") == 0


async def test_an_unreachable_api_does_not_hold_the_exit() -> None:
    kube = FakeKube()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings(), kube, stop))
    await leading(kube)
    kube.fail_next("replace", KubeAPIError("down", 503), LEASES, times=1000)
    stop.set()
    await asyncio.wait_for(task, 5.0)  # the release failed; the process still ends
    assert holder(kube) == "me"


async def test_a_filter_waiting_for_the_cache_is_answered_at_once_on_drain() -> None:
    async with running(start=False, sync_wait=10.0) as h:
        body = {"Pod": gpu_pod("p"), "NodeNames": ["n1"]}
        pending = asyncio.create_task(h.client.post("/filter", json=body))
        await asyncio.sleep(0.05)
        assert not pending.done()  # waiting for the cache to sync
        assert await asyncio.wait_for(h.service.drain(5.0), 1.0) is True
        assert (await pending).json()["Error"] == "scheduler is shutting down"
