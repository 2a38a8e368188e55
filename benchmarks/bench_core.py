"""Decision-core benchmark: per-pod latency and throughput on large simulated clusters.

Clusters of N nodes × 8 GPUs (80 GiB, split count 10) start with about half of every resource in
use; pods are a mix of 1-, 2- and 4-GPU requests under binpack and spread policies, and every
decision gets the full candidate list, as kube-scheduler sends it. The baseline in the same run is
an exhaustive search (a full fit on every candidate node, as HAMi's filter does) over the same
pods, so the index's gain is measured, not assumed.

    python benchmarks/bench_core.py --out bench-results/bench_core.json
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import report  # benchmarks/report.py (run as a script: its folder is on sys.path)
from hami.core.cluster import ClusterView, NodeState
from hami.core.config import SchedulerConfig
from hami.core.decide import Decision, commit, decide
from hami.core.fit import NodeFit, fit_pod
from hami.core.model import ContainerRequest, Device, DeviceUsage, Node, PodOptions, PodRequest
from hami.core.vendor import Vendor
from hami.vendors import registry

GPUS_PER_NODE = 8
MEMORY = 81920
COUNT = 10


def build_cluster(nodes: int, rng: random.Random) -> ClusterView:
    states = []
    for n in range(nodes):
        devices = tuple(
            Device(
                uuid=f"GPU-{n:05d}-{g}",
                vendor="NVIDIA",
                type="NVIDIA H100 80GB HBM3",
                count=COUNT,
                memory=MEMORY,
                cores=100,
                index=g,
                numa=g // 4,
            )
            for g in range(GPUS_PER_NODE)
        )
        usage = []
        for _ in devices:
            fill = rng.random()  # about half of every resource in use, on average
            usage.append(
                DeviceUsage(
                    used=round(fill * (COUNT - 1)),
                    usedmem=int(fill * MEMORY) // 1024 * 1024,
                    usedcores=int(fill * 10) * 10,
                )
            )
        states.append(NodeState.of(Node(name=f"node-{n:05d}", devices=devices), usage))
    return ClusterView.of(states)


def make_pods(count: int, rng: random.Random) -> list[PodRequest]:
    pods = []
    for i in range(count):
        nums = rng.choices([1, 2, 4], weights=[70, 20, 10])[0]
        request = ContainerRequest(
            vendor="NVIDIA",
            nums=nums,
            memreq=rng.choice([2048, 4096, 8192, 16384, 24576]),
            coresreq=rng.choice([10, 20, 30, 50]),
        )
        options = PodOptions(
            node_policy=rng.choice(["binpack", "spread"]),
            gpu_policy=(rng.choice(["binpack", "spread"]),),
        )
        pods.append(
            PodRequest(
                namespace="bench", name=f"pod-{i}", containers=((request,),), options=options
            )
        )
    return pods


def exhaustive(
    pod: PodRequest, view: ClusterView, vendors: dict[str, Vendor], candidates: Sequence[str]
) -> str | None:
    """The baseline: a full fit on every candidate, then the best score under the node policy."""
    fits = []
    for name in candidates:
        state = view.get(name)
        if state is not None and isinstance(
            fit_pod(state.node, state.usage, pod, vendors), NodeFit
        ):
            fits.append((state.score, name))
    if not fits:
        return None
    return (max(fits) if pod.options.node_policy == "binpack" else min(fits))[1]


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(
    run: Callable[[PodRequest], object], pods: Sequence[PodRequest]
) -> tuple[list[float], float]:
    latencies = []
    start = time.perf_counter()
    for pod in pods:
        t0 = time.perf_counter_ns()
        run(pod)
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
    return latencies, time.perf_counter() - start


def stats(latencies: list[float], wall: float) -> dict[str, float]:
    return {
        "pods": len(latencies),
        "p50_ms": round(percentile(latencies, 0.50), 4),
        "p99_ms": round(percentile(latencies, 0.99), 4),
        "max_ms": round(max(latencies), 4),
        "mean_ms": round(statistics.fmean(latencies), 4),
        "throughput_pods_per_s": round(len(latencies) / wall, 1),
    }


def bench_size(nodes: int, pods: int, baseline_pods: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    vendors = registry.build(SchedulerConfig())
    view = build_cluster(nodes, rng)
    names = [s.node.name for s in view.states()]
    workload = make_pods(pods, rng)
    state = {"view": view, "placed": 0}

    def place(pod: PodRequest) -> Decision:
        decision = decide(pod, state["view"], vendors, candidates=names)  # type: ignore[arg-type]
        state["view"] = commit(state["view"], decision)  # type: ignore[arg-type]
        state["placed"] += int(decision.placed)  # type: ignore[operator]
        return decision

    decide_only = lambda pod: decide(pod, view, vendors, candidates=names)  # noqa: E731
    warm = workload[: min(50, pods)]
    measure(decide_only, warm)
    lat_decide, wall_decide = measure(decide_only, workload)
    lat_place, wall_place = measure(place, workload)
    base = workload[:baseline_pods]
    mismatches = sum(
        1
        for pod in base
        if exhaustive(pod, view, vendors, names)
        != decide(pod, view, vendors, candidates=names).node
    )
    lat_base, wall_base = measure(lambda pod: exhaustive(pod, view, vendors, names), base)
    return {
        "nodes": nodes,
        "gpus": nodes * GPUS_PER_NODE,
        "decide": stats(lat_decide, wall_decide),
        "decide_and_commit": stats(lat_place, wall_place),
        "placed": state["placed"],
        "baseline_exhaustive": stats(lat_base, wall_base),
        "baseline_agrees": f"{len(base) - mismatches}/{len(base)}",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000", help="node counts, comma-separated")
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--baseline-pods", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    targets = {1000: 2.0, 5000: 5.0}
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        result = bench_size(size, args.pods, args.baseline_pods, args.seed)
        target = targets.get(size)
        if target is not None:
            result["target_p99_ms"] = target
            result["meets_target"] = result["decide"]["p99_ms"] <= target  # type: ignore[index]
        results.append(result)
    document = {
        "benchmark": "bench_core",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": report.cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "results": results,
    }
    report.write(document, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
