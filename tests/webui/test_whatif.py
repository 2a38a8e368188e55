"""What-if: a pasted pod spec is decided by the same core as `hami sim`, on the live view; a
malformed spec is a clear message on the page."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hami.config import load_config
from hami.sim.load import load_cluster, load_pods
from hami.sim.run import simulate
from hami.vendors import registry
from hami.webui.app import WebUI, create_app
from hami.webui.history import History
from hami.webui.simsource import SimSource

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SETTINGS = load_config(EXAMPLES / "config.yaml")
VENDORS = registry.build(SETTINGS)


def spec(mem: int, cores: int = 10, gpus: int = 1) -> str:
    return f"""apiVersion: v1
kind: Pod
metadata: {{name: try, namespace: team}}
spec:
  containers:
    - name: main
      image: busybox
      resources:
        limits: {{nvidia.com/gpu: {gpus}, nvidia.com/gpumem: {mem}, nvidia.com/gpucores: {cores}}}
"""


@pytest.fixture(scope="module")
def sim() -> TestClient:
    source = SimSource(EXAMPLES / "cluster.yaml", EXAMPLES / "pods.yaml", VENDORS, SETTINGS)
    return TestClient(create_app(WebUI(source, History(interval=0))))


def test_api_places_as_the_core_does(sim: TestClient) -> None:
    body = sim.post("/api/v1/what-if", content=spec(2000)).json()
    assert body["fits"] is True and body["pod"] == "team/try"
    assert body["node"] in {n["name"] for n in sim.get("/api/v1/nodes").json()["nodes"]}
    assert body["devices"][0]["memory_mib"] == 2000 and body["devices"][0]["container"] == "main"
    nothing_changed = sim.get("/api/v1/summary").json()
    assert nothing_changed["pods_placed"] == 8  # decided, never committed


def test_api_says_why_not(sim: TestClient) -> None:
    body = sim.post("/api/v1/what-if", content=spec(90000)).json()
    assert body["fits"] is False and body["node"] is None
    assert body["explain"]["groups"][0]["reason"] == "CardInsufficientMemory"


def test_page_shows_where_it_lands_and_why_not(sim: TestClient) -> None:
    form = sim.get("/what-if").text
    assert '<textarea id="spec" name="spec"' in form and "data-no-refresh" in form
    landed = sim.post("/what-if", data={"spec": spec(2000)})
    assert landed.status_code == 200 and 'data-fits="yes"' in landed.text
    assert 'data-k="whatif_node"' in landed.text
    refused = sim.post("/what-if", data={"spec": spec(90000)}).text
    assert 'data-fits="no"' in refused and "CardInsufficientMemory" in refused


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the spec is empty"),
        ("kind: Pod\nspec: [", "not valid YAML at line"),
        ("- 1\n- 2\n", "expected a Kubernetes object"),
        ("kind: Deployment\nspec: {}\n", "expected kind: Pod, got kind: Deployment"),
        ("kind: Pod\nspec: {}\n", "the Pod has no spec.containers"),
        ("kind: Pod\nspec: {containers: [{name: c}]}\n", "asks for no device"),
        (spec(2000) + "---\n" + spec(2000), "expected one Pod, found 2 documents"),
        (spec(-5), "request is invalid"),
    ],
)
def test_malformed_spec_is_a_clear_message(sim: TestClient, text: str, message: str) -> None:
    api = sim.post("/api/v1/what-if", content=text)
    assert api.status_code == 400 and message in api.json()["detail"], api.json()
    page = sim.post("/what-if", data={"spec": text})
    assert page.status_code == 400 and 'id="whatif-error"' in page.text
    assert "Cannot try this spec" in page.text


@pytest.mark.parametrize("mem", [1000, 4000, 12000, 40000, 90000])
def test_same_answer_as_hami_sim(sim: TestClient, tmp_path: Path, mem: int) -> None:
    """`hami sim` over the same files with the spec appended places it on the same node."""
    queued = tmp_path / "pods.yaml"
    queued.write_text((EXAMPLES / "pods.yaml").read_text().rstrip() + "\n---\n" + spec(mem))
    cluster = load_cluster(EXAMPLES / "cluster.yaml", VENDORS)
    outcome = simulate(cluster, load_pods(queued, VENDORS, SETTINGS), VENDORS)
    body = sim.post("/api/v1/what-if", content=spec(mem)).json()
    assert body["node"] == outcome.decisions[-1].node
