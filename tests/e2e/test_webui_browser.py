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

pytestmark = pytest.mark.e2e

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
