"""The web UI in a real browser (Debian's headless Chromium driven by Playwright) over the local
control plane: overview counts, a new pod's slice in the node view within 2 s, and a Pending
pod's explanation. Screenshots go to artifacts/webui/ (git-ignored by its own .gitignore)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from lightkube import AsyncClient
from lightkube.resources.core_v1 import Node, Pod
from playwright.async_api import Browser, Page, async_playwright

from hami.cluster.control_plane import LocalCluster
from hami.cluster.testing import create_gpu_node

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "webui"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _registration(model: str) -> str:
    devices = [
        {"id": f"GPU-{model}-{i}", "index": i, "count": 10, "devmem": 16384, "devcore": 100,
         "type": f"NVIDIA {model}", "mode": "hami-core", "health": True}
        for i in range(2)
    ]  # fmt: skip
    return json.dumps(devices)


@pytest.fixture(scope="module")
def webui(k8s_cluster: LocalCluster) -> Iterator[str]:
    """`hami webui` against the session cluster, as a separate process."""
    port = _free_port()
    log = (ARTIFACTS / "webui.log").open("wb") if _artifacts() else None
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "hami"), "webui", "--kubeconfig", str(k8s_cluster.kubeconfig),
         "--port", str(port), "--history-interval", "1"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _artifacts() -> bool:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS.parent / ".gitignore").write_text("*\n")
    return True


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"hami webui exited with {proc.returncode}"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("hami webui did not answer /healthz within 30 s")


@pytest_asyncio.fixture(loop_scope="function")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(loop_scope="function")
async def gpu_node(kube: AsyncClient, namespace: str) -> AsyncIterator[tuple[str, str]]:
    name, model = f"webui-{namespace}", f"WebUI-{namespace}"
    annotations = {"hami.io/node-nvidia-register": _registration(model)}
    await create_gpu_node(kube, name, annotations=annotations, wait_ready=False)
    try:
        yield name, model
    finally:
        await kube.delete(Node, name)


def _pod(name: str, namespace: str, mem: int, node: str | None, uuid: str = "") -> Pod:
    annotations = {}
    spec: dict[str, object] = {"schedulerName": "hami-absent"}  # nobody binds it: Pending
    if node:
        annotations = {
            "hami.io/vgpu-node": node,
            "hami.io/vgpu-devices-allocated": f"{uuid},NVIDIA,{mem},30:;",
        }
        spec = {"nodeName": node}
    limits = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": str(mem)}
    container = {"name": "main", "image": "busybox", "resources": {"limits": limits}}
    return Pod.from_dict(
        {
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {**spec, "containers": [container]},
        }
    )


async def _count(page: Page, key: str) -> str:
    return (await page.locator(f'[data-k="{key}"]').inner_text()).strip()


async def _shot(page: Page, name: str) -> None:
    _artifacts()
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_overview_node_and_pending_pod_views(
    webui: str, browser: Browser, kube: AsyncClient, namespace: str, gpu_node: tuple[str, str]
) -> None:
    node, model = gpu_node
    page = await browser.new_page(viewport={"width": 1280, "height": 900})

    await page.goto(f"{webui}/?model=NVIDIA {model}&namespace={namespace}")
    assert await _count(page, "nodes") == "1"
    assert await _count(page, "devices") == "2"
    assert await _count(page, "pods_placed") == "0"
    await _shot(page, "overview")

    await page.goto(f"{webui}/nodes/{node}")
    await page.locator(f'[data-uuid="GPU-{model}-0"]').wait_for()
    await kube.create(_pod("infer", namespace, 6000, node, f"GPU-{model}-0"))
    created = time.monotonic()
    await page.locator(f'[data-pod="{namespace}/infer/main"]').first.wait_for(timeout=2000)
    assert time.monotonic() - created <= 2.0
    await _shot(page, "node")

    await kube.create(_pod("too-big", namespace, 100000, None))
    await asyncio.sleep(0.6)  # past the source's list TTL
    await page.goto(f"{webui}/pods/{namespace}/too-big")
    explain = page.locator("#explain")
    await explain.wait_for()
    text = await explain.inner_text()
    assert "Why it is pending" in text and "CardInsufficientMemory" in text
    assert "needs 100000 MiB on one card" in text
    await _shot(page, "pod")

    await page.goto(f"{webui}/?model=NVIDIA {model}&namespace={namespace}")
    assert await _count(page, "pods_placed") == "1"
    assert await _count(page, "pods_pending") == "1"
    await page.close()


# --- every screen, over sim files: the mixed demo cluster and a 1,000-node synthetic one -------

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def _serve_sim(
    cluster: Path, pods: Path | None, config: Path
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    args = [str(Path(sys.executable).parent / "hami"), "webui", "--cluster", str(cluster),
            "--config", str(config), "--port", str(port), "--history-interval", "1"]  # fmt: skip
    if pods is not None:
        args += ["--pods", str(pods)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    _wait_healthy(url, proc)
    return proc, url


@pytest.fixture(scope="module")
def mixed_webui() -> Iterator[str]:
    vendors = EXAMPLES / "vendors"
    proc, url = _serve_sim(vendors / "cluster.yaml", vendors / "pods.yaml", vendors / "config.yaml")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def big_webui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """1,000 nodes × 8 GPUs and 4,000 placed pods (the benchmark's cluster), as a sim file."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from bench_webui import manifests

    nodes, pods = manifests(1000, 8)
    for pod in pods:
        pod["kind"] = "Pod"
    for node in nodes:
        node["kind"] = "Node"
    cluster = tmp_path_factory.mktemp("big") / "cluster.json"
    cluster.write_text(json.dumps({"kind": "List", "items": [*nodes, *pods]}))
    proc, url = _serve_sim(cluster, None, EXAMPLES / "config.yaml")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _doc_shot(page: Page, name: str) -> None:
    """Screenshots for the README: docs/img/ with HAMI_WEBUI_SCREENSHOTS=docs, else artifacts."""
    target = DOCS_IMG if os.environ.get("HAMI_WEBUI_SCREENSHOTS") == "docs" else ARTIFACTS
    target.mkdir(parents=True, exist_ok=True)
    if target == ARTIFACTS:
        _artifacts()
    await page.screenshot(path=str(target / f"webui-{name}.png"), full_page=False)


async def _rows(page: Page, table: str) -> int:
    return await page.locator(f"#{table} tbody tr").count()


async def test_overview_and_vendor_filter(mixed_webui: str, browser: Browser) -> None:
    url = mixed_webui
    api = httpx.Client(base_url=url, timeout=10)
    page = await browser.new_page(viewport={"width": 1360, "height": 900})
    summary = api.get("/api/v1/summary").json()
    await page.goto(f"{url}/")
    for key in ("nodes", "devices", "pods_placed", "pods_pending"):
        assert await _count(page, key) == str(summary[key]), key
    await page.wait_for_function(  # the page refreshes itself; history samples every second
        "() => Number(document.querySelector('figure.chart')?.dataset.samples) >= 3"
    )
    await _doc_shot(page, "overview")
    # the vendor filter by name, through the form; the URL says it
    await page.select_option('select[name="vendor"]', "Huawei")
    await page.click("#filters button")
    await page.wait_for_function("() => location.search.includes('vendor=Huawei')")
    huawei = api.get("/api/v1/summary", params={"vendor": "Huawei"}).json()
    await page.wait_for_function(
        "n => document.querySelector('[data-k=devices]').textContent.trim() === n",
        arg=str(huawei["devices"]),
    )
    assert "vendor=Huawei" in (
        await page.locator("nav#screens a").nth(1).get_attribute("href") or ""
    )
    await page.close()


async def test_nodes_and_accelerators(mixed_webui: str, browser: Browser) -> None:
    url = mixed_webui
    api = httpx.Client(base_url=url, timeout=10)
    page = await browser.new_page(viewport={"width": 1360, "height": 900})
    nodes = api.get("/api/v1/nodes").json()["nodes"]
    await page.goto(f"{url}/nodes")
    assert await _rows(page, "node-list") == len(nodes)
    await page.click('th a[data-sort="devices"]')
    await page.wait_for_url("**sort=devices**")
    await page.click('th a[data-sort="devices"]')
    await page.wait_for_url("**dir=desc**")
    first = await page.locator('#node-list tbody tr td[data-col="name"]').first.inner_text()
    most = max(len(n["devices"]) for n in nodes)
    assert len(next(n for n in nodes if n["name"] == first)["devices"]) == most
    await _doc_shot(page, "nodes")
    await page.goto(f"{url}/nodes/ascend-910b2")
    assert "NPU 0" in await page.locator("#devices").inner_text()
    await page.goto(f"{url}/nodes/kunlun-p800")
    await _doc_shot(page, "node")

    devices = api.get("/api/v1/devices").json()["devices"]
    await page.goto(f"{url}/accelerators")
    assert await _rows(page, "device-list") == len(devices)
    await page.fill('form.search input[name="q"]', "XPU")
    await page.press('form.search input[name="q"]', "Enter")
    await page.wait_for_url("**q=XPU**")
    xpus = [d for d in devices if "XPU" in d["label"]]
    await page.wait_for_function(
        "n => document.querySelectorAll('#device-list tbody tr').length === n", arg=len(xpus)
    )
    await _doc_shot(page, "accelerators")
    one = xpus[0]
    await page.goto(f"{url}/accelerators/{one['uuid']}")
    assert await _count(page, "slots_used") == str(one["slots_used"])
    await page.close()


async def test_workloads_pending_and_namespaces(mixed_webui: str, browser: Browser) -> None:
    url = mixed_webui
    api = httpx.Client(base_url=url, timeout=10)
    page = await browser.new_page(viewport={"width": 1360, "height": 900})
    placed = api.get("/api/v1/pods", params={"phase": "placed"}).json()["pods"]
    await page.goto(f"{url}/workloads?sort=memory&dir=desc")
    assert await _rows(page, "workload-list") == len(placed)
    top = await page.locator('#workload-list tbody tr td[data-col="memory"]').first.inner_text()
    assert int(top) == max(p["memory_mib"] for p in placed)
    await _doc_shot(page, "workloads")
    await page.locator('#workload-list tbody tr td[data-col="name"] a').first.click()
    await page.locator("#limits").wait_for()

    causes = api.get("/api/v1/pending").json()["causes"]
    await page.goto(f"{url}/pending")
    total = sum(len(c["pods"]) for c in causes)
    if total:
        assert await _count(page, "pending_total") == str(total)
        assert await page.locator("section.cause").count() == len(causes)
    await _doc_shot(page, "pending")

    namespaces = api.get("/api/v1/namespaces").json()["namespaces"]
    await page.goto(f"{url}/namespaces")
    assert await _rows(page, "namespace-list") == len(namespaces)
    await _doc_shot(page, "namespaces")
    await page.close()


WHAT_IF = """apiVersion: v1
kind: Pod
metadata: {name: t}
spec:
  containers:
    - name: c
      resources:
        limits: {nvidia.com/gpu: 1, nvidia.com/gpumem: 1000}
"""


async def test_what_if_and_bad_input(mixed_webui: str, browser: Browser) -> None:
    url = mixed_webui
    api = httpx.Client(base_url=url, timeout=10)
    page = await browser.new_page(viewport={"width": 1360, "height": 900})
    await page.goto(f"{url}/what-if")
    await page.fill("#spec", WHAT_IF)
    await page.click("#what-if button")
    await page.locator("#whatif-result").wait_for()
    expected = api.post("/api/v1/what-if", content=WHAT_IF).json()
    fits = await page.locator("#whatif-result").get_attribute("data-fits")
    assert fits == ("yes" if expected["fits"] else "no")
    if expected["fits"]:
        assert await _count(page, "whatif_node") == expected["node"]
    await _doc_shot(page, "what-if")
    await page.fill("#spec", "kind: Pod\nspec: [")
    await page.click("#what-if button")
    assert "not valid YAML" in await page.locator("#whatif-error").inner_text()
    await page.goto(f"{url}/nodes/nope")
    assert "node 'nope' not found" in await page.locator("main").inner_text()
    await page.goto(f"{url}/?namespace=nope")
    assert "no GPU pod in it" in await page.locator("#filter-problem").inner_text()
    await page.close()


async def test_synthetic_1000_nodes(big_webui: str, browser: Browser) -> None:
    url = big_webui
    api = httpx.Client(base_url=url, timeout=30)
    summary = api.get("/api/v1/summary").json()
    assert (summary["nodes"], summary["devices"], summary["pods_placed"]) == (1000, 8000, 4000)
    page = await browser.new_page(viewport={"width": 1360, "height": 900})
    start = time.monotonic()
    await page.goto(f"{url}/")
    loaded = time.monotonic() - start
    for key in ("nodes", "devices", "pods_placed"):
        assert await _count(page, key) == str(summary[key])
    assert loaded < 5.0, f"overview of 1,000 nodes took {loaded:.2f} s in the browser"
    await page.goto(f"{url}/nodes?q=node-099")
    assert await _rows(page, "node-list") == 10
    scoped = api.get("/api/v1/summary", params={"namespace": "ns3"}).json()
    await page.goto(f"{url}/?namespace=ns3")
    assert await _count(page, "pods_placed") == str(scoped["pods_placed"]) == "400"
    await page.close()
