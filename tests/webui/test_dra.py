"""DRA devices and allocations on the web UI's pages and API, next to extender ones: a DRA
node's published devices are its devices, a DRA pod's allocated claims its slices
(hami.core.dra.placement over the ResourceClaims and ResourceSlices the live source lists)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from hami.config import load_config
from hami.core.dra import names
from hami.draview import CLAIMS, SLICES
from hami.k8s.api import NODES, PODS, KubeAPIError
from hami.k8s.fake import FakeKube, node_manifest
from hami.vendors import registry
from hami.webui.app import WebUI, create_app
from hami.webui.history import History
from hami.webui.source import KubeSource, SimSource
from tests.builders import container, dra_claim, placed_pod

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SETTINGS = load_config(EXAMPLES / "config.yaml")
VENDORS = registry.build(SETTINGS)
T4 = '[{"id":"GPU-0","count":10,"devmem":15360,"devcore":100,"type":"NVIDIA Tesla T4","health":true}]'


def dra_slice(node: str) -> dict[str, Any]:
    device = {
        "name": "hami-gpu-0",
        "attributes": {
            "uuid": {"string": "GPU-D0"},
            "productName": {"string": "NVIDIA A100"},
            "minor": {"int": 0},
        },
        "capacity": {"memory": {"value": "40Gi"}, "cores": {"value": "100"}},
    }
    return {
        "metadata": {"name": f"{node}-hami-core-gpu"},
        "spec": {
            "driver": names.DRIVER,
            "nodeName": node,
            "pool": {"name": node},
            "devices": [device],
        },
    }


def dra_pod(name: str, node: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {
            "nodeName": node,
            "resourceClaims": [{"name": "gpu-0", "resourceClaimTemplateName": "hami-gpu-x"}],
            "containers": [
                {"name": "main", "image": "x", "resources": {"claims": [{"name": "gpu-0"}]}}
            ],
        },
        "status": {
            "phase": "Running",
            "resourceClaimStatuses": [{"name": "gpu-0", "resourceClaimName": f"{name}-gpu-0-x"}],
        },
    }


async def mixed() -> FakeKube:
    """One extender node with a placed pod, one DRA node with an allocated claim."""
    fake = FakeKube()
    await fake.create(NODES, node_manifest("gpu-1", {"hami.io/node-nvidia-register": T4}))
    c = container("c", {"nvidia.com/gpu": 1})
    await fake.create(
        PODS, placed_pod("ext", "gpu-1", "GPU-0,NVIDIA,1000,10:;", c, namespace="ml"), "ml"
    )
    dra_node = node_manifest("dra-1", {})
    dra_node["metadata"]["labels"] = {names.DRA_NODE_LABEL: "true"}
    await fake.create(NODES, dra_node)
    await fake.create(SLICES, dra_slice("dra-1"))
    await fake.create(PODS, dra_pod("p1", "dra-1"), "ml")
    await fake.create(CLAIMS, dra_claim("p1", "dra-1", "1Gi", "30"), "ml")
    return fake


async def test_dra_devices_and_claims_next_to_extender_ones() -> None:
    fake = await mixed()
    app = create_app(WebUI(KubeSource(fake, VENDORS, SETTINGS, ttl=0), History(interval=0)))
    with TestClient(app) as client:
        summary = client.get("/api/v1/summary").json()
        assert summary["devices"] == 2 and summary["pods_placed"] == 2
        assert summary["memory_allocated_mib"] == 1000 + 1024
        node = client.get("/api/v1/nodes/dra-1").json()
        (device,) = node["devices"]
        assert device["uuid"] == "GPU-D0" and device["mode"] == "dra"
        assert device["memory_mib"] == 40 * 1024 and device["memory_allocated_mib"] == 1024
        assert device["cores_allocated"] == 30
        assert device["pods"] == [
            {"pod": "ml/p1", "container": "main", "memory_mib": 1024, "cores": 30}
        ]
        uuids = {d["uuid"] for d in client.get("/api/v1/devices").json()["devices"]}
        assert uuids == {"GPU-0", "GPU-D0"}
        pod = client.get("/api/v1/pods/ml/p1").json()
        assert pod["node"] == "dra-1" and pod["memory_mib"] == 1024 and pod["cores"] == 30
        assert pod["slices"][0]["container"] == "main"
        for page in ("/", "/nodes/dra-1", "/accelerators", "/workloads"):
            html = client.get(page).text
            assert "GPU-D0" in html or "dra-1" in html, page
        assert "ml/p1" in client.get("/workloads").text or "p1" in client.get("/workloads").text
        # a claim released: its device is free again (the DRA state is read with each snapshot)
        client.portal.call(fake.delete, CLAIMS, "p1-gpu-0-x", "ml")  # type: ignore[union-attr]
        node = client.get("/api/v1/nodes/dra-1").json()
        assert node["devices"][0]["memory_allocated_mib"] == 0


async def test_what_if_never_places_an_extender_pod_on_a_dra_node() -> None:
    fake = await mixed()
    source = KubeSource(fake, VENDORS, SETTINGS, ttl=0)
    snapshot = await source.snapshot()
    assert snapshot.dra_nodes == frozenset({"dra-1"})
    assert "dra-1" not in snapshot.node_names and "gpu-1" in snapshot.node_names


async def test_no_dra_api_leaves_the_ui_as_it_was() -> None:
    fake = FakeKube()
    await fake.create(NODES, node_manifest("gpu-1", {"hami.io/node-nvidia-register": T4}))
    snapshot = await KubeSource(fake, VENDORS, SETTINGS, ttl=0).snapshot()
    assert snapshot.dra_nodes == frozenset() and not snapshot.notices


async def test_claims_refused_is_a_notice_and_the_rest_works() -> None:
    fake = await mixed()
    fake.fail_next("list", KubeAPIError("resourceclaims is forbidden", 403), CLAIMS)
    snapshot = await KubeSource(fake, VENDORS, SETTINGS, ttl=0).snapshot()
    assert any("DRA allocations not shown" in n for n in snapshot.notices)
    assert snapshot.pod("ml", "ext") is not None and snapshot.pod("ml", "p1") is None


async def test_sim_files_with_slices_and_claims(tmp_path: Path) -> None:
    import yaml

    node = node_manifest("dra-1", {})
    docs = [
        {"kind": "Node", **node},
        {"kind": "ResourceSlice", **dra_slice("dra-1")},
        {"kind": "Pod", **dra_pod("p1", "dra-1")},
        {"kind": "ResourceClaim", **dra_claim("p1", "dra-1", "2Gi", "10")},
    ]
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(yaml.safe_dump_all(docs))
    snapshot = await SimSource(cluster, None, VENDORS, SETTINGS).snapshot()
    pod = snapshot.pod("ml", "p1")
    assert pod is not None and pod.node == "dra-1" and snapshot.dra_nodes == {"dra-1"}
    (state,) = snapshot.view.states()
    assert state.usage[0].usedmem == 2048 and state.usage[0].usedcores == 10
