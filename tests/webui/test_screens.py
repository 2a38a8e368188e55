"""The list screens (nodes, accelerators, workloads, Pending, namespaces and quotas): search and
sort in the URL, links between every object, numbers equal to the JSON API's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hami.config import load_config
from hami.vendors import registry
from hami.webui.app import WebUI, create_app
from hami.webui.history import History
from hami.webui.simsource import SimSource

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SETTINGS = load_config(EXAMPLES / "config.yaml")
VENDORS = registry.build(SETTINGS)
QUOTA = """
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: gpu, namespace: demo}
spec:
  hard:
    limits.nvidia.com/gpumem: "200000"
    limits.nvidia.com/gpucores: "300"
    pods: "10"
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    cluster = tmp_path_factory.mktemp("sim") / "cluster.yaml"
    cluster.write_text((EXAMPLES / "cluster.yaml").read_text() + QUOTA)
    source = SimSource(cluster, EXAMPLES / "pods.yaml", VENDORS, SETTINGS)
    return TestClient(create_app(WebUI(source, History(interval=0))))


def _rows(html: str, table: str) -> list[str]:
    body = html.split(f'<table id="{table}"')[1].split("</table>")[0]
    return re.findall(r"<tr><td.*?</tr>", body)


def _col(row: str, col: str) -> str:
    cell = re.search(rf'data-col="{col}">(.*?)</td>', row)
    assert cell is not None
    return re.sub(r"<[^>]+>", "", cell.group(1))


def test_every_screen_answers_and_links_the_others(sim: TestClient) -> None:
    for path in ("/", "/nodes", "/accelerators", "/workloads", "/pending", "/namespaces"):
        page = sim.get(path)
        assert page.status_code == 200, path
        for screen in ("/nodes", "/accelerators", "/workloads", "/pending", "/namespaces"):
            assert f'href="{screen}"' in page.text, (path, screen)


def test_node_list_matches_the_api_and_sorts(sim: TestClient) -> None:
    api = {n["name"]: n for n in sim.get("/api/v1/nodes").json()["nodes"]}
    rows = _rows(sim.get("/nodes", params={"sort": "memory", "dir": "desc"}).text, "node-list")
    assert len(rows) == len(api) == 4
    for row in rows:
        node = api[_col(row, "name")]
        assert _col(row, "memory") == f"{node['memory_allocated_mib']}/{node['memory_mib']} MiB"
        assert f'href="/nodes/{node["name"]}"' in row
    shares = [
        api[_col(r, "name")]["memory_allocated_mib"] / api[_col(r, "name")]["memory_mib"]
        for r in rows
    ]
    assert shares == sorted(shares, reverse=True)
    found = _rows(sim.get("/nodes", params={"q": "t4-"}).text, "node-list")
    assert [_col(r, "name") for r in found] == ["t4-a", "t4-b"]


def test_accelerator_list_and_detail(sim: TestClient) -> None:
    devices = sim.get("/api/v1/devices").json()["devices"]
    assert len(devices) == 9
    rows = _rows(sim.get("/accelerators", params={"sort": "node"}).text, "device-list")
    assert [_col(r, "node") for r in rows] == sorted(d["node"] for d in devices)
    one = sim.get("/api/v1/devices/GPU-t4a-0").json()
    assert one["node"] == "t4-a" and one["label"] == "GPU 0"
    page = sim.get("/accelerators/GPU-t4a-0").text
    assert 'href="/nodes/t4-a"' in page and 'href="/pods/research/notebook"' in page
    assert f'data-k="slots_used">{one["slots_used"]}<' in page
    missing = sim.get("/accelerators/GPU-nope")
    assert (
        missing.status_code == 404 and "accelerator &#x27;GPU-nope&#x27; not found" in missing.text
    )
    assert sim.get("/api/v1/devices/GPU-nope").status_code == 404


def test_workload_list_matches_the_api(sim: TestClient) -> None:
    pods = sim.get("/api/v1/pods", params={"phase": "placed"}).json()["pods"]
    rows = _rows(
        sim.get("/workloads", params={"sort": "cores", "dir": "desc"}).text, "workload-list"
    )
    assert len(rows) == len(pods) == 8
    by_name = {p["name"]: p for p in pods}
    for row in rows:
        pod = by_name[_col(row, "name").split("/")[1]]
        assert int(_col(row, "memory")) == pod["memory_mib"]
        assert int(_col(row, "cards")) == pod["cards"] == len({s["uuid"] for s in pod["slices"]})
        assert _col(row, "node") == pod["node"]
    cores = [int(_col(r, "cores")) for r in rows]
    assert cores == sorted(cores, reverse=True)
    research = _rows(sim.get("/workloads", params={"namespace": "research"}).text, "workload-list")
    assert [_col(r, "name") for r in research] == ["research/notebook"]
    pod = sim.get("/pods/demo/train-nvlink").text
    assert 'href="/accelerators/' in pod and 'href="/nodes/a100-nvlink"' in pod


def test_pending_screen_groups_by_cause(sim: TestClient) -> None:
    causes = sim.get("/api/v1/pending").json()["causes"]
    assert [(c["cause"], [p["name"] for p in c["pods"]]) for c in causes] == [
        ("CardInsufficientMemory", ["too-big"])
    ]
    page = sim.get("/pending").text
    assert (
        'data-cause="CardInsufficientMemory"' in page
        and "no NVIDIA card in the cluster has 90000 MiB" in page
    )
    assert 'href="/pods/demo/too-big"' in page
    assert 'data-k="pending_total">1<' in page
    none = sim.get("/pending", params={"namespace": "research"}).text
    assert "No GPU pod is Pending." in none


def test_namespaces_and_quotas(sim: TestClient) -> None:
    body = sim.get("/api/v1/namespaces").json()
    assert body["quotas_known"] is True
    demo = next(n for n in body["namespaces"] if n["namespace"] == "demo")
    placed = sim.get("/api/v1/pods", params={"namespace": "demo", "phase": "placed"}).json()
    assert demo["pods_placed"] == len(placed["pods"]) and demo["pods_pending"] == 1
    quotas = {q["resource"]: q for q in demo["quotas"]}
    assert quotas["nvidia.com/gpumem"]["limit"] == 200000
    assert quotas["nvidia.com/gpumem"]["used"] == demo["vendors"][0]["memory_allocated_mib"]
    assert quotas["nvidia.com/gpucores"]["limit"] == 300
    page = sim.get("/namespaces").text
    assert 'data-resource="nvidia.com/gpumem"' in page
    assert f"nvidia.com/gpumem: {quotas['nvidia.com/gpumem']['used']}/200000" in page
    research = next(n for n in body["namespaces"] if n["namespace"] == "research")
    assert research["quotas"] == []
