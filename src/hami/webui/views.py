"""The JSON documents of the web UI's API (docs/api.md), from a `Snapshot`. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import cast

from hami.core import migview as mig
from hami.core.accounting import PlacedPod
from hami.core.capacity import fragmentation, median_request
from hami.core.cluster import ClusterView, NodeState
from hami.core.dra import placement as dra_placement
from hami.core.explain import Explanation, explain
from hami.core.model import Device, DeviceUsage
from hami.core.quota import pod_usage
from hami.core.vendor import Vendor
from hami.webui.decode import core_view
from hami.webui.drapending import DraExplainer, DraWhy
from hami.webui.names import VendorNames
from hami.webui.snapshot import NodeEntry, PodEntry, Snapshot, slices

API_VERSION = "v1"


@dataclass(frozen=True, slots=True)
class Filters:
    """Query filters; empty strings match everything.

    ``vendor`` is a vendor *name* (Huawei, Ascend, Enflame, NVIDIA — `VendorNames`), resolved to
    the vendor keys it stands for in ``vendor_keys``; ``model`` is a device model's exact name
    (case aside: ``NVIDIA A10`` is not ``NVIDIA A100``). ``namespace`` also scopes usage: with it,
    allocation counts only that namespace's pods (`scoped`).
    """

    namespace: str = ""
    node: str = ""
    vendor: str = ""
    model: str = ""
    vendor_keys: frozenset[str] | None = None  # None: ``vendor`` compared with the key itself

    @classmethod
    def of(
        cls, names: VendorNames, namespace: str = "", node: str = "", vendor: str = "",
        model: str = "",
    ) -> Filters:  # fmt: skip
        keys = names.keys_named(vendor) if vendor else None
        return cls(namespace.strip(), node.strip(), vendor.strip(), model.strip(), keys)

    def vendor_ok(self, key: str) -> bool:
        if not self.vendor:
            return True
        if self.vendor_keys is None:
            return key.lower() == self.vendor.lower()
        return key in self.vendor_keys

    def device(self, device: Device) -> bool:
        return self.vendor_ok(device.vendor) and (
            not self.model or self.model.lower() == device.type.lower()
        )

    def node_ok(self, info: NodeEntry) -> bool:
        if self.node and info.name != self.node:
            return False
        if self.vendor or self.model:
            return any(self.device(d) for d in info.node.devices)
        return True

    def pod_ok(self, pod: PodEntry, models: Mapping[str, str] | None = None) -> bool:
        """Namespace and node; a vendor filter keeps pods asking for (or holding) one of its
        devices; a model filter keeps pods holding a device of that model (``models``: device
        UUID → model) or, while pending, asking for the vendor of such a device."""
        if self.namespace and pod.namespace != self.namespace:
            return False
        if self.node and pod.node != self.node:
            return False
        vendors = _pod_vendors(pod)
        if self.vendor and not any(self.vendor_ok(v) for v in vendors):
            return False
        if self.model and models is not None and pod.placed is not None:
            held = {models.get(d.uuid, "").lower() for _, _, d in slices(pod.placed)}
            return self.model.lower() in held
        return True


def _pod_vendors(pod: PodEntry) -> set[str]:
    found = set(pod.placed.devices) if pod.placed else set()
    if pod.dra is not None:  # waiting for DRA devices, shown under this vendor
        found.add(dra_placement.VENDOR)
    return found | (set(pod.request.vendors()) if pod.request else set())


def device_models(snapshot: Snapshot) -> dict[str, str]:
    """Device UUID → model, over every registered device."""
    return {d.uuid: d.type for n in snapshot.nodes for d in n.node.devices}


def _total(docs: Iterable[Mapping[str, object]], key: str) -> int:
    return sum(cast(int, d[key]) for d in docs)


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


# --- devices and nodes -------------------------------------------------------------------------


def pods_by_node(snapshot: Snapshot) -> dict[str, list[PodEntry]]:
    """Placed pods grouped by the node holding their devices (one pass over the pods)."""
    found: dict[str, list[PodEntry]] = {}
    for pod in snapshot.pods:
        if pod.placed is not None:
            found.setdefault(pod.placed.node, []).append(pod)
    return found


def _holders(
    pods: Iterable[PodEntry], devices: Mapping[str, Device], names: VendorNames
) -> dict[str, list[dict[str, object]]]:
    """Per device UUID, the slices of ``pods`` (the placed pods of one node) on it, each as its
    vendor reads it (a whole-card hold is the card); init containers that have all finished
    hold nothing, as the scheduler releases their usage."""
    found: dict[str, list[dict[str, object]]] = {}
    for pod in pods:
        placed = pod.placed
        if placed is None:
            continue
        containers = pod.request.container_names if pod.request else ()
        for position, _vendor, entry in slices(placed):
            if position < placed.init_count and placed.init_done:
                continue
            container = containers[position] if position < len(containers) else str(position)
            device = devices.get(entry.uuid)
            one = DeviceUsage(used=1, usedmem=entry.usedmem, usedcores=entry.usedcores)
            held = names.held(device, one) if device is not None else None
            found.setdefault(entry.uuid, []).append(
                {
                    "pod": pod.key,
                    "container": container,
                    "memory_mib": held.memory if held else entry.usedmem,
                    "cores": held.cores if held else entry.usedcores,
                }
            )
    return found


def device_doc(
    device: Device,
    usage: DeviceUsage,
    cordoned: bool,
    pods: list[dict[str, object]],
    mig_gpu: mig.MigGpu | None = None,
    names: VendorNames | None = None,
    node: str = "",
) -> dict[str, object]:
    """One device; ``mig`` is None, or for a MIG-mode GPU its slices and instances.
    ``vendor`` is the vendor key, ``vendor_name`` its name, ``label`` e.g. ``NPU 1``."""
    names = names or VendorNames({})
    named = names.get(device.vendor)
    held = names.held(device, usage)
    return {
        "uuid": device.uuid,
        "node": node,
        "index": device.index,
        "label": f"{named.word} {device.index}",
        "vendor": device.vendor,
        "vendor_name": named.name,
        "model": device.type,
        "mode": device.mode,
        "numa": device.numa,
        "health": device.health,
        "cordoned": cordoned,
        "memory_mib": device.memory,
        "memory_allocated_mib": held.memory,
        "cores": held.cores_total,
        "cores_allocated": held.cores,
        "cores_unit": held.unit,
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


def _usage(snapshot: Snapshot, info: NodeEntry) -> tuple[DeviceUsage, ...]:
    state = snapshot.view.get(info.name)
    return state.usage if state is not None else tuple(DeviceUsage() for _ in info.node.devices)


def node_doc(
    snapshot: Snapshot,
    info: NodeEntry,
    filters: Filters = Filters(),
    names: VendorNames | None = None,
    on_node: Sequence[PodEntry] | None = None,
) -> dict[str, object]:
    """One node; ``on_node``: its placed pods when the caller grouped them (`pods_by_node`)."""
    if on_node is None:
        on_node = pods_by_node(snapshot).get(info.name, [])
    named = names or VendorNames({})
    holders = _holders(on_node, {d.uuid: d for d in info.node.devices}, named)
    placed = [p.placed for p in on_node if p.placed is not None]
    gpus = {g.uuid: g for g in mig.mig_gpus([info.node], placed)}
    devices = [
        device_doc(
            d,
            u,
            d.uuid in info.node.cordoned,
            holders.get(d.uuid, []),
            gpus.get(d.uuid),
            named,
            info.name,
        )
        for d, u in zip(info.node.devices, _usage(snapshot, info), strict=True)
        if filters.device(d)
    ]
    return {
        "name": info.name,
        "registered": bool(info.node.devices),
        "problem": info.problem,
        "labels": dict(info.labels),
        "vendors": sorted({named.name(cast(str, d["vendor"])) for d in devices}),
        "models": sorted({cast(str, d["model"]) for d in devices}),
        "pods": len({cast(str, p["pod"]) for d in devices for p in _docs(d, "pods")}),
        "healthy": all(d["health"] for d in devices),
        "memory_mib": _total(devices, "memory_mib"),
        "memory_allocated_mib": _total(devices, "memory_allocated_mib"),
        **_compute(devices),
        "devices": devices,
    }


def nodes_doc(
    snapshot: Snapshot, filters: Filters, names: VendorNames | None = None
) -> list[dict[str, object]]:
    by_node = pods_by_node(snapshot)
    return [
        node_doc(snapshot, n, filters, names, by_node.get(n.name, []))
        for n in snapshot.nodes
        if filters.node_ok(n)
    ]


def _compute(docs: Sequence[Mapping[str, object]]) -> dict[str, object]:
    """Compute totals of ``docs`` (devices or model groups), never added across units:
    ``cores``/``cores_allocated`` over the devices counted in % of a card, ``compute`` one
    entry per unit (``%``, ``CUs``, ``NeuronCores``…)."""
    by_unit: dict[str, list[int]] = {}
    for doc in docs:
        acc = by_unit.setdefault(str(doc.get("cores_unit", "%")), [0, 0])
        acc[0] += cast(int, doc["cores"])
        acc[1] += cast(int, doc["cores_allocated"])
    percent = by_unit.get("%", [0, 0])
    return {
        "cores": percent[0],
        "cores_allocated": percent[1],
        "compute": [
            {"unit": unit, "cores": total, "cores_allocated": used}
            for unit, (total, used) in sorted(by_unit.items(), key=lambda kv: kv[0] != "%")
        ],
    }


def _docs(doc: Mapping[str, object], key: str) -> list[Mapping[str, object]]:
    return cast(list[Mapping[str, object]], doc[key])


def scoped(snapshot: Snapshot, filters: Filters, vendors: Mapping[str, Vendor]) -> Snapshot:
    """With a namespace filter, the snapshot as if only that namespace's pods existed: every
    allocation on the page (summary, nodes, devices, history aside) is then the namespace's."""
    if not filters.namespace:
        return snapshot
    pods = tuple(p for p in snapshot.pods if p.namespace == filters.namespace)
    view, _ = core_view(snapshot.nodes, pods, vendors)
    return replace(snapshot, pods=pods, view=view)


