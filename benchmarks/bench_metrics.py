"""Scrape time of the scheduler's and the node monitor's /metrics collectors (issue 7).

* ``scheduler``: `Metrics.render` (what /metrics serves) over a real `ClusterCache` holding
  N nodes × 8 GPUs and M placed pods (default 5,000 × 8 and 20,000; target ≤ 500 ms), warm
  (unchanged cache: each node's lines reused) and cold (a fresh `Metrics`: every line written).
  Reference, same run: ``generate_latest(metrics.registry)`` (same bytes, checked), and
  rendering the same number of series from plain labelled prometheus_client Gauges.
* ``monitor``: `MonitorCollector` over C containers (default 200), each a libvgpu region file
  with two live processes (their slot life locks held, as libvgpu's processes do), matched to
  pods through the in-memory API (target ≤ 100 ms). Baseline: the same series as plain Gauges.

Each monitor scrape is ``generate_latest`` (compute + text format); each scrape is timed ``--repeat`` times; the JSON
goes to ``--out`` and stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import fcntl
import json
import os
import platform
import statistics
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from hami.api import annotations as codec
from hami.api import keys
from hami.api.types import ContainerDevice, DeviceInfo
from hami.k8s.api import PODS
from hami.k8s.fake import FakeKube, node_manifest
from hami.monitor import abi as shm
from hami.monitor.collector import MonitorCollector, registry_for
from hami.monitor.host import NullHost
from hami.monitor.monitor import Monitor, MonitorSettings
from hami.monitor.region import slot_lock_offset
from hami.scheduler.cache import ClusterCache
from hami.scheduler.metrics import Metrics
from hami.scheduler.settings import SchedulerSettings
from hami.vendors import registry

GPUS = 8
MIB = 1 << 20


def timings(scrape: Callable[[], bytes], repeat: int) -> tuple[dict[str, float], int]:
    """p50/max/mean milliseconds of ``scrape`` and the number of sample lines it returns."""
    samples, lines = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        text = scrape()
        samples.append((time.perf_counter() - started) * 1000)
        lines = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    stats = {
        "p50_ms": round(statistics.median(samples), 1),
        "max_ms": round(max(samples), 1),
        "mean_ms": round(statistics.fmean(samples), 1),
    }
    return stats, lines


def plain_gauges(series: int, labels: int) -> CollectorRegistry:
    """``series`` samples over ``labels`` labels in one plain Gauge: the rendering floor."""
    reg = CollectorRegistry()
    names = [f"l{i}" for i in range(labels)]
    gauge = Gauge("bench_plain", "baseline", names, registry=reg)
    for n in range(series):
        gauge.labels(*(f"value-{n}-{i}" for i in range(labels))).set(n)
    return reg


# --- scheduler -------------------------------------------------------------------------------


def node(index: int) -> dict[str, object]:
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
    return node_manifest(f"node-{index:05d}", annotations, {"nvidia.com/gpu": str(GPUS * 10)})


def placed(index: int, nodes: int) -> dict[str, Any]:
    """A running pod holding one 4 GiB / 10-core slice of a GPU (pods spread over nodes)."""
    where = index % nodes
    gpu = (index // nodes) % GPUS
    device = ContainerDevice(f"GPU-{where:05d}-{gpu}", "NVIDIA", 4096, 10)
    allocated = codec.encode_pod_devices([[device]])
    annotations = {
        keys.VGPU_NODE: f"node-{where:05d}",
        keys.NVIDIA_ALLOCATED: allocated,
        keys.NVIDIA_TO_ALLOCATE: allocated,
        keys.BIND_PHASE: keys.BIND_PHASE_SUCCESS,
    }
    meta = {"name": f"pod-{index:05d}", "namespace": "bench", "uid": f"uid-{index}"}
    return {
        "metadata": {**meta, "annotations": annotations, "resourceVersion": "1"},
        "spec": {"nodeName": f"node-{where:05d}", "containers": [{"name": "c"}]},
        "status": {"phase": "Running"},
    }


def bench_scheduler(nodes: int, pods: int, repeat: int) -> dict[str, Any]:
    cache = ClusterCache(registry.build(SchedulerSettings().config))
    cache.replace_nodes(node(i) for i in range(nodes))
    cache.replace_pods(placed(i, nodes) for i in range(pods))
    metrics = Metrics(cache)
    cold, _ = timings(lambda: Metrics(cache).render(), repeat)
    ours, lines = timings(metrics.render, repeat)
    reference, _ = timings(lambda: generate_latest(metrics.registry), max(repeat // 2, 1))
    assert metrics.render() == generate_latest(metrics.registry), "render drifted from reference"
    plain = plain_gauges(lines, 6)
    floor, _ = timings(lambda: generate_latest(plain), repeat)
    return {
        "nodes": nodes,
        "gpus_per_node": GPUS,
        "pods": pods,
        "cached_nodes": sum(1 for _ in cache.view.states()),
        "series": lines,
        "scrape": ours,
        "scrape_cold": cold,
        "generate_latest_reference": reference,
        "baseline_plain_gauges_same_series": floor,
        "target_ms": 500,
    }


# --- monitor ---------------------------------------------------------------------------------


def region_parts(uuid: str, slots: int) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) pieces of a libvgpu region with ``slots`` live processes on one GPU."""
    r, s = shm.RegionLayout, shm.Slot
    yield 0, struct.pack("<iII", shm.MAGIC, shm.MAJOR, shm.MINOR)
    yield r.ext.offset, struct.pack("<II", shm.EXT_MAGIC, shm.EXT_VERSION)
    yield r.device_num.offset, struct.pack("<Q", 1)
    yield r.uuids.offset, uuid.encode()
    yield r.limit.offset, struct.pack("<Q", 8 << 30)
    yield r.sm_limit.offset, struct.pack("<Q", 50)
    for n in range(slots):
        slot = shm.Slot(pid=100 + n, hostpid=0, status=1)
        slot.used[0].context_size, slot.used[0].data_size = 200 * MIB, (n + 1) * 500 * MIB
        slot.used[0].total = slot.used[0].context_size + slot.used[0].data_size
        slot.device_util[0].sm_util = 20
        yield r.procs.offset + n * ctypes.sizeof(s), bytes(slot)
    yield r.proc_num.offset, struct.pack("<4i", slots, 1, 2, 1)
    yield r.last_kernel_time.offset, struct.pack("<Q", int(time.time()))


