"""A real Prometheus (Debian's ``prometheus``) scrapes the scheduler and a ``hami monitor`` of a
demo-like cluster with the scrape settings the chart documents, then every PromQL expression of
the Grafana dashboard (charts/hami/files/hami-dashboard.json) is evaluated through
``/api/v1/query``: each must answer without error and with series that are not all NaN, for
the ``$node`` variable set to the monitored node and to "All".

The cluster: the local control plane, ``hami scheduler`` (HTTPS), simulated A100 and T4 nodes,
an H100 node in MIG mode (a second simulated device plugin) with one realised MIG pod (its
annotations as a MIG-capable plugin leaves them: ``migUUID`` set), GPU pods placed by
kube-scheduler + our extender, one that fits nowhere. On the A100 node a ``hami monitor`` reads
region files written for the placed containers (usage, SM utilisation, last kernel) plus one
corrupt file, and reads host GPUs from a stand-in ``pynvml`` (tests/e2e/fakenvml). The corrupt
file shows up as ``hami_monitor_region_errors`` while every other container is still scraped.

Skipped, with the reason, where the ``prometheus`` binary is missing (``make prometheus-deps``
installs it as root; CI runs as root)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hami.api import annotations as codec
from hami.api import keys
from hami.api.types import ContainerDevice, MigAllocation, MigPlacement
from hami.cluster.ports import free_port
from hami.cluster.process import Component
from hami.demo.stack import (
    HAMI,
    Stack,
    gpu_pod,
)
from hami.k8s import objects
from hami.k8s.api import PODS, Manifest
from hami.k8s.client import LightkubeAPI
from tests.e2e.stack import stack_fixture
from tests.monitor import dashboard
from tests.monitor.regions import Slot, region_bytes, write_region

ROOT = Path(__file__).resolve().parents[2]
INVENTORIES = ROOT / "examples" / "inventory"
MONITORED = "prom-a100"
NODES = {MONITORED: INVENTORIES / "a100-nvlink.yaml", "prom-t4": INVENTORIES / "t4-pair.yaml"}
MIG_NODE = "prom-mig"
MIG_GPU = "GPU-7d3c2b1a-0f9e-4d8c-b7a6-112233445566"
NAMESPACE = "default"
MIB = 1 << 20
SCRAPE = 1.0  # seconds between scrapes
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
MISSING = (
    "the prometheus binary is not installed (Debian package `prometheus`; "
    "as root: make prometheus-deps)"
)
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.prometheus,
    pytest.mark.skipif(not os.access(PROMETHEUS, os.X_OK), reason=MISSING),
]

H100_MIG_INVENTORY = {
    "gpus": [
        {
            "uuid": MIG_GPU,
            "model": "NVIDIA H100 80GB HBM3",
            "memoryMiB": 81559,
            "migProfiles": [
                {
                    "name": "1g.10gb",
                    "memoryMB": 9856,
                    "core": 14,
                    "sliceCount": 1,
                    "placements": [{"start": i, "size": 1} for i in range(7)],
                },
                {
                    "name": "3g.40gb",
                    "memoryMB": 40192,
                    "core": 42,
                    "sliceCount": 3,
                    "placements": [{"start": 0, "size": 4}, {"start": 4, "size": 4}],
                },
            ],
        }
    ]
}


@dataclass
class Setup:
    stack: Stack
    prometheus: str  # http://127.0.0.1:PORT
    hook: Path
    monitor_port: int


def _prometheus_config(scheduler_port: int, monitor_port: int) -> dict[str, Any]:
    """What the chart's ServiceMonitors document, as a plain scrape config: the scheduler's
    monitor port and the node monitor, both plain HTTP (as HAMi serves them), path /metrics."""
    return {
        "global": {"scrape_interval": f"{SCRAPE:g}s", "scrape_timeout": f"{SCRAPE:g}s"},
        "scrape_configs": [
            {
                "job_name": "hami-scheduler",
                "scheme": "http",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"127.0.0.1:{scheduler_port}"]}],
            },
            {
                "job_name": "hami-monitor",
                "scheme": "http",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"127.0.0.1:{monitor_port}"]}],
            },
        ],
    }


def _start_prometheus(
    stack: Stack, work: Path, scheduler_port: int, monitor_port: int
) -> tuple[Component, str]:
    port = free_port()
    config = work / "prometheus.yml"
    config.write_text(json.dumps(_prometheus_config(scheduler_port, monitor_port), indent=1))
    argv = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={work / 'prometheus-data'}",
        "--storage.tsdb.retention.time=1h",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]
    logs = stack.cluster.run_dir / "logs" / "prometheus.log"
    component = Component("prometheus", argv, logs)
    component.start(die_with_parent=True)
    url = f"http://127.0.0.1:{port}"
    component.wait_ready(lambda: _ok(f"{url}/-/ready"), 60.0)
    return component, url


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _start_monitor(stack: Stack, hook: Path, port: int, work: Path) -> Component:
    nvml = work / "nvml.json"
    gpus = [
        {"uuid": g, "name": "NVIDIA A100-SXM4-40GB", "memory_used": (i + 1) << 30, "gpu": 10 * i}
        | {"memory": 5}
        for i, g in enumerate(_inventory_uuids(NODES[MONITORED]))
    ]
    nvml.write_text(json.dumps(gpus))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).with_name("fakenvml")), env.get("PYTHONPATH", "")]
    )
    env["HAMI_FAKE_NVML"] = str(nvml)
    argv = [HAMI, "monitor", "--node-name", MONITORED, "--hook-path", str(hook)]
    argv += ["--metrics-bind-address", f"127.0.0.1:{port}", "--interval", "1s"]
    argv += ["--kubeconfig", str(stack.cluster.kubeconfig), "--no-feedback"]
    log = stack.cluster.run_dir / "logs" / "hami-monitor.log"
    component = Component("hami-monitor", argv, log, env=env)
    component.start(die_with_parent=True)
    component.wait_ready(lambda: _ok(f"http://127.0.0.1:{port}/healthz"), 60.0)
    return component


def _inventory_uuids(path: Path) -> list[str]:
    import yaml

    return [g["uuid"] for g in yaml.safe_load(path.read_text())["gpus"]]


def _mig_plugin(stack: Stack, work: Path) -> Component:
    inventory = work / "h100-mig.yaml"
    inventory.write_text(json.dumps(H100_MIG_INVENTORY))
    argv = [HAMI, "device-plugin", "--simulate", "--kubeconfig", str(stack.cluster.kubeconfig)]
    argv += ["--nodes", f"{MIG_NODE}={inventory}", "--operating-mode", "mig"]
    log = stack.cluster.run_dir / "logs" / "device-plugin-mig.log"
    component = Component("hami-device-plugin-mig", argv, log)
    component.start(die_with_parent=True)
    stack.components.append(component)
    return component


def _up(stack: Stack) -> None:
    stack.create_nodes((*NODES, MIG_NODE))
    scheduler_port = free_port()  # the chart's monitor port: plain-HTTP /metrics
    stack.scheduler(args=["--metrics-bind-address", f"127.0.0.1:{scheduler_port}"])
    stack.plugin(NODES)
    _mig_plugin(stack, stack.cluster.run_dir)
    stack.wait_serving([*NODES, MIG_NODE])


stack = stack_fixture("hami-prometheus", _up)


def _scheduler_port(stack: Stack) -> int:
    argv = list(next(c for c in stack.components if c.name == "hami-scheduler").argv)
    return int(argv[argv.index("--metrics-bind-address") + 1].rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def setup(stack: Stack) -> Setup:
    """The node monitor and Prometheus beside the stack (stopped with it)."""
    work = stack.cluster.run_dir / "work"
    hook = work / "hook"
    (hook / "vgpu" / "containers").mkdir(parents=True)
    monitor_port = free_port()
    stack.components.append(_start_monitor(stack, hook, monitor_port, work))
    prometheus, url = _start_prometheus(stack, work, _scheduler_port(stack), monitor_port)
    stack.components.append(prometheus)
    return Setup(stack, url, hook, monitor_port)


# --- Prometheus's HTTP API -------------------------------------------------------------------


def query(url: str, expr: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body: dict[str, Any] = response.json()
    return body


def label_values(url: str, label: str, match: str | None = None) -> list[str]:
    params = {"match[]": match} if match else {}
    response = httpx.get(f"{url}/api/v1/label/{label}/values", params=params, timeout=10)
    response.raise_for_status()
    values: list[str] = response.json()["data"]
    return values


def targets_up(url: str) -> dict[str, str]:
    """job → health of its (one) active target, with the last scrape error if any."""
    body = httpx.get(f"{url}/api/v1/targets", timeout=10).json()
    return {
        t["labels"]["job"]: t["health"] + (f" ({t['lastError']})" if t.get("lastError") else "")
        for t in body["data"]["activeTargets"]
    }


async def until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await asyncio.to_thread(check)
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.5)


# --- the cluster's pods ----------------------------------------------------------------------


def on(node: str, pod: dict[str, Any]) -> dict[str, Any]:
    pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
    return pod


def wave_one() -> dict[str, dict[str, Any]]:
    two = on(MONITORED, gpu_pod("p-two", {"gpu": 1, "gpumem": 3000, "gpucores": 20}))
    two["spec"]["containers"].append(
        {
            "name": "second",
            "image": "example.invalid/cuda",
            "resources": {"limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "5000"}},
        }
    )
    return {
        "p-train": on(MONITORED, gpu_pod("p-train", {"gpu": 2, "gpumem": 8000, "gpucores": 30})),
        "p-two": two,
        "p-broken": on(MONITORED, gpu_pod("p-broken", {"gpu": 1, "gpumem": 1000})),
        "p-t4": on("prom-t4", gpu_pod("p-t4", {"gpu": 1, "gpumem": 2000, "gpucores": 50})),
    }


def too_big() -> dict[str, Any]:
    return gpu_pod("p-too-big", {"gpu": 1, "gpumem": 900000})


def wave_two() -> dict[str, dict[str, Any]]:
    return {"p-late": on(MONITORED, gpu_pod("p-late", {"gpu": 1, "gpumem": 1000}))}


def realised_mig_pod() -> dict[str, Any]:
    """A pod on the MIG node as a MIG-capable device plugin leaves it once its instance exists:
    bound, its allocation and its MIG allocation with ``migUUID`` (the simulated plugin does
    not create MIG instances)."""
    pod = gpu_pod("p-mig", {"gpu": 1, "gpumem": 9856})
    pod["metadata"]["annotations"] = {
        "nvidia.com/vgpu-mode": "mig",
        keys.VGPU_NODE: MIG_NODE,
        keys.NVIDIA_ALLOCATED: codec.encode_pod_devices(
            [[ContainerDevice(MIG_GPU, "NVIDIA", 9856, 14)]]
        ),
        keys.MIG_ALLOCATIONS: codec.encode_mig_allocations(
            [MigAllocation(0, 0, MIG_GPU, "1g.10gb", MigPlacement(2, 1), "MIG-e2e-0001", 9, 0)]
        ),
        keys.BIND_PHASE: "success",
    }
    pod["spec"]["nodeName"] = MIG_NODE
    pod["spec"]["schedulerName"] = "hami-scheduler"
    pod["metadata"]["labels"] = {keys.WEBHOOK_LABEL: "ignore"}
    return pod


async def placed(api: LightkubeAPI, name: str) -> Manifest | None:
    pod = await api.get(PODS, name, NAMESPACE)
    if objects.spec(pod).get("nodeName") and keys.NVIDIA_ALLOCATED in objects.annotations(pod):
        return pod
    return None


async def create_placed(api: LightkubeAPI, bodies: dict[str, dict[str, Any]]) -> list[Manifest]:
    for body in bodies.values():
        await api.create(PODS, body, NAMESPACE)
    out = []
    for name in bodies:

        async def check(n: str = name) -> Manifest | None:
            return await placed(api, n)

        deadline = time.monotonic() + 60
        while (pod := await check()) is None:
            assert time.monotonic() < deadline, f"pod {name} was not placed within 60 s"
            await asyncio.sleep(0.3)
        out.append(pod)
    return out


def write_regions(hook: Path, pod: Manifest, *, corrupt: bool = False) -> None:
    """One region file per GPU container of ``pod``, as libvgpu would leave it: the allocated
    devices and limits, one live process using 60 % of each limit at 40 % SM, a kernel 3 s
    ago. ``corrupt``: a file without the region magic instead."""
    allocated = codec.decode_pod_devices(objects.annotations(pod)[keys.NVIDIA_ALLOCATED])
    containers = objects.spec(pod)["containers"]
    assert isinstance(containers, list)
    names = [c["name"] for c in containers]
    uid = objects.uid(pod)
    for container, devices in zip(names, allocated, strict=True):
        directory = hook / "vgpu" / "containers" / f"{uid}_{container}"
        if corrupt:
            write_region(directory, b"\0" * 8192, name="vgpu.cache")
            continue
        limits = [d.usedmem * MIB for d in devices]
        used = {
            i: (64 * MIB, 0, lim * 6 // 10 - 64 * MIB, 0, lim * 6 // 10, 40)
            for i, lim in enumerate(limits)
        }
        data = region_bytes(
            [d.uuid for d in devices], limits, [Slot(1, used)], last_kernel=int(time.time()) - 3
        )
        write_region(directory, data, name="vgpu.cache")


# --- the test --------------------------------------------------------------------------------


@pytest.mark.timeout(420)
async def test_every_dashboard_query_has_data(setup: Setup) -> None:
    url = setup.prometheus
    await until(
        lambda: all(h == "up" for h in targets_up(url).values()) and len(targets_up(url)) == 2,
        30,
        "both targets up",
    )
    api = setup.stack.api(timeout=30)
    try:
        pods = await create_placed(api, wave_one())
        await api.create(PODS, too_big(), NAMESPACE)
        await api.create(PODS, realised_mig_pod(), NAMESPACE)
        for pod in pods:
            if objects.spec(pod)["nodeName"] == MONITORED:
                write_regions(setup.hook, pod, corrupt=objects.name(pod) == "p-broken")
        # the scheduler's counters must move between two scrapes for rate() to see them
        await until(
            lambda: query(url, "hami_scheduler_decisions_total")["data"]["result"],
            30,
            "the first decisions scraped",
        )
        await create_placed(api, wave_two())
    finally:
        await api.close()
    await check_region_errors(url)
    board = dashboard.load()
    variable = dashboard.variables(board)["node"]
    selector, label = dashboard.variable_query(variable)
    nodes = await until(lambda: label_values(url, label, selector), 30, "the $node values")
    assert MONITORED in nodes, nodes
    choices = [{"node": MONITORED}, {"node": variable.get("allValue", ".*")}]

    def problems() -> list[str]:
        exported = label_values(url, "__name__")
        return dashboard.check_all(board, choices, lambda e: query(url, e), exported)

    deadline = time.monotonic() + 60
    while (found := await asyncio.to_thread(problems)) and time.monotonic() < deadline:
        await asyncio.sleep(SCRAPE)
    assert not found, "dashboard queries without data:\n" + "\n".join(found)


async def check_region_errors(url: str) -> None:
    """The corrupt region is named by its reason, and every other container is still scraped."""

    def both() -> tuple[list[Any], list[Any]] | None:
        errors = query(url, "hami_monitor_region_errors")["data"]["result"]
        used = query(url, 'hami_vgpu_memory_used_bytes{job="hami-monitor"}')["data"]["result"]
        return (errors, used) if errors and len(used) == 4 else None

    errors, used = await until(both, 30, "the monitor's region error and its other containers")
    assert [e["metric"]["reason"] for e in errors] == ["bad_magic"]
    assert errors[0]["metric"]["container"] == "cuda"
    pods = {u["metric"]["pod"] for u in used}
    assert pods == {"p-train", "p-two"}  # 2 + 1 + 1 devices, p-broken left out


# --- the web UI's history from this Prometheus (issue 23) -------------------------------------


@pytest.mark.timeout(180)
async def test_webui_history_from_prometheus(setup: Setup) -> None:
    """The web UI's charts read the scheduler's allocation metrics and the monitor's
    utilisation from this Prometheus (``/api/v1/query_range``); the last point agrees with the
    UI's own reading of the cluster and with the fake NVML; a Prometheus that is gone falls back
    to the UI's own history, said on the page. Runs after the dashboard test placed its pods."""
    from hami.config import load_config
    from hami.vendors import registry
    from hami.webui.app import WebUI, create_app
    from hami.webui.history import History
    from hami.webui.livesource import KubeSource
    from hami.webui.prometheus import PrometheusHistory

    settings = load_config(None)
    vendors = registry.build(settings)
    api = setup.stack.api(timeout=30)
    gone = f"http://127.0.0.1:{free_port()}"
    try:
        uis = {
            url: WebUI(
                KubeSource(api, vendors, settings, ttl=0),
                History(interval=0),
                prometheus=PrometheusHistory(url, retry_s=0),
            )
            for url in (setup.prometheus, gone)
        }
        live = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(uis[setup.prometheus])),
            base_url="http://ui",
        )
        down = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(uis[gone])), base_url="http://ui"
        )
        async with live, down:
            keys_ = ("memory_allocated_mib", "cores_allocated")  # exact; percentages rounded
            seen: list[dict[str, Any]] = []

            async def agreeing() -> tuple[dict[str, Any], dict[str, Any]] | None:
                summary = (await live.get("/api/v1/summary")).json()
                history = (await live.get("/api/v1/history", params={"range": "15m"})).json()
                assert history["source"] == "prometheus", history["problem"]
                last = history["samples"][-1] if history["samples"] else {}
                seen[:] = [{k: summary[k] for k in keys_}, last]
                if summary["memory_allocated_mib"] and all(
                    last.get(k) == summary[k] for k in keys_
                ):
                    return summary, last
                return None

            deadline = time.monotonic() + 60
            while (found := await agreeing()) is None:
                assert time.monotonic() < deadline, f"UI view vs Prometheus history: {seen}"
                await asyncio.sleep(SCRAPE)
            summary, last = found
            assert last["memory_allocated_mib"] == summary["memory_allocated_mib"] > 0
            for pct in ("memory_allocated_pct", "cores_allocated_pct"):
                assert abs(last[pct] - summary[pct]) <= 0.05, (pct, last, summary)
            node = (
                await live.get(f"/api/v1/nodes/{MONITORED}/history", params={"minutes": 5})
            ).json()
            assert node["source"] == "prometheus"
            nvml = {g: 10 * i for i, g in enumerate(_inventory_uuids(NODES[MONITORED]))}
            assert set(node["devices"]) == set(nvml)
            for uuid, util in nvml.items():
                assert node["devices"][uuid], f"no samples for {uuid}"
                assert node["devices"][uuid][-1]["utilisation_pct"] == util
            page = await live.get(f"/nodes/{MONITORED}")
            assert f"history: Prometheus {setup.prometheus}" in page.text
            fallback = (await down.get("/api/v1/history")).json()
            assert fallback["source"] == "own" and gone in fallback["problem"]
            stale = await down.get("/")
            assert stale.status_code == 200 and 'data-stale="true"' in stale.text
    finally:
        await api.close()
