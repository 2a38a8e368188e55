"""Two `hami scheduler` replicas with `--leader-elect --reuse-port` on one address: only the Lease
holder listens; SIGKILL it and the other takes the Lease and schedules the next pod within 15 s
(the webhook refuses pods while nobody listens, so the next pod is created as soon as it can)."""

from __future__ import annotations

import asyncio
import time

import pytest

from hami.cluster.process import Component
from hami.demo.stack import Stack, gpu_pod
from hami.k8s import objects
from hami.k8s.api import LEASES, PODS, KubeAPIError
from hami.k8s.client import LightkubeAPI
from tests.e2e.localcluster import wait_until
from tests.e2e.stack import serve, stack_fixture

pytestmark = pytest.mark.e2e

NODES = ("ha-0", "ha-1")
LEASE = ("default", "hami-scheduler")
FAILOVER_LIMIT = 15.0


def _replica_args(identity: str) -> list[str]:
    return ["--leader-elect", "--reuse-port", "--lease-namespace", LEASE[0], "--identity", identity]


def _replicas(stack: Stack) -> None:
    stack.scheduler(name="replica-a", args=_replica_args("replica-a"))
    stack.scheduler(name="replica-b", args=_replica_args("replica-b"), wait_ready=False)


stack = stack_fixture("hami-ha", lambda s: serve(s, NODES, schedulers=_replicas))


async def _holder(api: LightkubeAPI) -> str:
    lease = await api.get(LEASES, LEASE[1], LEASE[0])
    return str(objects.spec(lease).get("holderIdentity"))


async def _bound(api: LightkubeAPI, name: str) -> str | None:
    node = objects.spec(await api.get(PODS, name, "default")).get("nodeName")
    return str(node) if node else None


async def _create_when_served(api: LightkubeAPI, name: str) -> bool:
    """Create the pod; False while the webhook (so no replica) is answering."""
    try:
        await api.create(PODS, gpu_pod(name, {"gpu": 1, "gpumem": 1000}), "default")
    except KubeAPIError:
        return False
    return True


def _replica(stack: Stack, name: str) -> Component:
    return next(c for c in stack.components if c.name == name)


@pytest.mark.timeout(180)
async def test_follower_takes_over_within_15_s(stack: Stack) -> None:
    api = stack.api()
    try:
        assert await _holder(api) == "replica-a"
        # replica-b was started without waiting for it: give it time to reach the lease
        deadline = time.monotonic() + 30
        while "waiting for the lease" not in stack.log("replica-b"):
            assert time.monotonic() < deadline, stack.log("replica-b")
            await asyncio.sleep(0.2)
        await api.create(PODS, gpu_pod("before", {"gpu": 1, "gpumem": 1000}), "default")
        await wait_until(lambda: _bound(api, "before"), 30, "the leader to bind a pod")

        leader = _replica(stack, "replica-a").process
        assert leader is not None
        leader.kill()
        leader.wait(10)
        killed = time.monotonic()
        await wait_until(lambda: _create_when_served(api, "after"), 30, "a replica to serve")
        await wait_until(lambda: _bound(api, "after"), 30, "the new leader to bind a pod")
        failover = time.monotonic() - killed
        assert await _holder(api) == "replica-b"
        print(f"failover: the next pod bound {failover:.1f} s after the kill")
        assert failover <= FAILOVER_LIMIT, f"the next pod bound {failover:.1f} s after the kill"
    finally:
        await api.close()
