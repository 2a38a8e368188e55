"""Running a simulation: place pods one at a time and summarise the cluster afterwards."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from hami.core import accounting
from hami.core import migview as mig
from hami.core.capacity import fragmentation, median_request, ratio
from hami.core.cluster import ClusterView, NodeState
from hami.core.decide import Decision, commit, decide
from hami.core.dra import placement as dra_placement
from hami.core.dra import records as dra_records
from hami.core.model import PodRequest
from hami.core.vendor import Held, Vendor
from hami.sim.load import Cluster


@dataclass(frozen=True, slots=True)
class Outcome:
    decisions: tuple[Decision, ...]
    view: ClusterView
    unknown_uuids: tuple[str, ...]
    placed: tuple[accounting.PlacedPod, ...] = ()  # the cluster file's pods
    warnings: tuple[str, ...] = ()  # nodes skipped as the scheduler skips them
    # how each vendor's allocations read (units, whole-card holds): the summary's figures
    vendors: Mapping[str, Vendor] = field(default_factory=dict)
    # DRA mode: its nodes (published devices and what the claims consume) and allocations
    dra_states: tuple[NodeState, ...] = ()
    dra_allocations: tuple[dra_records.Allocation, ...] = ()


def initial_view(
    cluster: Cluster, vendors: Mapping[str, Vendor] | None = None
) -> tuple[ClusterView, tuple[str, ...]]:
    by_node: dict[str, list[accounting.PlacedPod]] = {}
    for pod in cluster.placed:
        by_node.setdefault(pod.node, []).append(pod)
    states = []
    unknown: list[str] = []
    dra_nodes = set(dra_placement.devices(cluster.dra_slices))
    for node in cluster.nodes:
        if node.name in dra_nodes and not node.devices:
            continue  # a DRA node: kube-scheduler's, shown from its slices
        usage, missing = accounting.node_usage(node, by_node.get(node.name, []), vendors)
        unknown.extend(missing)
        states.append(NodeState.of(node, usage))
    return ClusterView.of(states), tuple(unknown)


def simulate(
    cluster: Cluster, pods: Sequence[PodRequest], vendors: Mapping[str, Vendor]
) -> Outcome:
    view, unknown = initial_view(cluster, vendors)
    decisions = []
    for pod in pods:
        decision = decide(pod, view, vendors)
        view = commit(view, decision)
        decisions.append(decision)
    return Outcome(
        decisions=tuple(decisions),
        view=view,
        unknown_uuids=unknown,
        placed=cluster.placed,
        warnings=cluster.warnings,
        vendors=vendors,
        dra_states=tuple(dra_placement.node_states(cluster.dra_claims, cluster.dra_slices)),
        dra_allocations=tuple(dra_records.allocations(cluster.dra_claims)),
    )


def node_summary(
    state: NodeState, vendors: Mapping[str, Vendor] | None = None
) -> dict[str, object]:
    """One node's totals as its vendors read them (`Vendor.held`: a whole-card hold is the
    card); ``cores`` over the devices counted in % of a card, ``compute`` per unit."""
    memory = sum(d.memory for d in state.node.devices)
    usedmem = 0
    compute: dict[str, list[int]] = {}
    for device, usage in zip(state.node.devices, state.usage, strict=True):
        vendor = (vendors or {}).get(device.vendor)
        held = (
            vendor.held(device, usage)
            if vendor
            else Held(usage.usedmem, usage.usedcores, device.cores)
        )
        usedmem += held.memory
        acc = compute.setdefault(held.unit, [0, 0])
        acc[0] += held.cores_total
        acc[1] += held.cores
    cores, usedcores = compute.get("%", [0, 0])
    return {
        "devices": len(state.node.devices),
        "memory_mib": memory,
        "memory_allocated_mib": usedmem,
        "memory_allocated_pct": ratio(usedmem, memory),
        "cores": cores,
        "cores_allocated": usedcores,
        "cores_allocated_pct": ratio(usedcores, cores),
        "compute": {
            unit: {"cores": c, "cores_allocated": u} for unit, (c, u) in sorted(compute.items())
        },
        "tasks": sum(u.used for u in state.usage),
    }


def report(outcome: Outcome, pods: Sequence[PodRequest], now: datetime) -> dict[str, object]:
    """The `--format json` document."""
    results = [
        {
            "pod": d.pod,
            "node": d.node,
            "annotations": d.annotations_at(now),
            "reasons": d.failed_nodes(),
            **({} if d.wants_devices else {"note": "no device request; left to kube-scheduler"}),
        }
        for d in outcome.decisions
    ]
    nodes = {
        s.node.name: node_summary(s, outcome.vendors)
        for s in sorted(outcome.view.states(), key=_name)
    }
    for state in outcome.dra_states:
        nodes[state.node.name] = {**node_summary(state), "mode": dra_placement.MODE}
    migs: dict[str, list[dict[str, object]]] = {}
    for gpu in mig_gpus(outcome):
        migs.setdefault(gpu.node, []).append(gpu.doc())
    for name, docs in migs.items():
        nodes[name]["mig"] = docs
    totals = {k: sum(int(n[k]) for n in nodes.values()) for k in _SUMMED}  # type: ignore[call-overload]
    compute: dict[str, dict[str, int]] = {}
    for node in nodes.values():
        for unit, amounts in cast(Mapping[str, Mapping[str, int]], node["compute"]).items():
            acc = compute.setdefault(unit, {"cores": 0, "cores_allocated": 0})
            for key, value in amounts.items():
                acc[key] += value
    cluster = {
        **totals,
        "memory_allocated_pct": ratio(totals["memory_allocated_mib"], totals["memory_mib"]),
        "cores_allocated_pct": ratio(totals["cores_allocated"], totals["cores"]),
        "compute": dict(sorted(compute.items())),
        **fragmentation(outcome.view, median_request(pods)),
    }
    placed = sum(1 for d in outcome.decisions if d.placed)
    asked = sum(1 for d in outcome.decisions if d.wants_devices)
    summary: dict[str, object] = {
        "pods": len(outcome.decisions),
        "placed": placed,
        "failed": asked - placed,
        "nodes": nodes,
        "cluster": cluster,
    }
    if outcome.dra_states or outcome.dra_allocations:
        summary["dra_allocations"] = [
            {
                "namespace": a.namespace,
                "claim": a.claim,
                "pod": a.owner,
                "node": a.node,
                "device": a.device,
                "memory_mib": a.memory_mib,
                "cores": a.cores,
            }
            for a in outcome.dra_allocations
        ]
    if outcome.unknown_uuids:
        summary["unknown_device_uuids"] = sorted(set(outcome.unknown_uuids))
    if outcome.warnings:
        summary["warnings"] = list(outcome.warnings)
    return {"results": results, "summary": summary}


_SUMMED = ("devices", "memory_mib", "memory_allocated_mib", "cores", "cores_allocated", "tasks")


def mig_gpus(outcome: Outcome) -> list[mig.MigGpu]:
    """The MIG GPUs after placement: the cluster file's reservations (with the identities
    they carry) and the new ones of the placed pods."""
    by_gpu: dict[tuple[str, str], list[mig.MigInstance]] = {}
    for pod in outcome.placed:
        for uuid, instance in mig.instances(pod.key, pod.mig):
            by_gpu.setdefault((pod.node, uuid), []).append(instance)
    for d in outcome.decisions:
        if d.node is not None:
            for uuid, instance in mig.from_annotations(d.pod, d.annotations):
                by_gpu.setdefault((d.node, uuid), []).append(instance)
    states = sorted(outcome.view.states(), key=_name)
    return mig.gpus_of((s.node for s in states), by_gpu)


def _name(state: NodeState) -> str:
    return state.node.name
