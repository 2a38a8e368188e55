"""The pod watch of the agent's kube port: list + watch, resume, 410 re-list, backoff; and the
simulated kubelet reacting to its events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hami.agent.config.settings import Settings
from hami.agent.simulation.simulator import SimNode, Simulator
from hami.api import keys
from hami.k8s.api import PODS, Gone, error_for
from hami.k8s.views import PodEvent, PodSelector
from hami.k8s.watch import Backoff
from tests.agent.builders import A100, A100_UUIDS, bound_pod, locked_node
from tests.agent.builders import settings as make_settings
from tests.agent.fake_kube import FakeKube
from tests.builders import container_device as dev

TIMEOUT = 5.0


def plain_pod(name: str, node: str = "") -> dict[str, Any]:
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    spec = {"nodeName": node, "containers": []}
    return {"metadata": meta, "spec": spec, "status": {"phase": "Pending"}}


async def take(events: AsyncIterator[PodEvent], count: int) -> list[tuple[str, str]]:
    """The next ``count`` events as (type, pod name), failing after TIMEOUT."""

    async def collect() -> list[tuple[str, str]]:
        return [(e.type, e.pod.name) for e in [await anext(events) for _ in range(count)]]

    return await asyncio.wait_for(collect(), TIMEOUT)


async def eventually(check: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


@dataclass
class Sleeps:
    """An injected ``sleep`` that records the delays and runs a hook during the first."""

    delays: list[float] = field(default_factory=list)
    during: Callable[[], None] | None = None

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)
        if self.during is not None:
            self.during()
            self.during = None


# --- the fake's watch through list_and_watch -------------------------------------------------


async def test_lists_then_follows_changes() -> None:
    kube = FakeKube()
    kube.add_pod(plain_pod("a", "n1"))
    events = kube.watch_pods(PodSelector())
    assert await take(events, 1) == [("ADDED", "a")]
    kube.add_pod(plain_pod("b"))
    await kube.patch_pod("default", "a", {"metadata": {"annotations": {"x": "1"}}})
    kube.delete_pod("default", "b")
    assert await take(events, 3) == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert kube.api_calls("list") == 1


async def test_selector_filters_by_node_or_binding() -> None:
    kube = FakeKube()
    for name, node in (("free", ""), ("here", "n1"), ("there", "n2")):
        kube.add_pod(plain_pod(name, node))
    bound = kube.watch_pods(PodSelector(bound_only=True))
    assert sorted(await take(bound, 2)) == [("ADDED", "here"), ("ADDED", "there")]
    on_n1 = kube.watch_pods(PodSelector(node_name="n1"))
    assert await take(on_n1, 1) == [("ADDED", "here")]
    kube.add_pod(plain_pod("free", "n1"))  # bound now
    assert await take(bound, 1) == [("MODIFIED", "free")]
    assert await take(on_n1, 1) == [("MODIFIED", "free")]


async def test_clean_close_resumes_without_relisting() -> None:
    kube = FakeKube()
    kube.add_pod(plain_pod("a"))
    events = kube.watch_pods(PodSelector())
    assert await take(events, 1) == [("ADDED", "a")]  # listed
    kube.add_pod(plain_pod("b"))
    assert await take(events, 1) == [("ADDED", "b")]  # watched
    kube.store.break_watches()  # the server closed the stream (timeoutSeconds)
    kube.add_pod(plain_pod("c"))
    assert await take(events, 1) == [("ADDED", "c")]
    assert kube.api_calls("list") == 1
    assert kube.api_calls("watch") == 2


async def test_410_gone_relists_and_reports_vanished_pods() -> None:
    kube = FakeKube()
    kube.add_pod(plain_pod("a"))
    events = kube.watch_pods(PodSelector())
    assert await take(events, 1) == [("ADDED", "a")]  # listed
    kube.add_pod(plain_pod("b"))
    assert await take(events, 1) == [("ADDED", "b")]  # watched
    kube.store.break_watches(Gone("too old resource version"))
    kube.delete_pod("default", "b")  # lost to the broken watch
    kube.add_pod(plain_pod("c"))
    kube.compact()
    got = await take(events, 3)
    assert got[0] == ("DELETED", "b")
    assert sorted(got[1:]) == [("ADDED", "a"), ("ADDED", "c")]
    assert kube.api_calls("list") == 2


async def test_errors_back_off_then_a_compacted_version_relists() -> None:
    sleeps = Sleeps()
    kube = FakeKube(Backoff(first=0.5, cap=1.0), sleeps)
    kube.add_pod(plain_pod("a"))

    def changed_and_compacted() -> None:  # while we wait to reconnect
        kube.add_pod(plain_pod("c"))
        kube.compact()

    sleeps.during = changed_and_compacted
    events = kube.watch_pods(PodSelector())
    assert await take(events, 1) == [("ADDED", "a")]  # listed
    kube.add_pod(plain_pod("b"))
    assert await take(events, 1) == [("ADDED", "b")]  # watched
    kube.store.break_watches(error_for(500, "etcd is slow"))
    kube.store.fail_next("watch", error_for(503, "unavailable"), PODS, times=1_000_000)
    task = asyncio.create_task(take(events, 3))
    await eventually(lambda: len(sleeps.delays) >= 3)
    kube.store.heal()
    assert sorted(await task) == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c")]  # re-listed
    assert sleeps.delays[:3] == [0.5, 1.0, 1.0]
    assert kube.api_calls("list") == 2


def test_backoff_doubles_caps_and_resets() -> None:
    backoff = Backoff(first=0.1, cap=0.3)
    assert [backoff.next_delay() for _ in range(3)] == [0.1, 0.2, 0.3]
    backoff.reset()
    assert backoff.next_delay() == 0.1


# --- the simulated kubelet reacts to events -------------------------------------------------


def simulator(tmp_path: Path, kube: FakeKube) -> Simulator:
    def settings_for(name: str) -> Settings:
        return replace(make_settings(tmp_path), node_name=name, prepare_host=False)

    return Simulator(kube, [SimNode("gpu-node-1", A100)], settings_for)


async def run_watch(sim: Simulator, body: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(sim.watch())
    try:
        await body()
    finally:
        task.cancel()


async def test_simulator_allocates_a_pod_when_its_binding_arrives(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.add_node("gpu-node-1")
    sim = simulator(tmp_path, kube)

    def phase(name: str) -> str | None:
        return kube.pod_annotations("default", name).get(keys.BIND_PHASE)

    async def body() -> None:
        p = bound_pod("p", [[dev(A100_UUIDS[0])]], gpus={"main": 1})
        locked_node(kube, p, "gpu-node-1")  # /bind locks the node before the Binding
        kube.add_pod(p)
        await eventually(lambda: phase("p") == keys.BIND_PHASE_SUCCESS)
        kube.delete_pod("default", "p")
        await eventually(lambda: "uid-p" not in sim._handled)
        q = bound_pod("q", [[dev(A100_UUIDS[1])]], gpus={"main": 1})
        locked_node(kube, q, "gpu-node-1")  # /bind locks the node before the Binding
        kube.add_pod(q)
        await eventually(lambda: phase("q") == keys.BIND_PHASE_SUCCESS)

    await run_watch(sim, body)
    assert kube.calls.count("watch_pods") == 1
    assert await sim.step() == 0  # the safety-net re-list finds nothing left to do


async def test_simulator_ignores_pods_elsewhere_or_not_waiting(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.add_node("gpu-node-1")
    sim = simulator(tmp_path, kube)
    pods = [
        bound_pod("other", [[dev("GPU-x")]], node="not-simulated", gpus={"main": 1}),
        bound_pod("done", [[dev(A100_UUIDS[0])]], bind_phase=keys.BIND_PHASE_FAILED),
    ]
    for pod in pods:
        kube.add_pod(pod)
    for event in list(kube.pod_log):
        assert sim.on_event(event) is None
    assert sim._handled == set()
