"""The web UI in a real browser (Debian's headless Chromium driven by Playwright).

Over the local control plane: overview counts, a new pod's slice in the node view within 2 s
(and the same allocation in the scheduler's metrics), a Pending pod's explanation, an API
outage (the UI's connection to the API server cut, then restored). Over sim
files, every screen of the mixed demo cluster and of a 1,000-node × 8 GPU synthetic cluster,
the numbers on each page checked against the JSON API and against the scheduler's metrics (its
own `ClusterCache` and `Metrics.render`, what its /metrics serves, fed the same objects; the real
scheduler process through Prometheus is tests/e2e/test_prometheus.py). Screenshots go to
artifacts/webui/ (git-ignored), or with HAMI_WEBUI_SCREENSHOTS=docs to docs/img/ for the README."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import urlparse

import httpx
import pytest
import pytest_asyncio
from lightkube import AsyncClient
from lightkube.resources.core_v1 import Node, Pod
from playwright.async_api import Browser, Page, async_playwright

from hami.cluster.control_plane import LocalCluster
from hami.config import load_config
from hami.k8s.api import NODES, PODS, Manifest
from hami.k8s.client import LightkubeAPI, load_kubeconfig
from hami.metrics.specs import (
    CORE_ALLOCATED,
    CORE_LIMIT,
    MEMORY_ALLOCATED,
    MEMORY_LIMIT,
    SHARED_COUNT,
    Spec,
)
from hami.scheduler.cache import ClusterCache
from hami.scheduler.metrics import Metrics
from hami.vendors import registry
from hami.webui.simsource import read_manifests
from tests.e2e.localcluster import create_gpu_node

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


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"hami webui exited with {proc.returncode}"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"hami webui did not answer /healthz within {within:.0f} s")


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
    return cast(
        Pod,
        Pod.from_dict(
            {
                "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
                "spec": {**spec, "containers": [container]},
            }
        ),
    )


async def _count(page: Page, key: str) -> str:
    return (await page.locator(f'[data-k="{key}"]').inner_text()).strip()


MIB = 1 << 20
METRICS = (MEMORY_ALLOCATED, MEMORY_LIMIT, CORE_ALLOCATED, CORE_LIMIT, SHARED_COUNT)


def scheduler_metrics(
    nodes: Sequence[Manifest], pods: Sequence[Manifest], config: Path | None = None
) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """The scheduler's per-device metrics for these objects, as its /metrics renders them from
    its cache: (metric name → device UUID → value, device UUID → node)."""
    cache = ClusterCache(registry.build(load_config(config)))
    cache.replace_nodes(nodes)
    cache.replace_pods(pods)
    wanted = {m.name for m in METRICS}
    values: dict[str, dict[str, float]] = {name: {} for name in wanted}
    where: dict[str, str] = {}
    for line in Metrics(cache).render().decode().splitlines():
        name, _, rest = line.partition("{")
        if name in wanted:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', rest))
            values[name][labels["device_uuid"]] = float(rest.rsplit(" ", 1)[1])
            where[labels["device_uuid"]] = labels["node"]
    return values, where


def _used_total(text: str) -> tuple[int, int]:
    """``used/total`` of a bar's number, e.g. ``6000/16384 MiB``."""
    found = re.search(r"(\d+)/(\d+)", text)
    assert found, text
    return int(found[1]), int(found[2])