# --- the overview ------------------------------------------------------------------------------


def _models(
    states: Iterable[NodeState], filters: Filters, names: VendorNames, by_vendor: bool = False
) -> list[dict[str, object]]:
    """Devices grouped by (vendor name, model), or by vendor name alone (and by compute
    unit: a group never adds one vendor's CUs to another's percent)."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for state in states:
        for device, usage in zip(state.node.devices, state.usage, strict=True):
            if not filters.device(device):
                continue
            held = names.held(device, usage)
            key = (names.name(device.vendor), "" if by_vendor else device.type, held.unit)
            acc = groups.setdefault(key, [0, 0, 0, 0, 0])
            acc[0] += 1
            acc[1] += device.memory
            acc[2] += held.memory
            acc[3] += held.cores_total
            acc[4] += held.cores
    words = {
        names.name(k): names.word(k) for k in {d.vendor for s in states for d in s.node.devices}
    }
    return [
        {
            "vendor": vendor,
            **({} if by_vendor else {"model": model}),
            "word": words.get(vendor, "device"),
            "devices": n,
            "memory_mib": mem,
            "memory_allocated_mib": used_mem,
            "cores": cores,
            "cores_allocated": used_cores,
            "cores_unit": unit,
        }
        for (vendor, model, unit), (n, mem, used_mem, cores, used_cores) in sorted(groups.items())
    ]


def summary_doc(
    snapshot: Snapshot, filters: Filters, names: VendorNames | None = None
) -> dict[str, object]:
    """Counts and allocation; pass a `scoped` snapshot for a namespace filter to scope usage."""
    named = names or VendorNames({})
    nodes = [n for n in snapshot.nodes if filters.node_ok(n)]
    wanted = {n.name for n in nodes}
    states = [s for s in snapshot.view.states() if s.node.name in wanted]
    models = _models(states, filters, named)
    memory = _total(models, "memory_mib")
    used_mem = _total(models, "memory_allocated_mib")
    compute = _compute(models)
    cores, used_cores = cast(int, compute["cores"]), cast(int, compute["cores_allocated"])
    models_of = device_models(snapshot)
    pods = [p for p in snapshot.pods if filters.pod_ok(p, models_of)]
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
        "compute": compute["compute"],
        "pods_placed": sum(1 for p in pods if p.placed is not None),
        "pods_pending": sum(1 for p in pods if p.pending),
        "by_model": models,
        "by_vendor": _models(states, filters, named, by_vendor=True),
        "fragmentation": fragmentation(ClusterView.of(states), median_request(requests)),
        "notices": list(snapshot.notices),
        "stale": snapshot.stale_since is not None,
        "stale_since": snapshot.stale_since,
    }


# --- pods --------------------------------------------------------------------------------------


def _limits(pod: PodEntry) -> list[dict[str, object]]:
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


def pod_doc(
    pod: PodEntry, vendors: VendorNames | None = None, devices: Mapping[str, Device] | None = None
) -> dict[str, object]:
    """One pod; with the ``vendors`` and the cluster's ``devices`` (uuid → device), each slice
    reads as its vendor says it holds (a whole-card hold is the card; ``cores_unit``)."""
    names = pod.request.container_names if pod.request else ()
    slices_ = []
    for i, vendor, d in slices(pod.placed) if pod.placed else []:
        device = (devices or {}).get(d.uuid)
        one = DeviceUsage(used=1, usedmem=d.usedmem, usedcores=d.usedcores)
        held = vendors.held(device, one) if vendors is not None and device is not None else None
        slices_.append(
            {
                "container": names[i] if i < len(names) else str(i),
                "vendor": vendor,
                "uuid": d.uuid,
                "memory_mib": held.memory if held else d.usedmem,
                "cores": held.cores if held else d.usedcores,
                "cores_unit": held.unit if held else "%",
            }
        )
    return {
        "namespace": pod.namespace,
        "name": pod.name,
        "phase": pod.phase,
        "node": pod.node,
        "pending": pod.pending,
        "problem": pod.problem,
        "started": pod.started,
        "memory_mib": sum(cast(int, s["memory_mib"]) for s in slices_),
        "cores": sum(cast(int, s["cores"]) for s in slices_ if s["cores_unit"] == "%"),
        "cards": len({d.uuid for _, _, d in slices(pod.placed)}) if pod.placed else 0,
        "limits": _limits(pod),
        "slices": slices_,
        "mig": _pod_mig(pod, names),
    }


def pod_devices(snapshot: Snapshot, pod: PodEntry) -> dict[str, Device]:
    """The devices of the node holding ``pod``'s slices, by UUID (for `pod_doc`)."""
    info = next((n for n in snapshot.nodes if n.name == pod.node), None)
    return {d.uuid: d for d in info.node.devices} if info is not None else {}


