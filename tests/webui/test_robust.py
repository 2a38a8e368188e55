"""An API outage keeps the last good data marked stale; unknown objects in a URL are clear
messages on the page; a Host header check and security headers on every response."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hami.api import keys
from hami.config import load_config
from hami.k8s.api import NODES, PODS
from hami.k8s.fake import FakeKube, node_manifest
from hami.vendors import registry
from hami.webui.app import WebUI, create_app
from hami.webui.history import History
from hami.webui.livesource import KubeSource
from hami.webui.simsource import SimSource

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SETTINGS = load_config(EXAMPLES / "config.yaml")
VENDORS = registry.build(SETTINGS)
T4 = '[{"id":"GPU-0","count":10,"devmem":15360,"devcore":100,"type":"NVIDIA Tesla T4","health":true}]'


@pytest.fixture(scope="module")
def sim() -> TestClient:
    source = SimSource(EXAMPLES / "cluster.yaml", EXAMPLES / "pods.yaml", VENDORS, SETTINGS)
    return TestClient(create_app(WebUI(source, History(interval=0))))


async def test_outage_keeps_last_good_data_marked_stale() -> None:
    fake = FakeKube()
    await fake.create(NODES, node_manifest("gpu-1", {"hami.io/node-nvidia-register": T4}))
    pod = {
        "metadata": {"name": "p", "namespace": "ml", "annotations": {
            keys.VGPU_NODE: "gpu-1", "hami.io/vgpu-devices-allocated": "GPU-0,NVIDIA,4000,10:;"}},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": 1}}}]},
        "status": {"phase": "Running"},
    }  # fmt: skip
    await fake.create(PODS, pod, "ml")
    client = TestClient(create_app(WebUI(KubeSource(fake, VENDORS, SETTINGS, ttl=0))))
    live = client.get("/")
    assert 'data-state="live"' in live.text and "X-Hami-Stale" not in live.headers
    fake.fail_next("list", RuntimeError("connection refused"))
    stale = client.get("/")
    assert stale.status_code == 200 and 'data-state="stale"' in stale.text
    assert "stale since" in stale.text and stale.headers["X-Hami-Stale"]
    assert "API server unreachable" in stale.text
    assert '<span class="v" data-k="pods_placed">1</span>' in stale.text  # last good data
    fake.fail_next("list", RuntimeError("connection refused"))
    summary = client.get("/api/v1/summary").json()
    assert summary["stale"] is True and summary["memory_allocated_mib"] == 4000
    fake.fail_next("list", RuntimeError("connection refused"))
    part = client.get("/", params={"partial": "1"})
    assert part.headers["X-Hami-Stale"]  # the script turns the badge stale on refresh
    assert client.get("/api/v1/summary").json()["stale"] is False  # back


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/nodes/nope", 404, "node &#x27;nope&#x27; not found"),
        ("/pods/demo/nope", 404, "pod demo/nope not found"),
        ("/pods/nope/x", 404, "pod nope/x not found"),
        ("/accelerators/nope", 404, "accelerator &#x27;nope&#x27; not found"),
        ("/?namespace=nope", 200, "namespace &#x27;nope&#x27;: no GPU pod in it"),
        ("/workloads?namespace=nope", 200, "namespace &#x27;nope&#x27;: no GPU pod in it"),
        ("/namespaces?namespace=nope", 200, "namespace &#x27;nope&#x27;: no GPU pod in it"),
        ("/nodes?node=nope", 200, "node &#x27;nope&#x27; not found"),
        ("/?vendor=nope", 200, "vendor &#x27;nope&#x27; is not an enabled vendor"),
        ("/accelerators?model=A10", 200, "no device of model &#x27;A10&#x27;"),
    ],
)
def test_unknown_objects_in_a_url_are_said(
    sim: TestClient, path: str, status: int, message: str
) -> None:
    response = sim.get(path)
    assert response.status_code == status
    assert message in response.text and "<nav" in response.text  # a page, with its navigation


def test_known_filters_say_nothing(sim: TestClient) -> None:
    page = sim.get("/", params={"namespace": "demo", "vendor": "NVIDIA"}).text
    assert 'id="filter-problem"' not in page


@pytest.mark.parametrize(
    "path", ["/", "/nodes/t4-a", "/nodes/nope", "/api/v1/summary", "/static/webui.js", "/what-if"]
)
def test_security_headers_on_every_response(sim: TestClient, path: str) -> None:
    response = sim.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_host_header_check() -> None:
    source = SimSource(EXAMPLES / "cluster.yaml", None, VENDORS, SETTINGS)
    app = create_app(WebUI(source), allowed_hosts=["localhost", "127.0.0.1"])
    client = TestClient(app, base_url="http://localhost:8090")
    assert client.get("/").status_code == 200
    assert client.get("/", headers={"Host": "127.0.0.1:8090"}).status_code == 200
    evil = client.get("/api/v1/summary", headers={"Host": "evil.example:8090"})
    assert evil.status_code == 400 and "'evil.example' is not allowed" in evil.text
    assert evil.headers["X-Content-Type-Options"] == "nosniff"


async def test_live_source_decodes_only_what_changed() -> None:
    fake = FakeKube()
    await fake.create(NODES, node_manifest("gpu-1", {"hami.io/node-nvidia-register": T4}))
    await fake.create(NODES, node_manifest("gpu-2", {"hami.io/node-nvidia-register": T4}))
    source = KubeSource(fake, VENDORS, SETTINGS, ttl=0)
    first = await source.snapshot()
    await fake.merge_patch(NODES, "gpu-2", {"metadata": {"labels": {"x": "y"}}})
    second = await source.snapshot()
    assert second.node("gpu-1") is first.node("gpu-1")  # unchanged: not decoded again
    assert second.node("gpu-2") is not first.node("gpu-2")
    assert dict(second.node("gpu-2").labels) == {"x": "y"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        ("/nodes", "gpu-1"),
        ("/nodes/gpu-1", 'data-uuid="GPU-0"'),
        ("/accelerators", "GPU-0"),
        ("/accelerators/GPU-0", "GPU-0"),
        ("/workloads", "ml/p"),
        ("/pods/ml/p", 'data-k="phase">Running'),
        ("/pending", "Pending"),
        ("/namespaces", "ml"),
        ("/what-if", 'id="spec"'),
    ],
)
async def test_outage_on_every_screen_keeps_last_good_data_marked_stale(
    path: str, kept: str
) -> None:
    fake = FakeKube()
    await fake.create(NODES, node_manifest("gpu-1", {"hami.io/node-nvidia-register": T4}))
    pod = {
        "metadata": {"name": "p", "namespace": "ml", "annotations": {
            keys.VGPU_NODE: "gpu-1", "hami.io/vgpu-devices-allocated": "GPU-0,NVIDIA,4000,10:;"}},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": 1}}}]},
        "status": {"phase": "Running"},
    }  # fmt: skip
    await fake.create(PODS, pod, "ml")
    client = TestClient(create_app(WebUI(KubeSource(fake, VENDORS, SETTINGS, ttl=0))))
    assert client.get(path).status_code == 200
    fake.fail_next("list", RuntimeError("connection refused"))
    stale = client.get(path)
    assert stale.status_code == 200 and kept in stale.text  # the last good data
    assert 'data-state="stale"' in stale.text and stale.headers["X-Hami-Stale"]
    assert "API server unreachable (connection refused)" in stale.text  # said why


def test_malformed_what_if_spec_is_kept_in_the_form(sim: TestClient) -> None:
    bad = "kind: Pod\nspec: ["
    page = sim.post("/what-if", data={"spec": bad})
    assert page.status_code == 400 and 'id="whatif-error"' in page.text
    assert "not valid YAML" in page.text
    assert "kind: Pod\nspec: [</textarea>" in page.text  # to mend, not retype
