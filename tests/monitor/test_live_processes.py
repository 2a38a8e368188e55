"""The monitor over real processes: `vgpu_worker` (allocates, then launches kernels until killed)
runs under LD_PRELOAD=libvgpu.so with the fake libcuda, its shared region in a temporary hook
prefix laid out as ``<hook>/vgpu/containers/<podUID>_<container>/vgpu.cache``, and the
allocated GPU's UUID in NVIDIA_VISIBLE_DEVICES as the device plugin sets it. The exported
used/limit bytes and utilisation match what the processes do and name that GPU; a killed
process's usage drops at once (its slot's life lock is gone), before anybody reaps the slot."""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hami.k8s.api import PODS
from hami.k8s.fake import FakeKube
from hami.monitor.collector import MonitorCollector, registry_for
from hami.monitor.host import NullHost
from hami.monitor.main import create_app
from hami.monitor.monitor import Monitor, MonitorSettings

ROOT = Path(__file__).resolve().parents[2]
LIBVGPU = ROOT / "libvgpu"
REL = LIBVGPU / "build" / "rel"
WORKER_SOURCE = Path(__file__).with_name("vgpu_worker.c")
MIB = 1 << 20
LIMIT = 512 * MIB
SM_LIMIT = 40
UID = "pod-uid-1"
GPU = "GPU-9e41c0d2-6b7f-4a3e-b5d8-2c1f0e9a7b12"  # an inventory UUID (examples/inventory)
TIMEOUT = 10.0


@functools.cache
def worker_binary(out_dir: Path) -> Path:
    """libvgpu built (incremental) and the worker compiled against the fake driver."""
    subprocess.run(["make", "-C", str(LIBVGPU), "all"], check=True, capture_output=True)
    binary = out_dir / "vgpu_worker"
    fake = REL / "fake"
    flags = ["-O1", "-D_GNU_SOURCE", f"-I{LIBVGPU / 'tests'}", f"-L{fake}", f"-Wl,-rpath,{fake}"]
    command = ["cc", *flags, "-o", str(binary), str(WORKER_SOURCE), "-lcuda"]
    subprocess.run(command, check=True, capture_output=True)
    return binary


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return worker_binary(tmp_path_factory.mktemp("vgpu-worker"))


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


def container_env(directory: Path, sm_limit: int | None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LD_PRELOAD": str(REL / "libvgpu.so"),
        "CUDA_DEVICE_MEMORY_LIMIT": f"{LIMIT // MIB}m",
        "CUDA_DEVICE_MEMORY_SHARED_CACHE": str(directory / "vgpu.cache"),
        "LIBVGPU_CONTEXT_OVERHEAD": "0",
        "NVIDIA_VISIBLE_DEVICES": GPU,  # the fake driver then has this one GPU
    }
    if sm_limit is not None:
        env["CUDA_DEVICE_SM_LIMIT"] = str(sm_limit)
    return env


def start(
    started: list[subprocess.Popen[str]],
    worker: Path,
    directory: Path,
    mib: int,
    sm_limit: int | None = SM_LIMIT,
) -> subprocess.Popen[str]:
    """One worker in the container of ``directory``, returned once it has allocated."""
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [str(worker), str(mib), "2000"],
        env=container_env(directory, sm_limit),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(proc)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == "ready", (
        f"worker said {line!r}; stderr: {proc.stderr.read() if proc.stderr else ''}"
    )
    return proc


def pod() -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "train", "namespace": "team", "uid": UID},
        "spec": {"nodeName": "n1", "containers": [{"name": "main"}, {"name": "side"}]},
    }


Readings = dict[tuple[str, str], float]  # (metric, container) → value
seen_gpus: set[str] = set()  # every device_uuid label of the pod's series so far


async def scrape(monitor: Monitor) -> Readings:
    """A discovery pass, then GET /metrics from the monitor's app."""
    await monitor.refresh()
    app = create_app(registry_for(MonitorCollector(monitor, NullHost())))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as c:
        text = (await c.get("/metrics")).raise_for_status().text
    samples = [
        s
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if "container" in s.labels and s.labels.get("pod") == "train"
    ]
    seen_gpus.update(s.labels["device_uuid"] for s in samples)
    return {(s.name, s.labels["container"]): s.value for s in samples}


async def until(monitor: Monitor, check: Callable[[Readings], bool], what: str) -> Readings:
    deadline = time.monotonic() + TIMEOUT
    while True:
        readings = await scrape(monitor)
        if check(readings):
            return readings
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {TIMEOUT} s: {readings}")
        await asyncio.sleep(0.1)


def used(r: Readings, container: str) -> float | None:
    return r.get(("hami_vgpu_memory_used_bytes", container))


def util(r: Readings, container: str) -> float:
    return r.get(("hami_container_device_utilization_ratio", container), -1.0)


async def test_metrics_follow_real_processes(
    tmp_path: Path, worker: Path, processes: list[subprocess.Popen[str]]
) -> None:
    kube = FakeKube()
    await kube.create(PODS, pod())
    seen_gpus.clear()
    hook = tmp_path / "local"  # the device plugin's --hook-path prefix
    main, side = (hook / "vgpu" / "containers" / f"{UID}_{c}" for c in ("main", "side"))
    big = start(processes, worker, main, 100)
    start(processes, worker, main, 50)
    start(processes, worker, side, 30, sm_limit=None)
    monitor = Monitor(MonitorSettings(node="n1", hook_path=hook, feedback=False), kube)
    try:
        r = await until(
            monitor, lambda r: used(r, "main") == 150 * MIB and util(r, "main") > 0, "usage"
        )
        assert used(r, "side") == 30 * MIB
        assert r[("hami_vgpu_memory_limit_bytes", "main")] == LIMIT
        assert r[("hami_vgpu_memory_buffer_bytes", "main")] == 150 * MIB
        assert r[("hami_vgpu_memory_context_bytes", "main")] == 0
        assert 0 < util(r, "main") <= 2 * SM_LIMIT + 10  # two throttled processes
        assert util(r, "side") == 0  # no SM limit: the limiter is off and reports nothing
        assert 0 <= r[("hami_container_last_kernel_elapsed_seconds", "main")] <= 5
        assert seen_gpus == {GPU}  # the allocated GPU, not the fake driver's own UUID

        big.kill()
        big.wait(5)
        r = await until(monitor, lambda r: used(r, "main") == 50 * MIB, "the killed usage dropped")
        assert used(r, "side") == 30 * MIB
        for proc in processes:
            proc.kill()
            proc.wait(5)
        await until(
            monitor,
            lambda r: used(r, "main") == 0 and used(r, "side") == 0 and util(r, "main") == 0,
            "all usage dropped",
        )
    finally:
        monitor.close()
