"""The live source: started, it watches Nodes and Pods (listed and decoded before the UI serves,
no page waits for a list); not started, one list at a time; the core's view reused while nothing
changed; a failed first list not fatal; an outage seen by the started source too."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hami.api import keys
from hami.config import load_config
from hami.k8s.api import NODES, PODS, RESOURCE_QUOTAS, KubeAPIError, Unavailable
from hami.k8s.fake import FakeKube, node_manifest
from hami.vendors import registry
from hami.webui.app import WebUI, create_app
from hami.webui.decode import build_snapshot
from hami.webui.history import History
from hami.webui.livesource import KubeSource
from tests.builders import container, placed_pod

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SETTINGS = load_config(EXAMPLES / "config.yaml")
VENDORS = registry.build(SETTINGS)
T4 = '[{"id":"GPU-0","count":10,"devmem":15360,"devcore":100,"type":"NVIDIA Tesla T4","health":true}]'


def pod(name: str, mib: int) -> dict[str, object]:
    c = container("c", {"nvidia.com/gpu": 1})
    return placed_pod(name, "gpu-1", f"GPU-0,NVIDIA,{mib},10:;", c, namespace="ml")


async def cluster() -> FakeKube:
    fake = FakeKube()
    await fake.create(NODES, node_manifest("gpu-1", {"hami.io/node-nvidia-register": T4}))
    await fake.create(PODS, pod("a", 1000), "ml")
    return fake


def lists(fake: FakeKube) -> int:
    return sum(1 for verb, plural, _ in fake.calls if verb == "list" and plural == "pods")


async def test_started_source_watches_instead_of_listing() -> None:
    fake = await cluster()
    app = create_app(WebUI(KubeSource(fake, VENDORS, SETTINGS, ttl=0), History(interval=0)))
    with TestClient(app) as client:
        assert lists(fake) == 1  # listed before the first request
        assert client.get("/api/v1/summary").json()["memory_allocated_mib"] == 1000
        client.portal.call(fake.create, PODS, pod("b", 2000), "ml")  # type: ignore[union-attr]
        deadline = time.monotonic() + 5
        while client.get("/api/v1/summary").json()["memory_allocated_mib"] != 3000:
            assert time.monotonic() < deadline, "the new pod never showed"
        client.portal.call(fake.delete, PODS, "a", "ml")  # type: ignore[union-attr]
        while client.get("/api/v1/summary").json()["memory_allocated_mib"] != 2000:
            assert time.monotonic() < deadline, "the deleted pod never went"
        assert lists(fake) == 1  # every page read the watched store


async def test_started_source_marks_an_outage_stale() -> None:
    fake = await cluster()
    app = create_app(WebUI(KubeSource(fake, VENDORS, SETTINGS, ttl=0), History(interval=0)))
    with TestClient(app) as client:
        assert client.get("/").status_code == 200
        fake.fail_next("list", Unavailable("connection refused"), RESOURCE_QUOTAS)
        stale = client.get("/")
        assert stale.status_code == 200 and 'data-state="stale"' in stale.text
        assert "API server unreachable (connection refused)" in stale.text
        assert stale.headers["X-Hami-Stale"]
        forbidden = KubeAPIError("resourcequotas is forbidden", 403)
        fake.fail_next("list", forbidden, RESOURCE_QUOTAS)
        page = client.get("/")  # reached, only quotas not allowed: live, quotas unknown
        assert 'data-state="live"' in page.text and "quotas not shown" in page.text


async def test_view_reused_while_nothing_changes_rebuilt_on_change() -> None:
    fake = await cluster()
    source = KubeSource(fake, VENDORS, SETTINGS, ttl=0)
    first = await source.snapshot()
    again = await source.snapshot()
    assert again.view is first.view and again.pods is first.pods
    assert again.taken_at >= first.taken_at
    await fake.create(PODS, pod("b", 2000), "ml")
    changed = await source.snapshot()
    assert changed.view is not first.view
    assert [p.name for p in changed.pods] == ["a", "b"]
    assert next(iter(changed.view.states())).usage[0].usedmem == 3000
    await fake.delete(PODS, "a", "ml")  # a removal alone is a change too
    gone = await source.snapshot()
    assert [p.name for p in gone.pods] == ["b"]
    assert next(iter(gone.view.states())).usage[0].usedmem == 2000


async def test_concurrent_requests_share_one_list() -> None:
    fake = await cluster()
    fake.delays["list"] = 0.05
    source = KubeSource(fake, VENDORS, SETTINGS, ttl=5)
    snapshots = await asyncio.gather(*(source.snapshot() for _ in range(5)))
    assert lists(fake) == 1
    assert all(s is snapshots[0] for s in snapshots)


async def test_failed_first_list_is_logged_and_the_page_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = await cluster()
    fake.fail_next("list", Unavailable("connection refused"), times=10**6)
    source = KubeSource(fake, VENDORS, SETTINGS, ttl=0)
    with caplog.at_level(logging.WARNING, logger="hami.webui.livesource"):
        await source.start(sync_timeout=0.3)
    assert "not listed within" in caplog.text
    assert "first list failed" in caplog.text and "connection refused" in caplog.text
    client = TestClient(create_app(WebUI(source, History(interval=0))))
    page = client.get("/")
    assert page.status_code == 503 and "connection refused" in page.text
    for fault in fake._faults:  # the API is back
        fault.times = 0
    assert client.get("/api/v1/summary").json()["memory_allocated_mib"] == 1000  # it recovers
    await source.stop()


async def test_outage_during_ttl_answers_the_stale_snapshot_without_asking_again() -> None:
    fake = await cluster()
    source = KubeSource(fake, VENDORS, SETTINGS, ttl=0.3)
    await source.snapshot()
    await asyncio.sleep(0.35)
    fake.fail_next("list", RuntimeError("connection refused"), times=5)
    stale = await source.snapshot()
    before = lists(fake)
    assert stale.stale_since is not None
    assert (await source.snapshot()).stale_since is not None
    assert lists(fake) == before  # within ttl of the failure: not asked again


async def test_started_source_reuses_the_view_until_a_watch_sees_a_change() -> None:
    fake = await cluster()
    source = KubeSource(fake, VENDORS, SETTINGS, ttl=0)
    await source.start()
    try:
        first = await source.snapshot()
        again = await source.snapshot()
        assert again.view is first.view and again.taken_at >= first.taken_at
        await fake.create(PODS, pod("b", 2000), "ml")
        for _ in range(100):
            changed = await source.snapshot()
            if changed.view is not first.view:
                break
            await asyncio.sleep(0.01)
        assert [p.name for p in changed.pods] == ["a", "b"]
    finally:
        await source.stop()


async def test_incremental_view_equals_a_fresh_build() -> None:
    """Nodes re-accounted only where a change touched them give the same view as building
    everything again: pods added, moved between nodes, deleted, a node re-registered."""
    fake = await cluster()
    await fake.create(NODES, node_manifest("gpu-2", {"hami.io/node-nvidia-register": T4}))
    source = KubeSource(fake, VENDORS, SETTINGS, ttl=0)

    async def check() -> None:
        live = await source.snapshot()
        nodes, pods = (await fake.list(NODES)).items, (await fake.list(PODS)).items
        fresh = build_snapshot(nodes, pods, VENDORS, SETTINGS)
        got = {s.node.name: s.usage for s in live.view.states()}
        want = {s.node.name: s.usage for s in fresh.view.states()}
        assert got == want

    await check()
    await fake.create(PODS, pod("b", 2000), "ml")
    await check()
    moved = {keys.VGPU_NODE: "gpu-2", "hami.io/vgpu-devices-allocated": "GPU-0,NVIDIA,3000,10:;"}
    await fake.merge_patch(PODS, "a", {"metadata": {"annotations": moved}}, "ml")
    await check()
    await fake.delete(PODS, "b", "ml")
    await check()
    bigger = T4.replace("15360", "24576")
    patch = {"metadata": {"annotations": {"hami.io/node-nvidia-register": bigger}}}
    await fake.merge_patch(NODES, "gpu-2", patch)
    await check()
    assert next(s for s in (await source.snapshot()).view.states() if s.node.name == "gpu-2")
