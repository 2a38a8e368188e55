"""Filters filter everything on the page: namespace scopes usage, vendor by vendor name (from the
vendor registry), model by exact name; devices are labelled with their vendor's device word."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hami.config import load_config
from hami.k8s.fake import node_manifest
from hami.vendors import registry
from hami.webui.app import WebUI, create_app
from hami.webui.decode import build_snapshot
from hami.webui.history import History
from hami.webui.names import VendorNames
from hami.webui.simsource import SimSource, StaticSource
from tests.builders import container, placed_pod

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MIXED = EXAMPLES / "vendors"


@pytest.fixture(scope="module")
def mixed() -> TestClient:
    settings = load_config(MIXED / "config.yaml")
    vendors = registry.build(settings)
    source = SimSource(MIXED / "cluster.yaml", MIXED / "pods.yaml", vendors, settings)
    return TestClient(create_app(WebUI(source, History(interval=0))))


def _gpu(uuid: str, model: str) -> dict[str, object]:
    return {"id": uuid, "count": 10, "devmem": 24576, "devcore": 100, "type": model, "health": True}


def _pod(name: str, namespace: str, node: str, uuid: str, mem: int) -> dict[str, object]:
    c = container("c", {"nvidia.com/gpu": 1, "nvidia.com/gpumem": mem})
    return placed_pod(name, node, f"{uuid},NVIDIA,{mem},10:;", c, namespace=namespace)


@pytest.fixture(scope="module")
def a10() -> TestClient:
    """One A10 node and one A100 node; pods of two namespaces on them."""
    settings = load_config(EXAMPLES / "config.yaml")
    vendors = registry.build(settings)
    nodes = [
        node_manifest("a10", {"hami.io/node-nvidia-register": json.dumps([_gpu("A10-0", "NVIDIA A10")])}),
        node_manifest("a100", {"hami.io/node-nvidia-register": json.dumps([_gpu("A100-0", "NVIDIA A100")])}),
    ]  # fmt: skip
    pods = [
        _pod("one", "team-a", "a10", "A10-0", 1000),
        _pod("two", "team-b", "a100", "A100-0", 4000),
        _pod("three", "team-b", "a10", "A10-0", 2000),
    ]
    snapshot = build_snapshot(nodes, pods, vendors, settings)
    return TestClient(create_app(WebUI(StaticSource(snapshot, vendors), History(interval=0))))


def test_vendor_filter_by_vendor_name(mixed: TestClient) -> None:
    for name in ("Ascend", "Huawei", "huawei", "Ascend910B2"):
        body = mixed.get("/api/v1/summary", params={"vendor": name}).json()
        assert (body["nodes"], body["devices"]) == (1, 2), name
        assert [v["vendor"] for v in body["by_vendor"]] == ["Huawei"]
    enflame = mixed.get("/api/v1/summary", params={"vendor": "Enflame"}).json()
    assert enflame["nodes"] == 2  # the GCU and the DRS node: both Enflame
    nodes = mixed.get("/api/v1/nodes", params={"vendor": "Enflame"}).json()["nodes"]
    assert [n["name"] for n in nodes] == ["enflame-drs", "enflame-s60"]
    nobody = mixed.get("/api/v1/summary", params={"vendor": "nope"}).json()
    assert (nobody["nodes"], nobody["devices"]) == (0, 0)


def test_each_vendor_once(mixed: TestClient) -> None:
    body = mixed.get("/api/v1/summary").json()
    vendors = [v["vendor"] for v in body["by_vendor"]]
    assert vendors.count("Enflame") == 1 and vendors == sorted(set(vendors))
    assert sum(v["devices"] for v in body["by_vendor"]) == body["devices"]
    page = mixed.get("/").text
    choice = page[page.index('<select name="vendor">') :].split("</select>")[0]
    assert choice.count('<option value="Enflame"') == 1
    assert '<option value="Huawei"' in choice and '<option value="Ascend' not in choice


def test_devices_labelled_by_their_vendor_word(mixed: TestClient) -> None:
    labels = {
        n["name"]: [d["label"] for d in n["devices"]]
        for n in mixed.get("/api/v1/nodes").json()["nodes"]
    }
    assert labels["ascend-910b2"] == ["NPU 0", "NPU 1"]
    assert labels["kunlun-p800"][0] == "XPU 0"
    assert labels["cambricon-mlu"][0] == "MLU 0"
    assert labels["hygon-dcu"][0] == "DCU 0"
    assert labels["enflame-s60"][0] == labels["enflame-drs"][0] == "GCU 0"
    assert labels["nvidia-t4"] == ["GPU 0"]
    page = mixed.get("/nodes/ascend-910b2").text
    assert "NPU 1</a> · Ascend910B2" in page and "GPU 1" not in page


def test_model_filter_by_exact_name(a10: TestClient) -> None:
    body = a10.get("/api/v1/summary", params={"model": "NVIDIA A10"}).json()
    assert (body["nodes"], body["devices"]) == (1, 1)
    assert [m["model"] for m in body["by_model"]] == ["NVIDIA A10"]
    assert body["pods_placed"] == 2  # the pods on the A10, not the one on the A100
    assert a10.get("/api/v1/summary", params={"model": "nvidia a100"}).json()["devices"] == 1
    assert a10.get("/api/v1/summary", params={"model": "A10"}).json()["devices"] == 0
    pods = a10.get("/api/v1/pods", params={"model": "NVIDIA A100"}).json()["pods"]
    assert [p["name"] for p in pods] == ["two"]


def test_namespace_filter_scopes_usage(a10: TestClient) -> None:
    everyone = a10.get("/api/v1/summary").json()
    assert everyone["memory_allocated_mib"] == 7000 and everyone["pods_placed"] == 3
    team_a = a10.get("/api/v1/summary", params={"namespace": "team-a"}).json()
    assert (team_a["memory_allocated_mib"], team_a["pods_placed"]) == (1000, 1)
    assert team_a["memory_mib"] == everyone["memory_mib"]  # capacity stays the cluster's
    nobody = a10.get("/api/v1/summary", params={"namespace": "nope"}).json()
    assert (nobody["memory_allocated_mib"], nobody["cores_allocated"]) == (0, 0)
    nodes = a10.get("/api/v1/nodes", params={"namespace": "team-b"}).json()["nodes"]
    assert {n["name"]: n["memory_allocated_mib"] for n in nodes} == {"a10": 2000, "a100": 4000}
    device = nodes[0]["devices"][0]
    assert [p["pod"] for p in device["pods"]] == ["team-b/three"]
    page = a10.get("/", params={"namespace": "team-a"}).text
    assert '<span class="v" data-k="pods_placed">1</span>' in page
    assert "1000/49152 MiB" in page


def test_vendor_names_come_from_the_registry_classes() -> None:
    settings = load_config(MIXED / "config.yaml")
    names = VendorNames(registry.build(settings))
    assert names.keys_named("Enflame") == {"GCU", "Enflame"}
    assert names.keys_named("Kunlunxin") == {"kunlun", "XPU"}
    assert names.word("XPU") == "XPU" and names.name("Metax-SGPU") == "MetaX"
    assert names.name("unknown-key") == "unknown-key"  # a key no vendor has: shown as is
