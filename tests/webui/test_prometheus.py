"""History from Prometheus range queries, against a tiny local HTTP server that answers
``/api/v1/query_range`` as Prometheus does; the fallback to the UI's own history (marked stale,
with the reason) when it is down, answers an error or answers garbage. The real Prometheus is in
tests/e2e/test_prometheus.py (``-m prometheus``)."""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi.testclient import TestClient

from hami.api import keys
from hami.cluster.ports import free_port
from hami.config import load_config
from hami.k8s.api import NODES, PODS
from hami.k8s.fake import FakeKube, node_manifest
from hami.metrics.monitor import HOST_UTIL
from hami.metrics.specs import CORE_ALLOCATED, CORE_LIMIT, MEMORY_ALLOCATED, MEMORY_LIMIT
from hami.vendors import registry
from hami.webui.app import WebUI, create_app
from hami.webui.history import History
from hami.webui.livesource import KubeSource
from hami.webui.prometheus import (
    METRICS,
    PrometheusHistory,
    cluster_queries,
    device_queries,
    label_value,
    step_for,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SETTINGS = load_config(EXAMPLES / "config.yaml")
VENDORS = registry.build(SETTINGS)
MIB = 1 << 20
T4 = (
    '[{"id":"GPU-0","count":10,"devmem":15360,"devcore":100,"type":"NVIDIA Tesla T4",'
    '"health":true},{"id":"GPU-1","count":10,"devmem":15360,"devcore":100,'
    '"type":"NVIDIA Tesla T4","health":true}]'
)
# what the tiny Prometheus holds, per device: metric → value
DEVICES = {
    "GPU-0": {
        MEMORY_ALLOCATED.name: 4000 * MIB,
        MEMORY_LIMIT.name: 15360 * MIB,
        CORE_ALLOCATED.name: 30,
        CORE_LIMIT.name: 100,
        HOST_UTIL.name: 50,
    },
    "GPU-1": {
        MEMORY_ALLOCATED.name: 0,
        MEMORY_LIMIT.name: 15360 * MIB,
        CORE_ALLOCATED.name: 0,
        CORE_LIMIT.name: 100,
        HOST_UTIL.name: 10,
    },
}


@dataclass
class Tiny:
    """The server's behaviour and what it was asked."""

    mode: str = "ok"  # ok | error | garbage
    queries: list[dict[str, str]] = field(default_factory=list)


def _answer(query: str, start: float, end: float, step: float) -> dict[str, object]:
    metric = next(m for m in METRICS.values() if m in query)
    times = [start + i * step for i in range(int((end - start) // step) + 1)]
    chosen = [u for u in DEVICES if f'device_uuid="{u}"' in query] or list(DEVICES)
    per_device = {u: DEVICES[u][metric] for u in chosen}
    result: list[dict[str, Any]]
    if query.startswith(("sum(", "avg(")):
        values = list(per_device.values())
        total = sum(values) / (len(values) if query.startswith("avg(") else 1)
        result = [{"metric": {}, "values": [[t, str(total)] for t in times]}]
    else:
        result = [
            {"metric": {"device_uuid": u}, "values": [[t, str(v)] for t in times]}
            for u, v in per_device.items()
        ]
        if result:  # a NaN point is left out, not drawn as 0
            result[0]["values"][0][1] = "NaN"
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


@pytest.fixture
def tiny() -> Iterator[tuple[str, Tiny]]:
    state = Tiny()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            params = {k: v[0] for k, v in parse_qs(url.query).items()}
            state.queries.append(params)
            if state.mode == "garbage":
                body, status = b"<html>a proxy's error page</html>", 502
            elif state.mode == "error":
                status = 400
                body = json.dumps(
                    {"status": "error", "errorType": "bad_data", "error": "parse error at char 4"}
                ).encode()
            else:
                assert url.path == "/api/v1/query_range", url.path
                start, end, step = (float(params[k]) for k in ("start", "end", "step"))
                body, status = json.dumps(_answer(params["query"], start, end, step)).encode(), 200
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


async def client_for(url: str | None, retry_s: float = 60.0) -> TestClient:
    fake = FakeKube()
    await fake.create(NODES, node_manifest("gpu-1", {"hami.io/node-nvidia-register": T4}))
    pod = {
        "metadata": {"name": "p", "namespace": "ml", "annotations": {
            keys.VGPU_NODE: "gpu-1", "hami.io/vgpu-devices-allocated": "GPU-0,NVIDIA,4000,30:;"}},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": 1}}}]},
        "status": {"phase": "Running"},
    }  # fmt: skip
    await fake.create(PODS, pod, "ml")
    prometheus = PrometheusHistory(url, timeout=2.0, retry_s=retry_s) if url else None
    ui = WebUI(
        KubeSource(fake, VENDORS, SETTINGS, ttl=0), History(interval=0), prometheus=prometheus
    )
    return TestClient(create_app(ui))


def test_queries_use_the_exporters_metric_names() -> None:
    """A rename in the scheduler's or the monitor's spec renames the UI's queries."""
    specs = {MEMORY_ALLOCATED.name, MEMORY_LIMIT.name, CORE_ALLOCATED.name, CORE_LIMIT.name}
    assert set(METRICS.values()) == specs | {HOST_UTIL.name}
    for field_, expr in cluster_queries().items():
        assert METRICS[field_] in expr and "max by (device_uuid)" in expr  # one value per device
    node = device_queries({"node": 'we"ird\\node'})
    assert all('{node="we\\"ird\\\\node"}' in e for e in node.values())
    assert label_value("a\nb") == '"a\\nb"'
    assert step_for(900) == 3 and step_for(3600) == 12 and step_for(86400) == 288


async def test_history_api_reads_prometheus(tiny: tuple[str, Tiny]) -> None:
    url, state = tiny
    client = await client_for(url)
    doc = client.get("/api/v1/history", params={"range": "1h"}).json()
    assert doc["source"] == "prometheus" and doc["problem"] == ""
    assert len(doc["samples"]) == 301  # 1 h at 12 s steps
    last = doc["samples"][-1]
    assert last["memory_allocated_mib"] == 4000
    assert last["memory_allocated_pct"] == round(100 * 4000 / 30720, 2)
    assert last["cores_allocated_pct"] == 15.0 and last["utilisation_pct"] == 30.0
    asked = {q["query"] for q in state.queries}
    assert asked == set(cluster_queries().values())
    assert {q["step"] for q in state.queries} == {"12"}
    before = len(state.queries)
    client.get("/api/v1/history", params={"range": "1h"})
    assert len(state.queries) == before  # answers cached for a few seconds


async def test_node_and_device_pages_read_prometheus(tiny: tuple[str, Tiny]) -> None:
    url, state = tiny
    client = await client_for(url)
    doc = client.get("/api/v1/nodes/gpu-1/history", params={"minutes": 15}).json()
    assert doc["source"] == "prometheus" and set(doc["devices"]) == {"GPU-0", "GPU-1"}
    gpu0 = doc["devices"]["GPU-0"]
    assert len(gpu0) == 300  # 301 points at 3 s steps, the NaN one left out
    assert gpu0[-1]["memory_allocated_mib"] == 4000 and gpu0[-1]["utilisation_pct"] == 50.0
    assert all('node="gpu-1"' in q["query"] for q in state.queries)
    page = client.get("/nodes/gpu-1", params={"range": "6h"})
    assert page.status_code == 200 and 'data-source="prometheus"' in page.text
    assert f"history: Prometheus {url}" in page.text
    device = client.get("/accelerators/GPU-1")
    assert 'data-source="prometheus"' in device.text
    assert any('device_uuid="GPU-1"' in q["query"] for q in state.queries)
    overview = client.get("/", params={"range": "15m"})
    assert 'data-source="prometheus"' in overview.text
    shown = re.search(r'data-samples="(\d+)"', overview.text)
    assert shown and int(shown[1]) in (300, 301)  # 15 m at 3 s steps, within the range


@pytest.mark.parametrize(
    ("mode", "said"),
    [("error", "parse error at char 4"), ("garbage", "HTTP 502, not JSON")],
)
async def test_prometheus_errors_fall_back_to_own_history(
    tiny: tuple[str, Tiny], mode: str, said: str
) -> None:
    url, state = tiny
    state.mode = mode
    client = await client_for(url)
    doc = client.get("/api/v1/history").json()
    assert doc["source"] == "own" and said in doc["problem"] and url in doc["problem"]
    assert doc["samples"]  # the UI's own history, sampled by this very request
    page = client.get("/")
    assert page.status_code == 200
    assert 'class="history-source stale" data-source="own" data-stale="true"' in page.text
    assert "the charts show the UI's own history" in page.text
    assert said in page.text  # also among the page's notices
    asked = len(state.queries)
    client.get("/")
    assert len(state.queries) == asked  # not asked again before retry_s


async def test_prometheus_down_then_back(tiny: tuple[str, Tiny]) -> None:
    url, state = tiny
    closed = f"http://127.0.0.1:{free_port()}"
    client = await client_for(closed, retry_s=0.0)
    doc = client.get("/api/v1/history").json()
    assert doc["source"] == "own" and "ConnectError" in doc["problem"]
    assert closed in client.get("/nodes/gpu-1").text
    client = await client_for(url, retry_s=0.0)
    state.mode = "error"
    assert client.get("/api/v1/history").json()["source"] == "own"
    state.mode = "ok"
    back = client.get("/api/v1/history").json()
    assert back["source"] == "prometheus" and back["problem"] == ""
    assert not math.isnan(back["samples"][-1]["memory_allocated_pct"])


async def test_without_prometheus_the_page_says_own_history() -> None:
    client = await client_for(None)
    doc = client.get("/api/v1/history").json()
    assert doc["source"] == "own" and doc["problem"] == "" and doc["samples"]
    page = client.get("/").text
    assert '<p class="history-source" data-source="own">history: kept by the UI' in page
    assert 'data-stale="true"' not in page
