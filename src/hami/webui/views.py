"""The JSON documents of the web UI's API (docs/api.md), from a `Snapshot`. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from hami.core.cluster import ClusterView, NodeState
from hami.core.model import Device, DeviceUsage
from hami.core.vendor import Vendor
from hami.explain import Explanation, explain
from hami.sim import mig
from hami.sim.run import fragmentation, median_request
from hami.webui.source import NodeInfo, PodInfo, Snapshot, slices

API_VERSION = "v1"


@dataclass(frozen=True, slots=True)
class Filters:
    """Query filters; empty strings match everything."""

    namespace: str = ""
    node: str = ""
    vendor: str = ""
    model: str = ""

    def device(self, device: Device) -> bool:
        return (not self.vendor or device.vendor.lower() == self.vendor.lower()) and (
            not self.model or self.model.lower() in device.type.lower()
        )

    def node_ok(self, info: NodeInfo) -> bool:
        if self.node and info.name != self.node:
            return False
        if self.vendor or self.model:
            return any(self.device(d) for d in info.node.devices)
        return True

    def pod_ok(self, pod: PodInfo) -> bool:
        if self.namespace and pod.namespace != self.namespace:
            return False
        return not self.node or pod.node == self.node


def _total(docs: Iterable[Mapping[str, object]], key: str) -> int:
    return sum(cast(int, d[key]) for d in docs)


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


# --- devices and nodes -------------------------------------------------------------------------


def _holders(snapshot: Snapshot, node: str) -> dict[str, list[dict[str, object]]]:
    """Per device UUID, the pods' slices on it."""
    found: dict[str, list[dict[str, object]]] = {}
    for pod in snapshot.pods:
        if pod.placed is None or pod.placed.node != node:
            continue
        names = pod.request.container_names if pod.request else ()
        for position, _vendor, device in slices(pod.placed):
            container = names[position] if position < len(names) else str(position)
            found.setdefault(device.uuid, []).append(
                {
                    "pod": pod.key,
                    "container": container,
                    "memory_mib": device.usedmem,
                    "cores": device.usedcores,
                }
            )
    return found


def device_doc(
    device: Device,
    usage: DeviceUsage,
    cordoned: bool,
    pods: list[dict[str, object]],
    mig_gpu: mig.MigGpu | None = None,
) -> dict[str, object]:
    """One device; ``mig`` is None, or for a MIG-mode GPU its slices and instances."""
    return {
        "uuid": device.uuid,
        "index": device.index,
        "vendor": device.vendor,
        "model": device.type,
        "mode": device.mode,
        "numa": device.numa,
        "health": device.health,
        "cordoned": cordoned,
        "memory_mib": device.memory,
        "memory_allocated_mib": usage.usedmem,
        "cores": device.cores,
        "cores_allocated": usage.usedcores,
        "slots": device.count,
        "slots_used": usage.used,
        "pods": pods,
        "mig": _mig_doc(mig_gpu),
    }


def _mig_doc(gpu: mig.MigGpu | None) -> dict[str, object] | None:
    if gpu is None:
        return None
    doc = gpu.doc()
    return {k: doc[k] for k in ("slices", "slices_used", "slice_map", "instances")}


def _usage(snapshot: Snapshot, info: NodeInfo) -> tuple[DeviceUsage, ...]:
    state = snapshot.view.get(info.name)
    return state.usage if state is not None else tuple(DeviceUsage() for _ in info.node.devices)


def node_doc(snapshot: Snapshot, info: NodeInfo, filters: Filters = Filters()) -> dict[str, object]:
    holders = _holders(snapshot, info.name)
    placed = [p.placed for p in snapshot.pods if p.placed is not None]
    gpus = {g.uuid: g for g in mig.mig_gpus([info.node], placed)}
    devices = [
        device_doc(d, u, d.uuid in info.node.cordoned, holders.get(d.uuid, []), gpus.get(d.uuid))
        for d, u in zip(info.node.devices, _usage(snapshot, info), strict=True)
        if filters.device(d)
    ]
    return {
        "name": info.name,
        "registered": bool(info.node.devices),
        "problem": info.problem,
        "labels": dict(info.labels),
        "memory_mib": _total(devices, "memory_mib"),
        "memory_allocated_mib": _total(devices, "memory_allocated_mib"),
        "cores": _total(devices, "cores"),
        "cores_allocated": _total(devices, "cores_allocated"),
        "devices": devices,
    }


def nodes_doc(snapshot: Snapshot, filters: Filters) -> list[dict[str, object]]:
    return [node_doc(snapshot, n, filters) for n in snapshot.nodes if filters.node_ok(n)]


# --- the overview ------------------------------------------------------------------------------