async def _shot(page: Page, name: str) -> None:
    _artifacts()
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_overview_node_and_pending_pod_views(
    webui: str,
    browser: Browser,
    kube: AsyncClient,
    namespace: str,
    gpu_node: tuple[str, str],
    k8s_cluster: LocalCluster,
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
    api = LightkubeAPI(load_kubeconfig(k8s_cluster.kubeconfig))
    try:
        listed = [(await api.list(kind)).items for kind in (NODES, PODS)]
    finally:
        await api.close()
    metrics, where = scheduler_metrics(listed[0], listed[1])
    uuid = f"GPU-{model}-0"
    card = page.locator(f'section.device[data-uuid="{uuid}"] .row .num').first
    used, total = _used_total(await card.inner_text())
    doc = httpx.get(f"{webui}/api/v1/nodes/{node}", timeout=10).json()
    device = next(d for d in doc["devices"] if d["uuid"] == uuid)
    assert used == device["memory_allocated_mib"] == 6000
    assert used * MIB == metrics[MEMORY_ALLOCATED.name][uuid] and where[uuid] == node
    assert total * MIB == metrics[MEMORY_LIMIT.name][uuid]

    await kube.create(_pod("too-big", namespace, 100000, None))
    await asyncio.sleep(0.6)  # past the source's list TTL
    await page.goto(f"{webui}/pods/{namespace}/too-big")
    explain = page.locator("#explain")
    await explain.wait_for()
    text = await explain.inner_text()
    assert "Why it is pending" in text and "CardInsufficientMemory" in text
    assert "100000 MiB" in text  # what it asks for, in the hint
    await _shot(page, "pod")

    await page.goto(f"{webui}/?model=NVIDIA {model}&namespace={namespace}")
    assert await _count(page, "pods_placed") == "1"
    assert await _count(page, "pods_pending") == "1"
    await page.close()


# --- an API outage, as the UI process sees it: its connection to the API server cut -----------


class Cutter:
    """A TCP forwarder between `hami webui` and the API server that the test can cut and
    restore: a real outage for the UI process (connections refused and reset)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = _free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self._lock:
                self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for end in (a, b):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:  # shutdown wakes the accept blocked in its thread
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for end in self._open:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                    end.close()
            self._open.clear()


async def test_api_outage_in_the_browser(
    k8s_cluster: LocalCluster, browser: Browser, gpu_node: tuple[str, str], tmp_path: Path
) -> None:
    """The page keeps its last good numbers, the badge turns "stale since …" and the notice says
    the API server is unreachable while the UI's connection is cut; "live" again once back."""
    import yaml

    config = yaml.safe_load(k8s_cluster.kubeconfig.read_text())
    server = urlparse(config["clusters"][0]["cluster"]["server"])
    cutter = Cutter((server.hostname or "127.0.0.1", server.port or 443))
    cutter.start()
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{cutter.port}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    port = _free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "hami"), "webui", "--kubeconfig", str(kubeconfig),
         "--port", str(port), "--history-interval", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    node, _ = gpu_node
    try:
        _wait_healthy(url, proc)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(f"{url}/nodes/{node}")
        await page.locator('#refresh-state[data-state="live"]').wait_for()
        cards = await page.locator("section.device").count()
        assert cards == 2
        cutter.cut()
        await page.locator('#refresh-state[data-state="stale"]').wait_for(timeout=10000)
        assert (await page.locator("#refresh-state").inner_text()).startswith("stale since")
        await page.get_by_text("API server unreachable").first.wait_for(timeout=5000)
        assert await page.locator("section.device").count() == cards  # the last good data
        await _doc_shot(page, "outage")
        cutter.start()
        await page.locator('#refresh-state[data-state="live"]').wait_for(timeout=15000)
        await page.close()
    finally:
        cutter.cut()
        proc.terminate()
        proc.wait(timeout=10)


