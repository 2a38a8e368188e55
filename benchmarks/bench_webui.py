"""Web UI overview page load with 1,000 nodes × 8 GPUs (target ≤ 1 s), with a baseline.

Cases, each timed over ``--runs`` GET requests through the ASGI app (TestClient):
* ``baseline_healthz``: the same server answering /healthz (routing and transport only);
* ``overview_static``: GET / over a prepared snapshot (rendering and summaries);
* ``startup_prime`` (``--first-runs`` fresh apps over the same cluster): the app's startup
  over the KubeAPI port (FakeKube): the live source lists and decodes every Node and Pod
  before the port serves, as an informer syncs, then freezes what is alive out of the cyclic
  GC's sight (``freeze_gc``, as `hami webui` does);
* ``overview_first`` (each fresh app once): the first GET / after that startup — a user's first
  load;
* ``overview_cold`` (each once): a first GET / on a fresh source that was never primed (every
  object decoded inside the request);
* ``fake_list``: the two lists alone — FakeKube deep-copies every object it returns (a cost
  a page paid on every refresh before the source watched; the startup still pays it);
* ``overview_live``: later GET / on the started source: its watches hold Nodes and Pods, the
  page lists only the ResourceQuotas (its outage probe), nothing changed (the decoded objects
  and the core's view reused: `DecodeMemo`), render — a refresh;
* ``overview_live_changed``: the same with ``--changed`` pods (1 % by default) modified before
  each GET (the watch events let in first): those decoded again and the core's view rebuilt;
* ``overview_namespace``: GET /?namespace=ns3 over the snapshot (usage scoped: the core's view
  rebuilt from that namespace's pods);
* ``nodes_list``, ``accelerators_list`` (8,000 rows), ``workloads_list`` (4,000 rows, sorted by
  memory): the list screens over the snapshot.
The document records the date, the machine (CPU model, cores, load) and Python.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import cast

from fastapi import FastAPI
from fastapi.testclient import TestClient

from hami.config import load_config
from hami.k8s.api import NODES, PODS
from hami.k8s.fake import FakeKube, node_manifest
from hami.vendors import registry
from hami.webui.app import WebUI, create_app
from hami.webui.decode import build_snapshot
from hami.webui.history import History
from hami.webui.livesource import KubeSource
from hami.webui.simsource import StaticSource

TARGET_S = 1.0


def manifests(nodes: int, gpus: int) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    node_docs, pod_docs = [], []
    for n in range(nodes):
        devices = [
            {"id": f"GPU-{n}-{g}", "index": g, "count": 10, "devmem": 81920, "devcore": 100,
             "type": "NVIDIA H100" if n % 2 else "NVIDIA A100", "health": True}
            for g in range(gpus)
        ]  # fmt: skip
        name = f"node-{n:04d}"
        node_docs.append(node_manifest(name, {"hami.io/node-nvidia-register": json.dumps(devices)}))
        for g in range(0, gpus, 2):  # a pod on every other GPU
            pod_docs.append(
                {
                    "metadata": {
                        "name": f"p-{n}-{g}", "namespace": f"ns{n % 10}", "uid": f"u-{n}-{g}",
                        "annotations": {
                            "hami.io/vgpu-node": name,
                            "hami.io/vgpu-devices-allocated": f"GPU-{n}-{g},NVIDIA,20000,30:;",
                        },
                    },
                    "spec": {"nodeName": name, "containers": [{"name": "c"}]},
                    "status": {"phase": "Running"},
                }
            )  # fmt: skip
    return node_docs, pod_docs


def timed(client: TestClient, path: str, runs: int) -> dict[str, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text[:200]
    return {
        "median_s": round(statistics.median(times), 4),
        "max_s": round(max(times), 4),
        "bytes": len(response.content),
    }


async def fake_kube(nodes: list[dict[str, object]], pods: list[dict[str, object]]) -> FakeKube:
    fake = FakeKube()
    for node in nodes:
        await fake.create(NODES, node)
    for pod in pods:
        await fake.create(PODS, pod)  # in its own namespace (ns0…ns9)
    return fake


async def touch(fake: FakeKube, pods: list[dict[str, object]], count: int, round_: int) -> None:
    """Modify ``count`` pods (a new resourceVersion), a different set each round."""
    for i in range(count):
        pod = pods[(round_ * count + i) % len(pods)]
        meta = cast(dict[str, str], pod["metadata"])
        patch = {"metadata": {"labels": {"round": str(round_)}}}
        await fake.merge_patch(PODS, meta["name"], patch, meta["namespace"])


def spread(times: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(times), 4), "max_s": round(max(times), 4)}


def timed_changed(
    client: TestClient,
    source: KubeSource,
    fake: FakeKube,
    pods: list[dict[str, object]],
    count: int,
    runs: int,
) -> dict[str, float]:
    """Modify ``count`` pods (in the app's loop, where the source's watches run), let the
    watch events arrive, then time the page that decodes them and rebuilds the view."""
    times = []
    for round_ in range(runs):
        client.portal.call(touch, fake, pods, count, round_)  # type: ignore[union-attr]
        client.portal.call(asyncio.sleep, 0.2)  # type: ignore[union-attr]
        start = time.perf_counter()
        response = client.get("/")
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text[:200]
        assert source._memo.changed, "the watch events did not arrive before the page"
    return {"median_s": round(statistics.median(times), 4), "max_s": round(max(times), 4)}


def started(app: FastAPI) -> tuple[TestClient, float]:
    """A client whose app has run its startup (the live source's first list), and how long
    that took."""
    client = TestClient(app)
    start = time.perf_counter()
    client.__enter__()
    return client, time.perf_counter() - start


def machine() -> dict[str, object]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2),
        "system": platform.platform(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--changed", type=int, default=40, help="pods modified per live refresh")
    parser.add_argument("--first-runs", type=int, default=3, help="fresh apps for first loads")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    settings = load_config(None)
    vendors = registry.build(settings)
    node_docs, pod_docs = manifests(args.nodes, args.gpus)
    snapshot = build_snapshot(node_docs, pod_docs, vendors, settings)
    static = TestClient(create_app(WebUI(StaticSource(snapshot, vendors), History(interval=60))))
    baseline = timed(static, "/healthz", args.runs)
    fake = asyncio.run(fake_kube(node_docs, pod_docs))
    primes, firsts, colds = [], [], []
    for _ in range(args.first_runs):  # fresh apps over the same cluster
        ui = WebUI(KubeSource(fake, vendors, settings, ttl=0), History(interval=60))
        client, prime_s = started(create_app(ui, freeze_gc=True))
        primes.append(prime_s)
        firsts.append(timed(client, "/", 1)["median_s"])  # a user's first load, after startup
        client.__exit__(None, None, None)
        ui = WebUI(KubeSource(fake, vendors, settings, ttl=0), History(interval=60))
        colds.append(timed(TestClient(create_app(ui)), "/", 1)["median_s"])
    lists = []
    for _ in range(args.runs):  # the stand-in's own share of a live refresh
        start = time.perf_counter()
        asyncio.run(fake.list(NODES))
        asyncio.run(fake.list(PODS))
        lists.append(time.perf_counter() - start)
    source = KubeSource(fake, vendors, settings, ttl=0)
    live, _ = started(create_app(WebUI(source, History(interval=60)), freeze_gc=True))
    results = {
        "baseline_healthz": baseline,
        "overview_static": timed(static, "/", args.runs),
        "startup_prime": spread(primes),
        "overview_first": spread(firsts),
        "overview_cold": spread(colds),  # never primed: every object decoded in the request
        "fake_list": spread(lists),  # FakeKube's deep copies, inside every live case
        "overview_live": timed(live, "/", args.runs),  # later lists: nothing changed
        "overview_live_changed": timed_changed(
            live, source, fake, pod_docs, args.changed, args.runs
        ),
        "overview_namespace": timed(static, "/?namespace=ns3", args.runs),
        "nodes_list": timed(static, "/nodes", args.runs),
        "accelerators_list": timed(static, "/accelerators", args.runs),
        "workloads_list": timed(static, "/workloads?sort=memory&dir=desc", args.runs),
    }
    live.__exit__(None, None, None)
    document = {
        "benchmark": "webui_overview",
        "nodes": args.nodes,
        "gpus_per_node": args.gpus,
        "pods": len(pod_docs),
        "target_s": TARGET_S,
        "python": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "results": results,
        "changed_per_refresh": args.changed,
        "within_target": all(
            results[case]["median_s"] <= TARGET_S
            for case in ("overview_first", "overview_live", "overview_live_changed")
        ),
    }
    text = json.dumps(document, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
