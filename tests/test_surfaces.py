"""Metrics, the web UI's API and pages, `demo show` and `hami sim` read every device of the mixed
demo cluster alike: memory held (a whole-card hold is the card), compute in each vendor's own
unit, never added across units (issue #18)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import pytest

from hami.config import load_config
from hami.core.accounting import PlacedPod
from hami.core.cluster import ClusterView
from hami.core.vendor import Vendor
from hami.demo.report import slices_of
from hami.scheduler.metrics.collector import CacheCollector
from hami.sim.load import load_cluster, load_pods
from hami.sim.run import Outcome, report, simulate
from hami.sim.table import _devices
from hami.vendors import registry
from hami.webui import page, views
from hami.webui.names import VendorNames
from hami.webui.simsource import SimSource
from hami.webui.snapshot import Snapshot
from hami.webui.views import Filters

VENDORS = Path(__file__).resolve().parents[1] / "examples" / "vendors"
CLUSTER, PODS, CONFIG = (VENDORS / f for f in ("cluster.yaml", "pods.yaml", "config.yaml"))
MIB = 1024 * 1024


@dataclass
class _Cache:
    view: ClusterView
    vendors: Mapping[str, Vendor]
    synced: bool = True
    placed: dict[str, list[PlacedPod]] = field(default_factory=dict)

    def pods_on(self, node: str) -> list[PlacedPod]:
        return self.placed.get(node, [])


class World(TypedDict):
    vendors: dict[str, Vendor]
    outcome: Outcome
    sim: dict[str, Any]  # `hami sim --format json`
    snapshot: Snapshot
    names: VendorNames


@pytest.fixture(scope="module")
def world() -> World:
    config = load_config(CONFIG)
    vendors = registry.build(config)
    requests = load_pods(PODS, vendors, config)
    outcome = simulate(load_cluster(CLUSTER, vendors), requests, vendors)
    snapshot = asyncio.run(SimSource(CLUSTER, PODS, vendors, config).snapshot())
    return {
        "vendors": vendors,
        "outcome": outcome,
        "sim": report(outcome, requests, __import__("datetime").datetime.now()),
        "snapshot": snapshot,
        "names": VendorNames(vendors),
    }


def _metrics(world: World) -> dict[tuple[str, str], float]:
    outcome = world["outcome"]
    cache = _Cache(outcome.view, world["vendors"])
    found: dict[tuple[str, str], float] = {}
    for metric in CacheCollector(cache).collect():
        for sample in metric.samples:
            uuid = sample.labels.get("device_uuid")
            if uuid and "pod" not in sample.labels:
                found[(sample.name, uuid)] = sample.value
    return found


def test_every_device_reads_alike(world: World) -> None:
    names: VendorNames = world["names"]
    nodes: list[dict[str, Any]] = views.nodes_doc(world["snapshot"], Filters(), names)
    metrics = _metrics(world)
    sim_nodes = world["sim"]["summary"]["nodes"]
    held_somewhere = 0
    for node in nodes:
        sim = sim_nodes[node["name"]]
        assert node["memory_allocated_mib"] == sim["memory_allocated_mib"], node["name"]
        by_unit = {c["unit"]: (c["cores"], c["cores_allocated"]) for c in node["compute"]}
        assert by_unit == {u: (c["cores"], c["cores_allocated"]) for u, c in sim["compute"].items()}
        html = page.node_page(node, {})
        for device in node["devices"]:
            uuid = device["uuid"]
            memory = metrics[("hami_gpu_memory_allocated_bytes", uuid)]
            assert memory == device["memory_allocated_mib"] * MIB, uuid
            unit, cores, total = device["cores_unit"], device["cores_allocated"], device["cores"]
            percent = metrics[("hami_gpu_core_allocated_ratio", uuid)]
            assert percent == (cores if unit == "%" else -(-100 * cores // total)), uuid
            shown = f"{cores}/{total} {'cores' if unit == '%' else unit}"
            assert shown in html, (uuid, shown)
            assert f"{device['memory_allocated_mib']}/{device['memory_mib']} MiB" in html, uuid
            held_somewhere += device["slots_used"] > 0
    assert held_somewhere >= 13  # one pod per vendor, each on its own device or more


def test_whole_card_holds_are_full_everywhere(world: World) -> None:
    names: VendorNames = world["names"]
    nodes: list[dict[str, Any]] = views.nodes_doc(world["snapshot"], Filters(), names)
    for node in nodes:
        for device in node["devices"]:
            if device["vendor"] in ("Biren", "Vastai") and device["slots_used"]:
                assert device["memory_allocated_mib"] == device["memory_mib"] > 0
                assert device["cores_allocated"] == device["cores"]


def test_the_overview_never_adds_units(world: World) -> None:
    names: VendorNames = world["names"]
    snapshot = world["snapshot"]
    summary: dict[str, Any] = views.summary_doc(snapshot, Filters(), names)
    devices = sum(len(n.node.devices) for n in snapshot.nodes)
    assert summary["devices"] == devices
    units = {c["unit"] for c in summary["compute"]}
    assert {"%", "CUs", "cores", "NeuronCores", "AI cores"} <= units
    sim_cluster = world["sim"]["summary"]["cluster"]
    assert {c["unit"]: c["cores_allocated"] for c in summary["compute"]} == {
        u: c["cores_allocated"] for u, c in sim_cluster["compute"].items()
    }
    html = page.overview(summary, [], [], Filters())
    for c in summary["compute"]:
        unit = "cores" if c["unit"] == "%" else c["unit"]
        assert f"{c['cores_allocated']}/{c['cores']} {unit}" in html


def test_demo_show_and_sim_describe_each_allocation_alike(world: World) -> None:
    vendors: Mapping[str, Vendor] = world["vendors"]
    for decision in world["outcome"].decisions:
        if decision.node is None:
            continue
        pod = {"metadata": {"annotations": dict(decision.annotations)}, "spec": {}}
        shown = [text.split(") ", 1)[1] for _, text in slices_of(pod, {}, vendors)]
        table = _devices(decision.annotations, vendors)
        assert shown and all(s in table for s in shown), (decision.pod, shown, table)


def test_finished_init_containers_count_in_no_bar() -> None:
    from hami.api.types import ContainerDevice
    from hami.core.model import Device
    from hami.vendors.nvidia import NvidiaVendor
    from hami.webui.snapshot import PodEntry

    gpu = Device(uuid="g", vendor="NVIDIA", type="T4", count=10, memory=23028, cores=100)
    init, app = ContainerDevice("g", "NVIDIA", 12000, 50), ContainerDevice("g", "NVIDIA", 12271, 50)
    placed = PlacedPod("ns/p", "n", {"NVIDIA": ((init,), (app,))}, init_count=1, init_done=True)
    pod = PodEntry("ns", "p", "Running", "n", placed, None)
    holders = views._holders([pod], {"g": gpu}, VendorNames({"NVIDIA": NvidiaVendor()}))
    assert [h["memory_mib"] for h in holders["g"]] == [12271]
    running = PlacedPod("ns/p", "n", placed.devices, init_count=1, init_done=False)
    holders = views._holders(
        [PodEntry("ns", "p", "Pending", "n", running, None)],
        {"g": gpu},
        VendorNames({"NVIDIA": NvidiaVendor()}),
    )
    assert [h["memory_mib"] for h in holders["g"]] == [12000, 12271]


def test_a_pods_whole_card_slice_is_the_card_in_the_metrics(world: World) -> None:
    from hami.core import accounting

    vendors: Mapping[str, Vendor] = world["vendors"]
    outcome = world["outcome"]
    decision = next(d for d in outcome.decisions if d.pod == "demo/supa")
    assert decision.node is not None  # the demo places every pod
    placed = accounting.placed_pod(decision.pod, decision.node, decision.annotations, vendors, 0)
    assert placed is not None
    cache = _Cache(outcome.view, vendors, placed={decision.node: [placed]})
    samples = [
        s
        for m in CacheCollector(cache).collect()
        for s in m.samples
        if s.labels.get("pod") == "supa"
    ]
    memory = [s.value for s in samples if s.name.startswith("hami_vgpu_memory")]
    assert memory == [65536 * MIB], samples


def test_a_pods_slices_read_as_its_vendor_says(world: World) -> None:
    snapshot = world["snapshot"]
    names: VendorNames = world["names"]
    for pod_name, memory, cores, unit in (("supa", 65536, 100, "%"), ("rocm", 16384, 76, "CUs")):
        pod = snapshot.pod("demo", pod_name)
        assert pod is not None
        doc: dict[str, Any] = views.pod_doc(pod, names, views.pod_devices(snapshot, pod))
        (one,) = doc["slices"]
        assert (one["memory_mib"], one["cores"], one["cores_unit"]) == (memory, cores, unit)