# --- every screen, over sim files: the mixed demo cluster and a 1,000-node synthetic one -------

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def _serve_sim(
    cluster: Path, pods: Path | None, config: Path, within: float = 30.0
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    args = [str(Path(sys.executable).parent / "hami"), "webui", "--cluster", str(cluster),
            "--config", str(config), "--port", str(port), "--history-interval", "1"]  # fmt: skip
    if pods is not None:
        args += ["--pods", str(pods)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    _wait_healthy(url, proc, within)
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


@dataclass
class Big:
    url: str
    nodes: Sequence[Manifest]
    pods: Sequence[Manifest]


@pytest.fixture(scope="module")
def big_webui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Big]:
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
    # reading and placing 5,000 objects: ~10 s on a quiet 2-core machine, more under load
    proc, url = _serve_sim(cluster, None, EXAMPLES / "config.yaml", within=120.0)
    try:
        yield Big(url, nodes, pods)
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
    vendors = EXAMPLES / "vendors"
    objs = read_manifests(vendors / "cluster.yaml")
    kinds = [[o for o in objs if o.get("kind") == k] for k in ("Node", "Pod")]
    _, where = scheduler_metrics(kinds[0], kinds[1], vendors / "config.yaml")
    per_node: dict[str, set[str]] = {}
    for uuid, name in where.items():
        per_node.setdefault(name, set()).add(uuid)
    registered = {n["name"]: {d["uuid"] for d in n["devices"]} for n in nodes if n["devices"]}
    assert per_node == registered  # every device the scheduler exports, on its node, and no other
    for name, uuids in registered.items():
        cell = page.locator(
            f'#node-list tbody tr:has(a[href^="/nodes/{name}"]) td[data-col="devices"]'
        )
        assert int(await cell.inner_text()) == len(uuids), name
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
    await _doc_shot(page, "accelerator")
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
    await _doc_shot(page, "pod")

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
    assert await page.locator("#spec").input_value() == "kind: Pod\nspec: ["  # kept to mend
    await page.goto(f"{url}/pods/demo/nope")
    assert "pod demo/nope not found" in await page.locator("main").inner_text()
    await page.goto(f"{url}/nodes/nope")
    assert "node 'nope' not found" in await page.locator("main").inner_text()
    await page.goto(f"{url}/?namespace=nope")
    assert "no GPU pod in it" in await page.locator("#filter-problem").inner_text()
    await page.close()


@pytest.fixture(scope="module")
def big_metrics(big_webui: Big) -> dict[str, dict[str, float]]:
    metrics, _ = scheduler_metrics(big_webui.nodes, big_webui.pods, EXAMPLES / "config.yaml")
    return metrics


async def test_synthetic_1000_overview(
    big_webui: Big, big_metrics: dict[str, dict[str, float]], browser: Browser
) -> None:
    """The overview of 1,000 nodes × 8 GPUs and 4,000 pods: its numbers against the API and
    the scheduler's metrics for the same objects."""
    url, metrics = big_webui.url, big_metrics
    api = httpx.Client(base_url=url, timeout=30)
    summary = api.get("/api/v1/summary").json()
    assert (summary["nodes"], summary["devices"], summary["pods_placed"]) == (1000, 8000, 4000)

    def total(spec: Spec) -> int:
        values: float = sum(metrics[spec.name].values())
        return round(values)

    assert summary["memory_allocated_mib"] * MIB == total(MEMORY_ALLOCATED)
    assert summary["memory_mib"] * MIB == total(MEMORY_LIMIT)
    assert summary["cores_allocated"] == total(CORE_ALLOCATED)
    assert summary["cores"] == total(CORE_LIMIT)
    assert summary["pods_placed"] == total(SHARED_COUNT)  # one container each
    page = await browser.new_page(viewport={"width": 1360, "height": 900})
    start = time.monotonic()
    await page.goto(f"{url}/")
    loaded = time.monotonic() - start
    for key in ("nodes", "devices", "pods_placed"):
        assert await _count(page, key) == str(summary[key])
    text = await page.locator("main").inner_text()  # "memory <bar> used/total MiB", cores
    memory = re.search(r"memory\s+(\d+)/(\d+)", text)
    cores = re.search(r"cores\s+(\d+)/(\d+)", text)
    assert memory and cores, text[:500]
    assert (int(memory[1]), int(memory[2])) == (
        summary["memory_allocated_mib"],
        summary["memory_mib"],
    )
    assert (int(cores[1]), int(cores[2])) == (summary["cores_allocated"], summary["cores"])
    assert loaded < 5.0, f"overview of 1,000 nodes took {loaded:.2f} s in the browser"
    await _doc_shot(page, "overview-1000")
    scoped = api.get("/api/v1/summary", params={"namespace": "ns3"}).json()
    await page.goto(f"{url}/?namespace=ns3")
    assert await _count(page, "pods_placed") == str(scoped["pods_placed"]) == "400"
    await page.close()


async def test_synthetic_1000_screens(
    big_webui: Big, big_metrics: dict[str, dict[str, float]], browser: Browser
) -> None:
    """Every other screen over the same cluster, against the API and the scheduler's metrics."""
    url, metrics = big_webui.url, big_metrics
    api = httpx.Client(base_url=url, timeout=30)
    page = await browser.new_page(viewport={"width": 1360, "height": 900})
    await page.goto(f"{url}/nodes?q=node-099")
    assert await _rows(page, "node-list") == 10
    node = api.get("/api/v1/nodes/node-0001").json()
    await page.goto(f"{url}/nodes/node-0001")
    cards = page.locator("section.device")
    assert await cards.count() == len(node["devices"]) == 8
    for device in node["devices"][:2]:  # one with a pod, one without
        uuid = device["uuid"]
        num = page.locator(f'section.device[data-uuid="{uuid}"] .row .num').first
        used, _ = _used_total(await num.inner_text())
        assert used == device["memory_allocated_mib"]
        assert used * MIB == metrics[MEMORY_ALLOCATED.name][uuid]

    devices = api.get("/api/v1/devices", params={"node": "node-0001"}).json()["devices"]
    await page.goto(f"{url}/accelerators?node=node-0001")
    assert await _rows(page, "device-list") == len(devices) == 8
    await page.goto(f"{url}/accelerators/GPU-1-0")
    one = api.get("/api/v1/devices/GPU-1-0").json()
    assert await _count(page, "slots_used") == str(one["slots_used"])
    assert one["slots_used"] == metrics[SHARED_COUNT.name]["GPU-1-0"] == 1

    placed = api.get("/api/v1/pods", params={"namespace": "ns3", "phase": "placed"}).json()
    await page.goto(f"{url}/workloads?namespace=ns3&sort=memory&dir=desc")
    assert await _rows(page, "workload-list") == len(placed["pods"]) == 400
    await page.goto(f"{url}/pods/ns1/p-1-0")
    assert await _count(page, "phase") == "Running"
    assert await page.locator("#limits tbody tr, #limits tr").count() >= 1
    causes = api.get("/api/v1/pending").json()["causes"]
    await page.goto(f"{url}/pending")
    assert causes == [] and await page.locator("section.cause").count() == 0
    namespaces = api.get("/api/v1/namespaces").json()["namespaces"]
    await page.goto(f"{url}/namespaces")
    assert await _rows(page, "namespace-list") == len(namespaces) == 10

    await page.goto(f"{url}/what-if")
    await page.fill("#spec", WHAT_IF)
    await page.click("#what-if button")
    await page.locator("#whatif-result").wait_for()
    expected = api.post("/api/v1/what-if", content=WHAT_IF).json()
    assert expected["fits"] and await _count(page, "whatif_node") == expected["node"]
    await page.close()
