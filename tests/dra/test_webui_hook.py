"""The web UI's ``/api/v1/dra/allocations`` (a thin hook over hami.core.dra.explain)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from hami.config import load_config
from hami.core.dra import names
from hami.draview import CLAIMS, SLICES
from hami.k8s.fake import FakeKube
from hami.vendors import registry
from hami.webui.app import WebUI, create_app
from hami.webui.history import History
from hami.webui.livesource import KubeSource
from hami.webui.simsource import SimSource

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SETTINGS = load_config(EXAMPLES / "config.yaml")
VENDORS = registry.build(SETTINGS)


async def test_live_allocations_and_device_usage() -> None:
    fake = FakeKube()
    device = {
        "name": "hami-gpu-0",
        "capacity": {"memory": {"value": "4Gi"}, "cores": {"value": "100"}},
    }
    await fake.create(
        SLICES,
        {
            "metadata": {"name": "n1-hami-core-gpu"},
            "spec": {"driver": names.DRIVER, "pool": {"name": "n1"}, "devices": [device]},
        },
    )
    result = {
        "driver": names.DRIVER,
        "pool": "n1",
        "device": "hami-gpu-0",
        "request": "gpu",
        "consumedCapacity": {"memory": "1Gi", "cores": "30"},
    }
    claim = {
        "metadata": {"name": "c1", "ownerReferences": [{"kind": "Pod", "name": "p1"}]},
        "status": {"allocation": {"devices": {"results": [result]}}},
    }
    await fake.create(CLAIMS, claim, "ml")
    client = TestClient(
        create_app(WebUI(KubeSource(fake, VENDORS, SETTINGS, ttl=0), History(interval=0)))
    )
    body = client.get("/api/v1/dra/allocations").json()
    assert body["allocations"] == [
        {
            "namespace": "ml",
            "claim": "c1",
            "pod": "p1",
            "node": "n1",
            "device": "hami-gpu-0",
            "request": "gpu",
            "memory_bytes": 1 << 30,
            "cores": 30,
        }
    ]
    assert body["devices"][0]["used_cores"] == 30 and body["overcommitted"] == []
    assert "/api/v1/dra/allocations" in client.get("/api/v1").json()["endpoints"]


def test_sim_files_without_claims_answer_an_empty_document() -> None:
    source = SimSource(EXAMPLES / "cluster.yaml", EXAMPLES / "pods.yaml", VENDORS, SETTINGS)
    client = TestClient(create_app(WebUI(source, History(interval=0))))
    answer = client.get("/api/v1/dra/allocations")
    assert answer.status_code == 200
    body = answer.json()
    assert body["allocations"] == [] and body["devices"] == [] and body["overcommitted"] == []
