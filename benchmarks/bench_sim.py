"""`hami sim` on a large cluster file, and the start of the `hami` command (issue 20).

The cluster file has N nodes × 8 GPUs (default 5,000), registered as HAMi's device plugin
writes them (labels, register and handshake annotations, capacity), two running pods on every
node, and the pods file asks for ``--pods`` more (1-, 2- and 4-GPU slices, binpack and spread).
Both files are written in the block style ``kubectl get -o yaml`` uses.

Cases, each over ``--runs`` runs, median and max:

* ``sim``: the whole command, ``hami sim CLUSTER PODS --format json`` in a fresh interpreter;
  ``sim_pure_loader`` is the baseline in the same run: the same command with
  ``hami.yamlio`` forced onto PyYAML's pure-Python ``SafeLoader`` (what every read used before);
* ``read_cluster``: ``hami.k8s.files.documents`` on the cluster file in this process, libyaml
  and the pure-Python loader: the share of the command that is YAML parsing;
* ``startup`` (``--only startup``, or ``all``): ``hami --help`` and ``hami version``; the
  baseline imports every sub-command's module first, as `hami.cli` did before issue 20.

    python benchmarks/bench_sim.py --out bench-results/bench_sim.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

import report  # benchmarks/report.py (run as a script: its folder is on sys.path)
from hami import yamlio
from hami.k8s.files import documents

GPUS = 8
NOW = "2026-11-27T00:00:00+00:00"  # fixed, so that both loaders' reports compare equal
MEMORY = 81920
RUN_CLI = "from hami.cli import main; main()"
PURE_LOADER = "import hami.yamlio as y; y.WITH_LIBYAML = False; " + RUN_CLI
# What `hami.cli` imported before issue 20, before it parsed its arguments.
EAGER_IMPORTS = (
    "import hami.agent.cli, hami.cluster.cli, hami.demo.cli, hami.explain_cli, hami.monitor.cli,"
    " hami.node.cli, hami.scheduler.cli, hami.sim.cli, hami.webui.cli; "
)


def node(n: int) -> dict[str, Any]:
    name = f"gpu-node-{n:05d}"
    product = "NVIDIA H100 80GB HBM3" if n % 2 else "NVIDIA A100-SXM4-80GB"
    devices = [
        {"id": f"GPU-{n:05d}-{g}", "index": g, "count": 10, "devmem": MEMORY, "devcore": 100,
         "type": product, "numa": g // 4, "mode": "hami-core", "health": True}
        for g in range(GPUS)
    ]  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "gpu": "on",
                "nvidia.com/gpu.product": product.replace(" ", "-"),
                "topology.kubernetes.io/zone": f"zone-{n % 3}",
            },
            "annotations": {
                "hami.io/node-handshake": "Reported 2026-11-27 00:00:00",
                "hami.io/node-nvidia-register": json.dumps(devices, separators=(",", ":")),
                "node.alpha.kubernetes.io/ttl": "0",
            },
        },
        "spec": {"podCIDR": f"10.{n // 256}.{n % 256}.0/24"},
        "status": {
            "capacity": {"cpu": "128", "memory": "1056574596Ki", "nvidia.com/gpu": "80",
                         "pods": "110"},
            "allocatable": {"cpu": "127", "memory": "1056472196Ki", "nvidia.com/gpu": "80",
                            "pods": "110"},
            "addresses": [{"type": "InternalIP", "address": f"10.0.{n // 256}.{n % 256}"},
                          {"type": "Hostname", "address": name}],
        },
    }  # fmt: skip


def pod(name: str, gpus: int, memory: int, cores: int, policy: str) -> dict[str, Any]:
    limits = {"nvidia.com/gpu": gpus, "nvidia.com/gpumem": memory, "nvidia.com/gpucores": cores}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "bench",
            "annotations": {"hami.io/node-scheduler-policy": policy},
        },
        "spec": {
            "containers": [{"name": "main", "image": "cuda", "resources": {"limits": limits}}]
        },
    }


def placed(n: int, g: int) -> dict[str, Any]:
    name = f"gpu-node-{n:05d}"
    running = pod(f"running-{n:05d}-{g}", 1, 20000, 30, "binpack")
    running["metadata"]["uid"] = f"uid-{n}-{g}"
    running["metadata"]["annotations"] = {
        "hami.io/vgpu-node": name,
        "hami.io/vgpu-devices-allocated": f"GPU-{n:05d}-{g},NVIDIA,20000,30:;",
        "hami.io/bind-phase": "success",
    }
    running["spec"]["nodeName"] = name
    running["status"] = {"phase": "Running"}
    return running


def write_inputs(folder: Path, nodes: int, pods: int, seed: int) -> tuple[Path, Path]:
    rng = random.Random(seed)
    cluster, queued = folder / "cluster.yaml", folder / "pods.yaml"
    docs: list[dict[str, Any]] = [node(n) for n in range(nodes)]
    docs += [placed(n, g) for n in range(nodes) for g in (0, 5)]
    dump(cluster, docs)
    asks = [
        pod(
            f"job-{i:05d}",
            rng.choices((1, 2, 4), (70, 20, 10))[0],
            rng.randrange(2048, 24577, 1024),
            rng.randrange(10, 51, 10),
            rng.choice(("binpack", "spread")),
        )
        for i in range(pods)
    ]
    dump(queued, asks)
    return cluster, queued


def dump(path: Path, docs: Sequence[dict[str, Any]]) -> None:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    with path.open("w", encoding="utf-8") as out:
        yaml.dump_all(docs, out, Dumper=dumper, sort_keys=False, default_flow_style=False)


def timed(run: Callable[[], object], runs: int) -> dict[str, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {"median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3)}


def command(code: str, *args: str) -> Callable[[], object]:
    def run() -> object:
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=True,
        )

    return run


def read(path: Path, fast: bool) -> Callable[[], object]:
    def run() -> object:
        saved = yamlio.WITH_LIBYAML
        yamlio.WITH_LIBYAML = fast and saved
        try:
            return sum(1 for _ in documents(path))
        finally:
            yamlio.WITH_LIBYAML = saved

    return run


def bench_sim(nodes: int, pods: int, runs: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        cluster, queued = write_inputs(Path(tmp), nodes, pods, seed)
        args = ("sim", str(cluster), str(queued), "--format", "json", "--now", NOW)
        same = [
            subprocess.run(
                [sys.executable, "-c", code, *args], capture_output=True, check=True
            ).stdout
            for code in (RUN_CLI, PURE_LOADER)
        ]
        assert same[0] == same[1], "the two loaders gave different reports"
        results = {
            "read_cluster": timed(read(cluster, fast=True), runs),
            "read_cluster_pure_loader": timed(read(cluster, fast=False), runs),
            "sim": timed(command(RUN_CLI, *args), runs),
            "sim_pure_loader": timed(command(PURE_LOADER, *args), runs),
        }
        report = json.loads(same[0])
        return {
            "nodes": nodes,
            "gpus_per_node": GPUS,
            "placed_pods": 2 * nodes,
            "pods": pods,
            "cluster_file_mb": round(cluster.stat().st_size / 2**20, 1),
            "pods_file_mb": round(queued.stat().st_size / 2**20, 2),
            "report_keys": sorted(report) if isinstance(report, dict) else None,
            "results": results,
            "speedup_sim": round(
                results["sim_pure_loader"]["median_s"] / results["sim"]["median_s"], 2
            ),
            "speedup_read": round(
                results["read_cluster_pure_loader"]["median_s"]
                / results["read_cluster"]["median_s"],
                1,
            ),
        }


def bench_startup(runs: int) -> dict[str, Any]:
    results = {
        "help": timed(command(RUN_CLI, "--help"), runs),
        "version": timed(command(RUN_CLI, "version"), runs),
        "help_eager_imports": timed(command(EAGER_IMPORTS + RUN_CLI, "--help"), runs),
        "version_eager_imports": timed(command(EAGER_IMPORTS + RUN_CLI, "version"), runs),
    }
    return {"results": results, "target_s": 0.3}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=500, help="pods to place")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--startup-runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--only", choices=("sim", "startup", "all"), default="all")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    document: dict[str, Any] = {
        "benchmark": "bench_sim",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": report.cpu_model(),
            "cores": os.cpu_count(),
            "load_at_start": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "pyyaml": yaml.__version__,
            "libyaml": yaml.__with_libyaml__,
        },
    }
    if args.only in ("sim", "all"):
        document["sim"] = bench_sim(args.nodes, args.pods, args.runs, args.seed)
    if args.only in ("startup", "all"):
        document["startup"] = bench_startup(args.startup_runs)
    document["load_at_end"] = round(os.getloadavg()[0], 2)
    report.write(document, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