def _pod_mig(pod: PodEntry, names: Sequence[str]) -> list[dict[str, object]]:
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
    models_of = device_models(snapshot)
    pods = [p for p in snapshot.pods if filters.pod_ok(p, models_of)]
    if phase == "pending":
        pods = [p for p in pods if p.pending]
    elif phase == "placed":
        pods = [p for p in pods if p.placed is not None]
    return [pod_doc(p) for p in pods]


def explain_pod(snapshot: Snapshot, pod: PodEntry, vendors: Mapping[str, Vendor]) -> Explanation:
    """Why a pending pod fits nowhere, against the snapshot's view (every node a candidate)."""
    assert pod.request is not None and pod.dra is None
    problems = {n.name: n.problem for n in snapshot.nodes if n.problem}
    return explain(
        pod.request, snapshot.view, vendors, candidates=snapshot.node_names, problems=problems
    )


# --- lists: accelerators, workloads, Pending, namespaces ---------------------------------------


def devices_doc(
    snapshot: Snapshot, filters: Filters, names: VendorNames | None = None
) -> list[dict[str, object]]:
    """Every device of the nodes the filters keep, each with its node's name."""
    return [dict(d) for n in nodes_doc(snapshot, filters, names) for d in _docs(n, "devices")]


def device_of(snapshot: Snapshot, uuid: str) -> NodeEntry | None:
    """The node that registers device ``uuid``."""
    return next((n for n in snapshot.nodes if any(d.uuid == uuid for d in n.node.devices)), None)


