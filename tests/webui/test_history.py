"""The UI's own bounded history (ring buffers) and its charts: real axes, a range selector, a
legend; series and metric names from one shared definition."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from fastapi.testclient import TestClient

from hami.config import load_config
from hami.metrics.monitor import HOST_UTIL
from hami.vendors import registry
from hami.webui import chart as chart_mod
from hami.webui.app import WebUI, create_app
from hami.webui.history import RANGES, SERIES, History, Sample
from hami.webui.monitor import UTIL_METRIC, parse_utilisation
from hami.webui.simsource import SimSource, sim_snapshot

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SETTINGS = load_config(EXAMPLES / "config.yaml")
VENDORS = registry.build(SETTINGS)


def test_ring_buffers_are_bounded() -> None:
    snapshot = sim_snapshot(EXAMPLES / "cluster.yaml", EXAMPLES / "pods.yaml", VENDORS, SETTINGS)
    history = History(interval=10, window=100, cluster_window=200)
    for i in range(500):
        history.record(replace(snapshot, taken_at=1000.0 + 10 * i))
    assert len(history.series("GPU-t4a-0", 0)) <= 11
    assert len(history.cluster) <= 21
    last = history.cluster[-1]
    assert last.memory_total > 0 and last.values()["memory_allocated_pct"] is not None


def test_stale_snapshot_adds_no_sample() -> None:
    snapshot = sim_snapshot(EXAMPLES / "cluster.yaml", None, VENDORS, SETTINGS)
    history = History(interval=0)
    assert history.record(snapshot)
    stale = replace(snapshot, taken_at=snapshot.taken_at + 5, stale_since=1.0)
    assert not history.record(stale)


def test_metric_and_series_names_have_one_definition() -> None:
    assert HOST_UTIL.name == UTIL_METRIC  # the monitor's own spec, not a copy of its name
    text = (
        f'{HOST_UTIL.name}{{node="n",device_index="0",device_uuid="GPU-0",device_type="T4"}} 42\n'
    )
    assert parse_utilisation(text) == {"GPU-0": 42.0}
    sample = Sample(0.0, 10, 5, 30.0, 100, 10)
    assert set(sample.values()) == {s.key for s in SERIES}
    assert set(sample.to_dict()) >= {s.key for s in SERIES}


def test_chart_has_axes_range_and_legend() -> None:
    now = 1_700_000_000.0
    samples = [Sample(now - 3600 + 60 * i, 100 * i, i, None, 6000, 100) for i in range(61)]
    svg = chart_mod.chart(samples, "1h", "t", now)
    assert 'data-samples="61"' in svg
    assert all(f">{pct}%</text>" in svg for pct in (0, 25, 50, 75, 100))
    assert len(re.findall(r">\d\d:\d\d</text>", svg)) >= 3  # clock ticks on the time axis
    keys = re.findall(r'<li data-series="([^"]+)"', svg)
    assert keys == [s.key for s in SERIES]
    assert "polyline points" in svg and "utilisation (monitor): <b>no data</b>" in svg
    links = chart_mod.range_links("6h", [("namespace", "a")])
    assert re.findall(r'data-range="(\w+)"', links) == list(RANGES)
    assert 'href="?namespace=a&amp;range=15m"' in links and 'aria-current="true"' in links


def test_pages_and_api_draw_history() -> None:
    source = SimSource(EXAMPLES / "cluster.yaml", EXAMPLES / "pods.yaml", VENDORS, SETTINGS)
    client = TestClient(create_app(WebUI(source, History(interval=0))))
    client.get("/api/v1/summary")
    body = client.get("/api/v1/history", params={"range": "15m"}).json()
    assert [s["key"] for s in body["series"]] == [s.key for s in SERIES]
    assert body["samples"][-1]["memory_allocated_pct"] > 0
    assert client.get("/api/v1/history", params={"range": "2d"}).status_code == 400
    overview = client.get("/", params={"range": "6h"}).text
    assert '<figure class="chart"' in overview and 'data-range="6h"' in overview
    node = client.get("/nodes/t4-a").text
    assert node.count('<figure class="chart"') == 2  # one per device
    assert '<figure class="chart"' in client.get("/accelerators/GPU-t4a-0").text
    bad = client.get("/nodes/t4-a", params={"range": "2d"})
    assert bad.status_code == 400 and "use one of 15m, 1h, 6h, 24h" in bad.text
