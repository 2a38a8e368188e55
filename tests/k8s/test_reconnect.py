"""The API connection drops under every service that follows the API server — the
scheduler's informer, the device plugin's pod watch, the monitor's pod list, the web UI's
source — and each one keeps trying (the watches back off, capped) and resumes once the port
is open again. A real HTTP server behind a real TCP port that is closed and reopened; the
clients are the real `LightkubeAPI`."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import pytest
import pytest_asyncio

from hami.config import load_config
from hami.k8s.api import NODES, PODS, Manifest
from hami.k8s.client import LightkubeAPI
from hami.k8s.fake import FakeKube, node_manifest
from hami.k8s.port import KubeAPIPort
from hami.k8s.views import PodEvent, PodSelector
from hami.k8s.watch import Backoff
from hami.monitor.main import refresh_forever
from hami.monitor.monitor import Monitor, MonitorSettings
from hami.scheduler.informer import Informer, Sink
from hami.vendors import registry
from hami.webui.livesource import KubeSource
from tests import builders
from tests.k8s.apiserver import DroppableAPI, kubeconfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
OUTAGE = 1.0  # seconds the port stays closed
RETRY = re.compile(r"^(\w+) watch: .*; retrying in ([0-9.]+) s$", re.S)


def pod(name: str, node: str = "n1") -> dict[str, object]:
    return builders.pod(name, uid=f"uid-{name}", node=node, phase="Running")


@pytest_asyncio.fixture(loop_scope="function")
async def api() -> AsyncIterator[DroppableAPI]:
    """The API server, with one pod ("before", on n1), on the test's own loop."""
    server = DroppableAPI(FakeKube())
    server.kube.put(PODS, pod("before"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture(loop_scope="function")
async def client(api: DroppableAPI) -> AsyncIterator[LightkubeAPI]:
    http = LightkubeAPI(kubeconfig(api.port), timeout=2.0)
    try:
        yield http
    finally:
        await http.close()


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def outage(api: DroppableAPI) -> None:
    """Close the port (cutting open streams), change the cluster meanwhile, reopen."""
    await api.drop()
    api.kube.put(PODS, pod("during"))
    await asyncio.sleep(OUTAGE)
    await api.reopen()


def assert_backed_off(caplog: pytest.LogCaptureFixture, cap: float) -> None:
    """Each of `hami.k8s.watch`'s loops waited before each reconnect, longer each time, never
    over ``cap``."""
    delays: dict[str, list[float]] = {}
    for record in caplog.records:
        found = RETRY.search(record.getMessage())
        if record.name == "hami.k8s.watch" and found:
            delays.setdefault(found.group(1), []).append(float(found.group(2)))
    assert delays
    for kind, waited in delays.items():
        assert len(waited) >= 2 and waited == sorted(waited) and max(waited) <= cap, kind


async def test_the_scheduler_informer_backs_off_and_resumes(
    api: DroppableAPI, client: LightkubeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    names: set[str] = set()

    def replace(items: Iterable[Manifest]) -> None:
        names.clear()
        names.update(str(p["metadata"]["name"]) for p in items)  # type: ignore[index]

    def apply(kind: str, obj: Manifest) -> None:
        names.add(str(obj["metadata"]["name"]))  # type: ignore[index]

    informer = Informer(client, PODS, Sink(replace, apply), backoff=(0.1, 0.4))
    task = asyncio.create_task(informer.run())
    try:
        await eventually(lambda: names == {"before"})
        await outage(api)
        await eventually(lambda: names == {"before", "during"})
    finally:
        task.cancel()
    assert_backed_off(caplog, 0.4)


async def test_the_device_plugin_pod_watch_backs_off_and_resumes(
    api: DroppableAPI, client: LightkubeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    port = KubeAPIPort(client, Backoff(first=0.1, cap=0.4))
    seen: list[PodEvent] = []

    async def follow() -> None:
        async for event in port.watch_pods(PodSelector(node_name="n1")):
            seen.append(event)

    task = asyncio.create_task(follow())
    try:
        await eventually(lambda: [e.pod.name for e in seen] == ["before"])
        await outage(api)
        await eventually(lambda: "during" in {e.pod.name for e in seen})
    finally:
        task.cancel()
    assert_backed_off(caplog, 0.4)
    assert {e.pod.name for e in seen} == {"before", "during"}  # nothing lost, no DELETED
    assert all(e.type != "DELETED" for e in seen)


async def test_the_monitor_keeps_listing_and_resumes(
    api: DroppableAPI, client: LightkubeAPI, tmp_path: Path
) -> None:
    monitor = Monitor(MonitorSettings(node="n1", hook_path=tmp_path, feedback=False), client)
    task = asyncio.create_task(refresh_forever(monitor, 0.1))
    try:
        await eventually(lambda: {p.name for p in monitor.pods.values()} == {"before"})
        await api.drop()
        api.kube.put(PODS, pod("during"))
        await eventually(lambda: monitor.kube_errors >= 2)  # failed rounds, the loop lives on
        await api.reopen()
        await eventually(lambda: {p.name for p in monitor.pods.values()} == {"before", "during"})
    finally:
        task.cancel()


async def test_the_web_ui_source_shows_the_last_snapshot_then_resumes(
    api: DroppableAPI, client: LightkubeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = load_config(EXAMPLES / "config.yaml")
    source = KubeSource(client, registry.build(config), config, ttl=0)
    api.kube.put(NODES, node_manifest("n1"))
    await source.start(sync_timeout=10)  # its list-then-watch loops, as `hami webui` runs it
    try:
        assert (await source.snapshot()).node_names == {"n1"}
        await api.drop()
        api.kube.put(NODES, node_manifest("n2"))
        stale = await source.snapshot()
        assert stale.stale_since is not None and "unreachable" in stale.notices[0]
        assert stale.node_names == {"n1"}
        await asyncio.sleep(OUTAGE)
        await api.reopen()

        async def resumed() -> bool:
            fresh = await source.snapshot()
            return fresh.stale_since is None and fresh.node_names == {"n1", "n2"}

        async with asyncio.timeout(10):
            while not await resumed():
                await asyncio.sleep(0.05)
    finally:
        await source.stop()
    assert_backed_off(caplog, 2.0)