def workloads_doc(snapshot: Snapshot, filters: Filters) -> list[dict[str, object]]:
    """Placed GPU pods, each with its totals (memory, cores, cards) and start time."""
    return pods_doc(snapshot, filters, "placed")


def explain_dra(snapshot: Snapshot, pod: PodEntry) -> DraWhy:
    """Why a pending DRA pod's claims are not allocated, as `hami explain` says it."""
    assert pod.dra is not None
    return DraExplainer(snapshot.dra).explain(pod.dra)


def explain_any(
    snapshot: Snapshot, pod: PodEntry, vendors: Mapping[str, Vendor]
) -> Explanation | DraWhy:
    """A pending pod's explanation: from its claims (DRA), else from the decision core."""
    return (
        explain_dra(snapshot, pod) if pod.dra is not None else explain_pod(snapshot, pod, vendors)
    )


def explain_all(
    snapshot: Snapshot, filters: Filters, vendors: Mapping[str, Vendor]
) -> list[tuple[PodEntry, Explanation | DraWhy]]:
    """Every pending pod the filters keep, explained; the DRA ones by one `DraExplainer`,
    without `hami explain`'s lines (a pod's own explanation has them)."""
    models_of = device_models(snapshot)
    pods = [p for p in snapshot.pods if p.pending and filters.pod_ok(p, models_of)]
    dra = DraExplainer(snapshot.dra) if any(p.dra is not None for p in pods) else None
    out: list[tuple[PodEntry, Explanation | DraWhy]] = []
    for p in pods:
        why = dra.explain(p.dra, lines=False) if dra is not None and p.dra is not None else None
        out.append((p, why if why is not None else explain_pod(snapshot, p, vendors)))
    return out