def _models(states: Iterable[NodeState], filters: Filters) -> list[dict[str, object]]:
    groups: dict[tuple[str, str], list[int]] = {}
    for state in states:
        for device, usage in zip(state.node.devices, state.usage, strict=True):
            if not filters.device(device):
                continue
            acc = groups.setdefault((device.vendor, device.type), [0, 0, 0, 0, 0])
            acc[0] += 1
            acc[1] += device.memory
            acc[2] += usage.usedmem
            acc[3] += device.cores
            acc[4] += usage.usedcores
    return [
        {
            "vendor": vendor,
            "model": model,
            "devices": n,
            "memory_mib": mem,
            "memory_allocated_mib": used_mem,
            "cores": cores,
            "cores_allocated": used_cores,
        }
        for (vendor, model), (n, mem, used_mem, cores, used_cores) in sorted(groups.items())
    ]


def summary_doc(snapshot: Snapshot, filters: Filters) -> dict[str, object]:
    nodes = [n for n in snapshot.nodes if filters.node_ok(n)]
    names = {n.name for n in nodes}
    states = [s for s in snapshot.view.states() if s.node.name in names]
    models = _models(states, filters)
    memory = _total(models, "memory_mib")
    used_mem = _total(models, "memory_allocated_mib")
    cores = _total(models, "cores")
    used_cores = _total(models, "cores_allocated")
    pods = [p for p in snapshot.pods if filters.pod_ok(p)]
    requests = [p.request for p in snapshot.pods if p.request is not None]
    return {
        "api_version": API_VERSION,
        "taken_at": snapshot.taken_at,
        "nodes": len(nodes),
        "nodes_registered": len(states),
        "devices": _total(models, "devices"),
        "memory_mib": memory,
        "memory_allocated_mib": used_mem,
        "memory_free_mib": memory - used_mem,
        "memory_allocated_pct": _pct(used_mem, memory),
        "cores": cores,
        "cores_allocated": used_cores,
        "cores_allocated_pct": _pct(used_cores, cores),
        "pods_placed": sum(1 for p in pods if p.placed is not None),
        "pods_pending": sum(1 for p in pods if p.pending),
        "by_model": models,
        "fragmentation": fragmentation(ClusterView.of(states), median_request(requests)),
        "notices": list(snapshot.notices),
    }


# --- pods --------------------------------------------------------------------------------------


def _limits(pod: PodInfo) -> list[dict[str, object]]:
    if pod.request is None:
        return []
    names = pod.request.container_names
    return [
        {
            "container": names[i] if i < len(names) else str(i),
            "vendor": r.vendor,
            "devices": r.nums,
            "memory_mib": r.memreq,
            "memory_pct": None if r.memreq or r.mem_pct == 101 else r.mem_pct,
            "cores": r.coresreq,
        }
        for i, c in enumerate(pod.request.containers)
        for r in c
    ]


def pod_doc(pod: PodInfo) -> dict[str, object]:
    names = pod.request.container_names if pod.request else ()
    slices_ = [
        {
            "container": names[i] if i < len(names) else str(i),
            "vendor": vendor,
            "uuid": d.uuid,
            "memory_mib": d.usedmem,
            "cores": d.usedcores,
        }
        for i, vendor, d in (slices(pod.placed) if pod.placed else [])
    ]
    return {
        "namespace": pod.namespace,
        "name": pod.name,
        "phase": pod.phase,
        "node": pod.node,
        "pending": pod.pending,
        "problem": pod.problem,
        "limits": _limits(pod),
        "slices": slices_,
        "mig": _pod_mig(pod, names),
    }


def _pod_mig(pod: PodInfo, names: Sequence[str]) -> list[dict[str, object]]:
    """The pod's MIG instances: GPU, container name, profile, placement, identity."""
    found = mig.instances(pod.key, pod.placed.mig) if pod.placed else []
    return [
        {
            **i.doc(),
            "gpu_uuid": uuid,
            "container": names[i.container] if i.container < len(names) else str(i.container),
        }
        for uuid, i in found
    ]


def pods_doc(snapshot: Snapshot, filters: Filters, phase: str = "") -> list[dict[str, object]]:
    pods = [p for p in snapshot.pods if filters.pod_ok(p)]
    if phase == "pending":
        pods = [p for p in pods if p.pending]
    elif phase == "placed":
        pods = [p for p in pods if p.placed is not None]
    return [pod_doc(p) for p in pods]


def explain_pod(snapshot: Snapshot, pod: PodInfo, vendors: Mapping[str, Vendor]) -> Explanation:
    """Why a pending pod fits nowhere, against the snapshot's view (every node a candidate)."""
    assert pod.request is not None
    return explain(pod.request, snapshot.view, vendors, candidates=snapshot.node_names)
