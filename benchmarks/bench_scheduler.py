"""Scheduler-service benchmarks (issue 6), each with its baseline measured in the same run.

* ``filter``: ``/filter`` p50/p99 over loopback HTTP (uvicorn, as deployed) with 1,000 and
  5,000 candidate nodes × 8 GPUs, against an in-memory API server. Baseline: the same request
  for a pod without GPUs (the extender passes it through: HTTP + JSON cost only).
* ``writes``: Kubernetes API writes per pod for filter + bind (events on and off). Baseline:
  kube-scheduler alone writes one Binding per pod.
* ``burst``: 40 GPU pods onto one 8-GPU kwok node through the real kube-scheduler, webhook,
  extender and ``hami device-plugin --simulate``: seconds until all are bound (target ≤ 10 s).
  Baseline: 40 pods without GPUs through the default scheduler onto the same node.
* ``throughput``: pods/s end to end through the real kube-scheduler on N kwok nodes × 8 GPUs:
  GPU pods through our extender vs. the same pods asking for a plain extended resource
  (``example.com/gpu``, default scheduler, no extender). Target ratio ≥ 0.25.

    python benchmarks/bench_scheduler.py --out bench-results/bench_scheduler.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

import costs  # benchmarks/costs.py (run as a script: its folder is on sys.path)
from hami.api import annotations as codec
from hami.api import keys
from hami.api.extender import filter_args_json
from hami.api.types import DeviceInfo
from hami.cluster.ports import free_port
from hami.demo.stack import Stack, create_node, gpu_pod, register_webhook, wait_registered
from hami.k8s import objects
from hami.k8s.api import NAMESPACES, NODES, PODS, KubeAPI
from hami.k8s.fake import FakeKube, node_manifest
from hami.scheduler.app import create_app
from hami.scheduler.service import SchedulerService
from hami.scheduler.settings import SchedulerSettings
from hami.vendors import registry

GPUS = 8
INVENTORY_8 = "gpus:\n" + "  - {model: NVIDIA A10, memoryMiB: 23028, numa: 0}\n" * GPUS


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(samples: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {
        "p50_ms": round(percentile(ms, 0.50), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def fake_node(index: int) -> dict[str, object]:
    name = f"node-{index:05d}"
    devices = [
        DeviceInfo(
            id=f"GPU-{index:05d}-{g}",
            index=g,
            count=10,
            devmem=81920,
            devcore=100,
            type="NVIDIA-H100",
            mode="hami-core",
            health=True,
        )
        for g in range(GPUS)
    ]
    annotations = {keys.NVIDIA_REGISTER: codec.encode_node_devices(devices)}
    return node_manifest(name, annotations, {"nvidia.com/gpu": str(GPUS * 10)})


def bench_pod(name: str, gpu: bool) -> dict[str, Any]:
    limits = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4000"} if gpu else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "bench"},
        "spec": {
            "schedulerName": "hami-scheduler",
            "containers": [{"name": "c", "image": "x", "resources": {"limits": limits}}],
        },
    }


class InMemory:
    """A scheduler service on FakeKube, served by uvicorn on a loopback port."""

    def __init__(self, nodes: int, events: bool = True) -> None:
        self.kube = FakeKube()
        settings = SchedulerSettings(events=events, sync_wait=5.0, bind_lock_wait=1.0)
        self.service = SchedulerService(settings, self.kube, registry.build(settings.config))
        self.port = free_port()
        self.node_count = nodes
        self.names = [f"node-{i:05d}" for i in range(nodes)]

    async def __aenter__(self) -> InMemory:
        for i in range(self.node_count):
            await self.kube.create(NODES, fake_node(i))
        self.loops = asyncio.create_task(self.service.run())
        await self.service.cache.wait_synced(10)
        config = uvicorn.Config(
            create_app(self.service), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.serving = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        self.server.should_exit = True
        await self.serving
        self.loops.cancel()
        await asyncio.gather(self.loops, return_exceptions=True)

    async def filter(self, name: str, gpu: bool) -> tuple[float, dict[str, Any]]:
        pod = await self.kube.create(PODS, bench_pod(name, gpu), "bench")
        body = filter_args_json(pod, self.names)
        started = time.perf_counter()
        response = await self.http.post("/filter", json=body)
        elapsed = time.perf_counter() - started
        return elapsed, dict(response.json())


async def bench_filter(nodes: int, requests: int) -> dict[str, Any]:
    async with InMemory(nodes) as svc:
        base, ours = [], []
        for i in range(requests):
            base.append((await svc.filter(f"plain-{i}", gpu=False))[0])
            elapsed, result = await svc.filter(f"gpu-{i}", gpu=True)
            assert result["NodeNames"], result
            ours.append(elapsed)
    return {
        "nodes": nodes,
        "gpus_per_node": GPUS,
        "requests": requests,
        "filter": summary(ours),
        "baseline_passthrough": summary(base),
    }


async def bench_writes(pods: int) -> dict[str, Any]:
    out: dict[str, Any] = {"pods": pods, "baseline_kube_scheduler_writes_per_pod": 1}
    for events in (False, True):
        async with InMemory(20, events=events) as svc:
            ours = 0
            for i in range(pods):
                before = svc.kube.writes() + 1  # the pod's own creation is not ours
                _, result = await svc.filter(f"w-{i}", gpu=True)
                node = result["NodeNames"][0]
                pod = svc.kube.stored(PODS, f"w-{i}", "bench")
                bind = {"PodName": f"w-{i}", "PodNamespace": "bench", "PodUID": objects.uid(pod)}
                reply = (await svc.http.post("/bind", json={**bind, "Node": node})).json()
                assert not reply["Error"], reply
                await svc.service.recorder.flush()
                ours += svc.kube.writes() - before
                unlock = {"metadata": {"annotations": {keys.NODE_LOCK: None}}}
                await svc.kube.merge_patch(NODES, node, unlock)  # the device plugin's write
            await svc.service.recorder.flush()
            key = "with_events" if events else "without_events"
            out[f"writes_per_pod_{key}"] = round(ours / pods, 2)
    return out


async def _timed_batch(
    api: KubeAPI, namespace: str, make: Callable[[int], dict[str, Any]], count: int, limit: float
) -> float:
    """Seconds from the first create until ``count`` pods are bound, seen by one pod watch.

    A watch rather than polling lists: a list of 2,000 annotated pods every 100 ms cost the
    API server and this client more CPU than the scheduler under test (2-core machine)."""
    await api.create(NAMESPACES, {"metadata": {"name": namespace}})
    version = (await api.list(PODS, namespace=namespace)).resource_version
    bound: set[str] = set()

    async def follow() -> None:
        nonlocal version
        while True:
            async for event in api.watch(PODS, resource_version=version, namespace=namespace):
                version = objects.resource_version(event.object) or version
                if event.type != "BOOKMARK" and objects.spec(event.object).get("nodeName"):
                    bound.add(objects.name(event.object))
                    if len(bound) >= count:
                        return

    watcher = asyncio.create_task(follow())
    started = time.monotonic()
    await asyncio.gather(*(api.create(PODS, make(i), namespace) for i in range(count)))
    try:
        await asyncio.wait_for(watcher, limit - (time.monotonic() - started))
    except TimeoutError:
        raise TimeoutError(
            f"{namespace}: {len(bound)} of {count} pods bound in {limit:.0f} s"
        ) from None
    return time.monotonic() - started


def _plain_pod(resource: str | None) -> Callable[[int], dict[str, Any]]:
    def make(i: int) -> dict[str, Any]:
        limits = {resource: "1"} if resource else {}
        pod = gpu_pod(f"p-{i:05d}", {})
        pod["metadata"]["labels"] = {keys.WEBHOOK_LABEL: "ignore"}
        pod["spec"]["containers"][0]["resources"] = {"limits": limits}
        return pod

    return make


def _gpu_pod(spread: bool) -> Callable[[int], dict[str, Any]]:
    def make(i: int) -> dict[str, Any]:
        pod = gpu_pod(f"g-{i:05d}", {"gpu": 1, "gpumem": 2000, "gpucores": 10})
        if spread:
            pod["metadata"]["annotations"] = {keys.NODE_SCHEDULER_POLICY: "spread"}
        return pod

    return make


async def _prepare(stack: Stack, nodes: list[str], run_dir: Path) -> None:
    inventory = run_dir / "inventory-8.yaml"
    inventory.write_text(INVENTORY_8)
    api = stack.api(timeout=60)
    try:
        for name in nodes:
            await create_node(api, name, resources={"example.com/gpu": str(GPUS)})
        stack.plugin({name: inventory for name in nodes})
        await register_webhook(api, stack.port, stack.ca)
        await wait_registered(api, nodes, timeout=300)
    finally:
        await api.close()


async def _run_batches(stack: Stack, batches: list[tuple[str, Any, int]]) -> dict[str, Any]:
    """Per batch: seconds, CPU ms per pod by component, API requests per pod."""
    api = stack.api(timeout=60)
    out: dict[str, Any] = {}
    try:
        for ns, make, n in batches:
            cpu, calls = costs.cpu_seconds(), await costs.api_requests(api)
            seconds = await _timed_batch(api, ns, make, n, 600)
            out[ns] = {
                "seconds": seconds,
                "cpu_ms_per_pod": costs.per_pod(cpu, costs.cpu_seconds(), n, 1000),
                "api_requests_per_pod": costs.per_pod(calls, await costs.api_requests(api), n, 1),
            }
        return out
    finally:
        await api.close()


def bench_cluster(name: str, nodes: int, batches: list[tuple[str, Any, int]]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"hami-bench-{name}-") as tmp:
        stack = Stack.start(Path(tmp), f"hami-bench-{name}", default_profile=True)
        try:
            stack.scheduler()
            names = [f"{name}-{i:04d}" for i in range(nodes)]
            asyncio.run(_prepare(stack, names, Path(tmp)))
            return asyncio.run(_run_batches(stack, batches))
        finally:
            stack.stop()


def bench_burst() -> dict[str, Any]:
    pods = 40
    runs = bench_cluster(
        "burst", 1, [("plain", _plain_pod(None), pods), ("gpu", _gpu_pod(False), pods)]
    )
    return {
        "pods": pods,
        "node_gpus": GPUS,
        "all_bound_seconds": round(runs["gpu"]["seconds"], 2),
        "baseline_no_gpu_seconds": round(runs["plain"]["seconds"], 2),
        "target_seconds": 10,
    }


def bench_throughput(nodes: int, pods: int) -> dict[str, Any]:
    runs = bench_cluster(
        "tput",
        nodes,
        [("plain", _plain_pod("example.com/gpu"), pods), ("gpu", _gpu_pod(True), pods)],
    )
    ours, base = pods / runs["gpu"]["seconds"], pods / runs["plain"]["seconds"]
    return {
        "nodes": nodes,
        "gpus_per_node": GPUS,
        "pods": pods,
        "hami_pods_per_second": round(ours, 1),
        "baseline_extended_resource_pods_per_second": round(base, 1),
        "ratio": round(ours / base, 3),
        "target_ratio": 0.25,
        # where each batch's CPU and API calls went (same run)
        "costs": {
            batch: {k: v for k, v in run.items() if k != "seconds"} for batch, run in runs.items()
        },
    }


def machine() -> dict[str, object]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/bench_scheduler.json"))
    parser.add_argument("--only", choices=["filter", "writes", "burst", "throughput"])
    parser.add_argument("--filter-nodes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--filter-requests", type=int, default=200)
    parser.add_argument("--nodes", type=int, default=200, help="throughput: kwok nodes")
    parser.add_argument("--pods", type=int, default=500, help="throughput: pods")
    args = parser.parse_args()
    steps: dict[str, Callable[[], Any]] = {
        "filter": lambda: [
            asyncio.run(bench_filter(n, args.filter_requests)) for n in args.filter_nodes
        ],
        "writes": lambda: asyncio.run(bench_writes(50)),
        "burst": bench_burst,
        "throughput": lambda: bench_throughput(args.nodes, args.pods),
    }
    results: dict[str, Any] = {"machine": machine()}
    for name, step in steps.items():
        if args.only and name != args.only:
            continue
        began = time.monotonic()
        results[name] = step()
        print(f"{name}: {json.dumps(results[name])} ({time.monotonic() - began:.0f} s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