def cause(explanation: Explanation) -> tuple[str, str]:
    """A pending pod's cause: the reason of its largest group, and that group's hint."""
    if explanation.fits:
        return "fits now", f"fits on node {explanation.node}: waiting to be bound"
    if not explanation.groups:
        return "no node has registered devices", "register devices (hami device plugin)"
    group = explanation.groups[0]
    return group.reason, group.hint


def pending_doc(
    snapshot: Snapshot, filters: Filters, vendors: Mapping[str, Vendor]
) -> list[dict[str, object]]:
    """Every Pending GPU pod with explain's answer, grouped by cause (most pods first); a DRA
    pod's cause and summary come from its claims (`hami.webui.drapending`)."""
    groups: dict[str, dict[str, object]] = {}
    for pod, why in explain_all(snapshot, filters, vendors):
        if isinstance(why, DraWhy):
            reason, hint, summary = why.cause, why.hint, why.summary
        else:
            (reason, hint), summary = cause(why), why.summary()
        group = groups.setdefault(reason, {"cause": reason, "pods": []})
        cast(list[object], group["pods"]).append(
            {
                "namespace": pod.namespace,
                "name": pod.name,
                "started": pod.started,
                "summary": summary,
                "hint": hint,
                "explain": why.to_dict(),
            }
        )
    return sorted(groups.values(), key=lambda g: (-len(_docs(g, "pods")), str(g["cause"])))


def namespaces_doc(snapshot: Snapshot, names: VendorNames) -> list[dict[str, object]]:
    """Per namespace: its GPU pods, allocation per vendor name, and hami's quotas on it
    (``quotas``: resource, vendor, used, limit — used as the scheduler sums it)."""
    found: dict[str, dict[str, object]] = {}
    for pod in snapshot.pods:
        doc = found.setdefault(
            pod.namespace,
            {"namespace": pod.namespace, "pods_placed": 0, "pods_pending": 0, "vendors": {}},
        )
        doc["pods_pending"] = cast(int, doc["pods_pending"]) + int(pod.pending)
        if pod.placed is None:
            continue
        doc["pods_placed"] = cast(int, doc["pods_placed"]) + 1
        per_vendor = cast(dict[str, dict[str, int]], doc["vendors"])
        for vendor in pod.placed.devices:  # init/app collapsed, as the quota check sums it
            held = pod_usage(pod.placed, vendor)
            acc = per_vendor.setdefault(
                names.name(vendor), {"memory_allocated_mib": 0, "cores_allocated": 0}
            )
            acc["memory_allocated_mib"] += held.memory
            acc["cores_allocated"] += held.cores
    book = snapshot.quotas
    by_namespace: dict[str, list[PlacedPod]] = {}
    for pod in snapshot.pods:
        if pod.placed is not None:
            by_namespace.setdefault(pod.namespace, []).append(pod.placed)
    lines = book.lines(lambda ns: by_namespace.get(ns, [])) if book is not None else []
    for namespace, resource, used, limit in lines:
        doc = found.setdefault(
            namespace,
            {"namespace": namespace, "pods_placed": 0, "pods_pending": 0, "vendors": {}},
        )
        quota = {"resource": resource, "used": used, "limit": limit, "pct": _pct(used, limit)}
        doc.setdefault("quotas", []).append(quota)  # type: ignore[attr-defined]
    out = []
    for namespace in sorted(found):
        doc = found[namespace]
        doc.setdefault("quotas", [])
        doc["quotas_known"] = book is not None
        doc["vendors"] = [
            {"vendor": v, **u}
            for v, u in sorted(cast(dict[str, dict[str, int]], doc["vendors"]).items())
        ]
        out.append(doc)
    return out