def write_region(path: Path, uuid: str, slots: int) -> list[int]:
    """A sparse region file; returns descriptors holding each slot's life lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.truncate(shm.FILE_SIZE + 1 + slots)
        for offset, data in region_parts(uuid, slots):
            handle.seek(offset)
            handle.write(data)
    holders = []
    for n in range(slots):
        fd = os.open(path, os.O_RDWR)
        lock = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, slot_lock_offset(n), 1, 0)
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, lock)
        holders.append(fd)
    return holders


def monitor_pod(index: int) -> dict[str, Any]:
    meta = {"name": f"pod-{index}", "namespace": "bench", "uid": f"uid-{index}"}
    containers = [{"name": "a"}, {"name": "b"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"nodeName": "n1", "containers": containers},
    }


async def _monitor(hook: Path, containers: int) -> Monitor:
    kube = FakeKube()
    for i in range((containers + 1) // 2):
        await kube.create(PODS, monitor_pod(i))
    monitor = Monitor(MonitorSettings(node="n1", hook_path=hook, feedback=False), kube)
    await monitor.refresh()
    return monitor


def bench_monitor(containers: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hami-bench-monitor-") as tmp:
        hook = Path(tmp)
        holders: list[int] = []
        for c in range(containers):
            directory = hook / "vgpu" / "containers" / f"uid-{c // 2}_{'ab'[c % 2]}"
            holders += write_region(directory / "vgpu.cache", f"GPU-bench-{c % 8}", 2)
        started = time.perf_counter()
        monitor = asyncio.run(_monitor(hook, containers))
        refresh_ms = (time.perf_counter() - started) * 1000
        collector = MonitorCollector(monitor, NullHost())
        reg = registry_for(collector)
        matched = monitor.tracked - monitor.unmatched()
        try:
            ours, lines = timings(lambda: generate_latest(reg), repeat)
            plain = plain_gauges(lines, 10)
            floor, _ = timings(lambda: generate_latest(plain), repeat)
        finally:
            monitor.close()
            for fd in holders:
                os.close(fd)
    return {
        "containers": containers,
        "processes_per_container": 2,
        "matched": matched,
        "series": lines,
        "first_refresh_ms": round(refresh_ms, 1),
        "scrape": ours,
        "baseline_plain_gauges_same_series": floor,
        "target_ms": 100,
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
    parser.add_argument("--out", type=Path, default=Path("bench-results/bench_metrics.json"))
    parser.add_argument("--only", choices=["scheduler", "monitor"])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=20000)
    parser.add_argument("--containers", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    runs: dict[str, Callable[[], dict[str, Any]]] = {
        "scheduler": lambda: bench_scheduler(args.nodes, args.pods, max(args.repeat // 2, 1)),
        "monitor": lambda: bench_monitor(args.containers, args.repeat * 5),
    }
    result: dict[str, Any] = {"machine": machine()}
    for name, run in runs.items():
        if args.only in (None, name):
            result[name] = run()
            print(f"{name}: {json.dumps(result[name])}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
