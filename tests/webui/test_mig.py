"""The web UI draws a MIG GPU as its slices (issue 21): JSON `mig` per device and per pod, and
the node page's slice strip (each instance across its placement, labelled profile and pod)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from hami.config import load_config
from hami.k8s.api import NODES, PODS
from hami.k8s.fake import FakeKube
from hami.vendors import registry
from hami.webui.app import WebUI, create_app
from hami.webui.history import History
from hami.webui.livesource import KubeSource
from hami.webui.simsource import SimSource
from tests.sim.test_demo_mig import manifests
from tests.sim.test_mig import GPU, cluster_yaml
from tests.sim.test_mig import PODS as SIM_PODS

SETTINGS = load_config(None)
VENDORS = registry.build(SETTINGS)


def sim_client(tmp_path: Path) -> TestClient:
    (tmp_path / "cluster.yaml").write_text(cluster_yaml())
    (tmp_path / "pods.yaml").write_text(SIM_PODS)
    source = SimSource(tmp_path / "cluster.yaml", tmp_path / "pods.yaml", VENDORS, SETTINGS)
    return TestClient(create_app(WebUI(source, History(interval=0))))


def test_node_json_gives_a_mig_gpu_its_slices_and_instances(tmp_path: Path) -> None:
    client = sim_client(tmp_path)
    (device,) = client.get("/api/v1/nodes/h100").json()["devices"]
    assert device["mode"] == "mig"
    mig = device["mig"]
    assert (mig["slices"], mig["slices_used"], mig["slice_map"]) == (8, 5, "...abbbb")
    placed, running = mig["instances"]
    assert (placed["pod"], placed["profile"], placed["start"], placed["size"]) == (
        "ml/small",
        "1g.10gb",
        3,
        1,
    )
    assert placed["state"] == "reserved" and placed["mig_uuid"] is None
    assert running["state"] == "realised" and running["mig_uuid"] == "MIG-aaaa"
    assert (running["gpu_instance_id"], running["compute_instance_id"]) == (2, 0)


def test_pod_json_lists_its_mig_instances(tmp_path: Path) -> None:
    client = sim_client(tmp_path)
    (instance,) = client.get("/api/v1/pods/ml/trainer").json()["mig"]
    assert instance["gpu_uuid"] == GPU and instance["container"] == "c"
    assert (instance["profile"], instance["start"], instance["size"]) == ("3g.40gb", 4, 4)
    assert instance["mig_uuid"] == "MIG-aaaa"
    (placed,) = client.get("/api/v1/pods/ml/small").json()["mig"]
    assert placed["state"] == "reserved"


def test_non_mig_devices_have_no_mig_doc() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    source = SimSource(examples / "cluster.yaml", examples / "pods.yaml", VENDORS, SETTINGS)
    client = TestClient(create_app(WebUI(source, History(interval=0))))
    assert client.get("/api/v1/nodes/t4-a").json()["devices"][0]["mig"] is None
    (h100,) = client.get("/api/v1/nodes/h100-mig").json()["devices"]
    assert h100["mig"]["slice_map"] == ".....ab."  # the example's mig-pair, placed by the UI
    assert client.get("/api/v1/pods/demo/infer-small").json()["mig"] == []


def test_node_page_draws_each_instance_across_its_slices(tmp_path: Path) -> None:
    html = sim_client(tmp_path).get("/nodes/h100").text
    strip = re.search(r'<div class="mig" data-slices="8".*?</div>', html)
    assert strip is not None
    cells = re.findall(r'<span class="slice (\w+)" style="grid-column:(\d+) / span (\d+)', strip[0])
    assert cells == [  # in slice order: one row
        ("free", "1", "1"),
        ("free", "2", "1"),
        ("free", "3", "1"),
        ("reserved", "4", "1"),
        ("realised", "5", "4"),
    ]
    assert 'data-profile="3g.40gb" data-pod="ml/trainer"' in strip[0]
    assert 'data-mig-uuid="MIG-aaaa"' in strip[0] and "<b>1g.10gb</b>" in strip[0]
    assert "5/8 slices" in html
    pod = sim_client(tmp_path).get("/pods/ml/trainer").text
    assert '<table id="mig">' in pod and "MIG-aaaa" in pod


async def test_live_source_shows_realised_identities() -> None:
    fake = FakeKube()
    nodes, pods = manifests()
    for node in nodes:
        await fake.create(NODES, node)
    for pod in pods:
        await fake.create(PODS, pod, str(pod["metadata"]["namespace"]))
    client = TestClient(
        create_app(WebUI(KubeSource(fake, VENDORS, SETTINGS, ttl=0), History(interval=0)))
    )
    (device,) = client.get("/api/v1/nodes/h100").json()["devices"]
    assert device["mig"]["slice_map"] == "aaaa..b."  # the finished pod's slice is free
    assert [i["mig_uuid"] for i in device["mig"]["instances"]] == [None, "MIG-1111"]
    assert client.get("/api/v1/nodes/t4").json()["devices"][0]["mig"] is None
