"""The web UI's JSON API and pages, over sim files and over the KubeAPI port (FakeKube)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hami.config import load_config
from hami.k8s.api import NODES, PODS
from hami.k8s.fake import FakeKube, node_manifest
from hami.vendors import registry
from hami.webui.app import WebUI, create_app
from hami.webui.history import History
from hami.webui.livesource import KubeSource
from hami.webui.monitor import MonitorProbe, parse_utilisation
from hami.webui.simsource import SimSource
from hami.webui.snapshot import SourceError
from tests.builders import container, placed_pod, pod

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SETTINGS = load_config(EXAMPLES / "config.yaml")
VENDORS = registry.build(SETTINGS)
T4 = '[{"id":"GPU-0","count":10,"devmem":15360,"devcore":100,"type":"NVIDIA Tesla T4","health":true}]'


@pytest.fixture
def sim() -> TestClient:
    source = SimSource(EXAMPLES / "cluster.yaml", EXAMPLES / "pods.yaml", VENDORS, SETTINGS)
    return TestClient(create_app(WebUI(source, History(interval=0))))


def gpu_pod(name: str, node: str | None, mem: int, phase: str = "Running") -> dict[str, object]:
    c = container("c", {"nvidia.com/gpu": 1, "nvidia.com/gpumem": mem})
    if not node:
        return pod(name, c, namespace="ml", uid=name, annotations={}, phase=phase)
    allocated = f"GPU-0,NVIDIA,{mem},10:;"
    return placed_pod(name, node, allocated, c, namespace="ml", uid=name, phase=phase)


@pytest.fixture
async def kube() -> FakeKube:
    fake = FakeKube()
    await fake.create(NODES, node_manifest("gpu-1", {"hami.io/node-nvidia-register": T4}))
    await fake.create(NODES, node_manifest("plain"))  # no registration, no label: still shown
    bad = node_manifest("broken", {"hami.io/node-nvidia-register": "[{not json"})
    await fake.create(NODES, bad)
    await fake.create(PODS, gpu_pod("train", "gpu-1", 4000), "ml")
    await fake.create(PODS, gpu_pod("huge", None, 20000, "Pending"), "ml")
    return fake


def live(fake: FakeKube) -> TestClient:
    source = KubeSource(fake, VENDORS, SETTINGS, ttl=0)
    return TestClient(create_app(WebUI(source, History(interval=0))))


def test_index_lists_versioned_endpoints(sim: TestClient) -> None:
    body = sim.get("/api/v1").json()
    assert body["api_version"] == "v1"
    assert "/api/v1/pods/{namespace}/{name}/explain" in body["endpoints"]


def test_summary_over_sim_files(sim: TestClient) -> None:
    body = sim.get("/api/v1/summary").json()
    assert (body["nodes"], body["nodes_registered"], body["devices"]) == (4, 4, 9)
    assert body["pods_pending"] == 1 and body["pods_placed"] >= 5
    models = {m["model"]: m["devices"] for m in body["by_model"]}
    assert models["NVIDIA Tesla T4"] == 4
    assert set(body["fragmentation"]) >= {"fragmentation_pct", "free_memory_mib"}


def test_summary_filters(sim: TestClient) -> None:
    t4 = sim.get("/api/v1/summary", params={"model": "nvidia tesla T4"}).json()
    assert (t4["nodes"], t4["devices"]) == (2, 4)
    one = sim.get("/api/v1/summary", params={"node": "t4-a"}).json()
    assert one["nodes"] == 1
    nobody = sim.get("/api/v1/summary", params={"vendor": "nope"}).json()
    assert (nobody["nodes"], nobody["devices"]) == (0, 0)
    assert sim.get("/api/v1/summary", params={"node": "x" * 300}).status_code == 422


def test_nodes_and_one_node(sim: TestClient) -> None:
    names = [n["name"] for n in sim.get("/api/v1/nodes").json()["nodes"]]
    assert names == ["a100-nvlink", "h100-mig", "t4-a", "t4-b"]
    node = sim.get("/api/v1/nodes/t4-a").json()
    first = node["devices"][0]
    assert first["uuid"] == "GPU-t4a-0"
    assert {
        "pod": "research/notebook",
        "container": "jupyter",
        "memory_mib": 6000,
        "cores": 50,
    } in first["pods"]
    assert node["devices"][0]["memory_allocated_mib"] >= 6000
    assert sim.get("/api/v1/nodes/t4-b").json()["devices"][1]["cordoned"] is True


def test_unknown_node_is_404_with_a_message(sim: TestClient) -> None:
    for path in ("/api/v1/nodes/nope", "/api/v1/nodes/nope/history"):
        response = sim.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "node 'nope' not found"}


def test_history(sim: TestClient) -> None:
    sim.get("/api/v1/summary")
    body = sim.get("/api/v1/nodes/t4-a/history", params={"minutes": 5}).json()
    samples = body["devices"]["GPU-t4a-0"]
    assert len(samples) >= 2 and samples[-1]["memory_allocated_mib"] >= 6000
    assert samples[-1]["utilisation_pct"] is None
    for bad in ("0", "61", "x"):
        response = sim.get("/api/v1/nodes/t4-a/history", params={"minutes": bad})
        assert response.status_code == 422


def test_pods_and_one_pod(sim: TestClient) -> None:
    pending = sim.get("/api/v1/pods", params={"phase": "pending"}).json()["pods"]
    assert [p["name"] for p in pending] == ["too-big"]
    research = sim.get("/api/v1/pods", params={"namespace": "research"}).json()["pods"]
    assert [p["name"] for p in research] == ["notebook"]
    pod = sim.get("/api/v1/pods/demo/infer-small").json()
    assert pod["slices"][0]["memory_mib"] == 3000 and pod["limits"][0]["cores"] == 30
    assert sim.get("/api/v1/pods", params={"phase": "odd"}).status_code == 400
    missing = sim.get("/api/v1/pods/demo/nope")
    assert missing.status_code == 404 and "demo/nope not found" in missing.json()["detail"]


def test_explain(sim: TestClient) -> None:
    body = sim.get("/api/v1/pods/demo/too-big/explain").json()
    assert body["fits"] is False and body["nodes_considered"] == 4
    assert body["groups"][0]["reason"] == "CardInsufficientMemory"
    assert (
        "no NVIDIA card in the cluster has 90000 MiB; the largest is 81559 MiB"
        in (body["groups"][0]["hint"])
    )
    placed = sim.get("/api/v1/pods/demo/infer-small/explain")
    assert placed.status_code == 409 and "is not pending" in placed.json()["detail"]
    assert sim.get("/api/v1/pods/demo/nope/explain").status_code == 404


async def test_live_source_shows_every_node_and_notices(kube: FakeKube) -> None:
    client = live(kube)
    summary = client.get("/api/v1/summary").json()
    assert (summary["nodes"], summary["nodes_registered"], summary["devices"]) == (3, 1, 1)
    assert any("node broken: malformed registration" in n for n in summary["notices"])
    nodes = {n["name"]: n for n in client.get("/api/v1/nodes").json()["nodes"]}
    assert nodes["plain"]["registered"] is False and nodes["plain"]["devices"] == []
    assert nodes["gpu-1"]["memory_allocated_mib"] == 4000
    why = client.get("/api/v1/pods/ml/huge/explain").json()
    reasons = {g["reason"]: g["nodes"] for g in why["groups"]}
    assert reasons == {
        "node unregistered": ["broken", "plain"],
        "CardInsufficientMemory": ["gpu-1"],
    }


async def test_live_source_follows_changes_and_survives_outages(kube: FakeKube) -> None:
    client = live(kube)
    assert client.get("/api/v1/summary").json()["pods_placed"] == 1
    await kube.create(PODS, gpu_pod("more", "gpu-1", 1000), "ml")
    node = client.get("/api/v1/nodes/gpu-1").json()
    assert node["memory_allocated_mib"] == 5000
    kube.fail_next("list", RuntimeError("connection refused"))
    summary = client.get("/api/v1/summary").json()
    assert summary["notices"][0].startswith("API server unreachable")


async def test_unreadable_source_is_503() -> None:
    fake = FakeKube()
    fake.fail_next("list", RuntimeError("down"))
    response = live(fake).get("/api/v1/summary")
    assert response.status_code == 503 and "cannot list" in response.json()["detail"]


def test_sim_source_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("- 1\n- [")
    with pytest.raises(SourceError, match=r"c\.yaml"):
        SimSource(bad, None, VENDORS, SETTINGS)


async def test_unreachable_monitor_is_a_notice(kube: FakeKube) -> None:
    node = kube.stored(NODES, "gpu-1")
    node["status"] = {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}
    ui = WebUI(
        KubeSource(kube, VENDORS, SETTINGS, ttl=0), History(interval=0), MonitorProbe(1, 0.5)
    )
    body = TestClient(create_app(ui)).get("/api/v1/summary").json()
    assert any("monitor at http://127.0.0.1:1/metrics unreachable" in n for n in body["notices"])


def test_parse_utilisation() -> None:
    text = 'hami_host_gpu_utilization_ratio{node="n",device_index="0",device_uuid="GPU-0",device_type="T4"} 42\n'
    assert parse_utilisation(text) == {"GPU-0": 42.0}


def test_pages_render_and_refresh_partially(sim: TestClient) -> None:
    page = sim.get("/")
    assert page.status_code == 200 and '<span class="v" data-k="devices">9</span>' in page.text
    assert "/static/webui.js" in page.text
    part = sim.get("/", params={"partial": "1"})
    assert "<html" not in part.text and 'data-k="nodes"' in part.text
    node = sim.get("/nodes/t4-a").text
    assert 'data-uuid="GPU-t4a-0"' in node and 'data-pod="research/notebook/jupyter"' in node
    pod = sim.get("/pods/demo/too-big").text
    assert "Why it is pending" in pod and "has 90000 MiB; the largest is 81559 MiB" in pod
    missing = sim.get("/nodes/nope")
    assert missing.status_code == 404 and "node &#x27;nope&#x27; not found" in missing.text
    assert sim.get("/static/webui.css").status_code == 200


def test_documents_are_json(sim: TestClient) -> None:
    assert json.loads(sim.get("/api/v1/pods").text)["pods"]
