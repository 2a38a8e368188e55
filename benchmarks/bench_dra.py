"""DRA mode vs extender mode (issue 22): pods/s end to end on one simulated cluster.

One control plane (kube-scheduler with its DRA plugins and our extender, kube-controller-manager
for claims from templates, the webhook in DRA mode) holds ``--nodes`` kwok nodes served by
``hami device-plugin --simulate`` and as many labelled ``hami.io/dra=true`` whose ResourceSlices
``hami dra-plugin --simulate`` publishes; every node has 8 GPUs. The same GPU pod (1 GPU,
2000 MiB, 10 % cores) is created ``--pods`` times in each mode through the webhook: in extender
mode it goes to hami-scheduler (filter + bind), in DRA mode it gets a ResourceClaimTemplate and
kube-scheduler allocates its claim. Seconds from the first create until all are bound; pods are
created 16 at a time in both modes (all 500 at once overran the webhook's 64 requests in
flight while the first pod of a shape waited for its template).

    python benchmarks/bench_dra.py --nodes 250 --pods 500 --out bench-results/bench_dra.json
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_scheduler  # benchmarks/ (run as a script: its folder is on sys.path)
import costs
import report
from hami.agent.dra.slices import device_class
from hami.api import keys
from hami.cluster.binaries import find_node_binaries
from hami.cluster.control_plane import LocalCluster
from hami.cluster.ports import free_port
from hami.cluster.process import Component
from hami.core.dra import names
from hami.demo.stack import (
    Stack,
    cluster_options,
    create_node,
    gpu_pod,
    register_webhook,
    wait_registered,
)
from hami.k8s.api import Kind

SLICES = Kind("resourceslices", "apis/resource.k8s.io/v1", False, "ResourceSlice")
DEVICE_CLASSES = Kind("deviceclasses", "apis/resource.k8s.io/v1", False, "DeviceClass")
LIMITS = {"gpu": 1, "gpumem": 2000, "gpucores": 10}


CREATES_IN_FLIGHT = 16  # pods created at a time (the webhook serves 64 requests at once)


class Bounded:
    """The API with at most ``limit`` pod creates in flight (a client paced like a controller);
    every other call passes through."""

    def __init__(self, api: Any, limit: int) -> None:
        self._api = api
        self._gate = asyncio.Semaphore(limit)

    async def create(self, *args: Any, **kwargs: Any) -> Any:
        async with self._gate:
            return await self._api.create(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)


def _pod(dra: bool):  # type: ignore[no-untyped-def]
    def make(i: int) -> dict[str, Any]:
        pod = gpu_pod(f"{'d' if dra else 'e'}-{i:05d}", LIMITS)
        pod["metadata"]["annotations"] = {keys.NODE_SCHEDULER_POLICY: "spread"}
        if dra:
            pod["spec"]["nodeSelector"] = {names.DRA_NODE_LABEL: names.DRA_NODE_VALUE}
        return pod

    return make


async def _prepare(stack: Stack, count: int, run_dir: Path) -> None:
    inventory = run_dir / "inventory-8.yaml"
    inventory.write_text(bench_scheduler.INVENTORY_8)
    ext = [f"ext-{i:04d}" for i in range(count)]
    dra = [f"dra-{i:04d}" for i in range(count)]
    api = stack.api(timeout=60)
    try:
        await api.create(DEVICE_CLASSES, device_class())
        for name in ext:
            await create_node(api, name)
        for name in dra:
            await create_node(api, name, labels={names.DRA_NODE_LABEL: names.DRA_NODE_VALUE})
        stack.plugin(dict.fromkeys(ext, inventory))
        twin = Component(
            "hami-dra-plugin",
            [
                str(Path(sys.executable).with_name("hami")),
                *("dra-plugin", "--simulate", "--interval", "60"),
                *("--kubeconfig", str(stack.cluster.kubeconfig), "--inventory", str(inventory)),
                *("--nodes", ",".join(dra)),
            ],
            stack.cluster.run_dir / "logs" / "dra-plugin.log",
        )
        twin.start(die_with_parent=True)
        stack.components.append(twin)
        await register_webhook(api, stack.port, stack.ca)
        await wait_registered(api, ext, timeout=300)
        deadline = time.monotonic() + 300
        while len((await api.list(SLICES)).items) < count:
            assert time.monotonic() < deadline, "the DRA twin did not publish every slice"
            await asyncio.sleep(1)
    finally:
        await api.close()


async def _batches(stack: Stack, pods: int) -> dict[str, Any]:
    api = stack.api(timeout=60)
    out: dict[str, Any] = {}
    try:
        for mode, dra in (("extender", False), ("dra", True)):
            cpu, calls = costs.cpu_seconds(), await costs.api_requests(api)
            paced = Bounded(api, CREATES_IN_FLIGHT)
            seconds = await bench_scheduler._timed_batch(paced, mode, _pod(dra), pods, 900)
            out[mode] = {
                "seconds": round(seconds, 2),
                "pods_per_second": round(pods / seconds, 1),
                "cpu_ms_per_pod": costs.per_pod(cpu, costs.cpu_seconds(), pods, 1000),
                "api_requests_per_pod": costs.per_pod(
                    calls, await costs.api_requests(api), pods, 1
                ),
            }
        return out
    finally:
        await api.close()


def bench(nodes: int, pods: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hami-bench-dra-") as tmp:
        port = free_port()
        options = dataclasses.replace(
            cluster_options(Path(tmp) / "cluster", "hami-bench-dra", port),
            controller_manager=find_node_binaries().kube_controller_manager,
        )
        stack = Stack(LocalCluster(options).start(), port)
        try:
            stack.scheduler(args=["--dra-namespaces", ""])
            began = time.monotonic()
            asyncio.run(_prepare(stack, nodes, Path(tmp)))
            ready = time.monotonic() - began
            runs = asyncio.run(_batches(stack, pods))
        except BaseException:
            shutil.copytree(
                stack.cluster.run_dir / "logs",
                Path("bench-results/bench_dra-logs"),
                dirs_exist_ok=True,
            )
            raise
        finally:
            stack.stop()
    return {
        "nodes_per_mode": nodes,
        "cluster_nodes": 2 * nodes,
        "gpus_per_node": 8,
        "pods_per_mode": pods,
        "setup_seconds": round(ready, 1),
        **runs,
        "dra_vs_extender": round(
            runs["dra"]["pods_per_second"] / runs["extender"]["pods_per_second"], 2
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--nodes", type=int, default=250, help="kwok nodes per mode")
    parser.add_argument("--pods", type=int, default=500, help="pods per mode")
    args = parser.parse_args()
    result = {"machine": {**bench_scheduler.machine(), "cpu": report.cpu_model()}}
    result["throughput"] = bench(args.nodes, args.pods)
    report.write(result, args.out)


if __name__ == "__main__":
    main()
