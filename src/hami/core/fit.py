"""Fitting one pod onto one node (wire-format.md §3.5–§3.6), for every vendor it asks for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hami.api import keys
from hami.api.types import ContainerDevice
from hami.core import accounting
from hami.core.model import ContainerRequests, DeviceUsage, MigReservation, Node, PodRequest
from hami.core.policy import device_score, try_order
from hami.core.status import DEVICE_TYPE_NOT_FOUND, Reason, Unfit
from hami.core.vendor import Candidate, FitContext, Pick, QuotaRoom, Vendor

PodPicks = tuple[tuple[Pick, ...], ...]  # one entry per container


@dataclass(frozen=True, slots=True)
class NodeFit:
    """A pod fits a node: the chosen devices and the usage it adds."""

    node: str
    picks: Mapping[str, PodPicks]  # vendor → per container
    delta: Mapping[str, DeviceUsage]  # collapsed usage the pod adds, by device UUID

    def devices(self, vendor: str) -> tuple[tuple[ContainerDevice, ...], ...]:
        return tuple(tuple(p.device for p in c) for c in self.picks.get(vendor, ()))

    def task_classes(self) -> dict[str, str]:
        """Vendor → the pod's task class there (`PlacedPod.task_classes`), where a pick has one."""
        return {
            vendor: pick.task_class
            for vendor, containers in self.picks.items()
            for container in containers
            for pick in container
            if pick.task_class
        }


@dataclass(slots=True)
class _Held:
    """A pod's collapsed memory/cores so far, per vendor, for quota checks."""

    app_memory: int = 0
    app_cores: int = 0
    init_memory: int = 0
    init_cores: int = 0


def _positions_by_vendor(node: Node) -> dict[str, list[int]]:
    by_vendor: dict[str, list[int]] = {}
    for position, device in enumerate(node.devices):
        by_vendor.setdefault(device.vendor, []).append(position)
    return by_vendor


def _mig_relaxed(node: Node, positions: Sequence[int], pod: PodRequest) -> bool:
    """A MIG GPU can host several instances, so fewer GPUs than requested may still fit."""
    mode = pod.options.vgpu_mode
    if mode is not None and keys.MODE_MIG not in mode:
        return False
    return any(node.devices[p].mode == keys.MODE_MIG for p in positions)


def fit_container(
    node: Node,
    usage: Sequence[DeviceUsage],
    requests: ContainerRequests,
    pod: PodRequest,
    vendors: Mapping[str, Vendor],
    contexts: Mapping[str, FitContext],
) -> dict[str, tuple[Pick, ...]] | Unfit:
    """Choose devices for one container's requests on ``usage`` (which it does not change)."""
    by_vendor = _positions_by_vendor(node)
    opts = pod.options
    chosen: dict[str, tuple[Pick, ...]] = {}
    work = list(usage)
    for request in requests:
        vendor = vendors.get(request.vendor)
        if vendor is None:
            return Unfit.because(DEVICE_TYPE_NOT_FOUND)
        positions = by_vendor.get(request.vendor, [])
        if request.nums > len(positions) and not _mig_relaxed(node, positions, pod):
            return Unfit.because(Reason.NODE_INSUFFICIENT_DEVICE)
        scores = [0.0] * len(work)
        for p in positions:
            scores[p] = device_score(node.devices[p], work[p], requests, opts.weights)
        order = try_order(positions, node.devices, work, scores, opts.gpu_policy, opts.numa_bind)
        candidates = [
            Candidate(p, node.devices[p], work[p], node.devices[p].uuid in node.cordoned)
            for p in order
        ]
        result = vendor.fit(candidates, request, contexts[request.vendor])
        if isinstance(result, Unfit):
            return result
        chosen[request.vendor] = result
        for pick in result:
            work[pick.position] = work[pick.position].plus(
                pick.slots, pick.device.usedmem, pick.device.usedcores, pick.mig, pick.task_class
            )
    return chosen


def fit_pod(
    node: Node,
    usage: Sequence[DeviceUsage],
    pod: PodRequest,
    vendors: Mapping[str, Vendor],
    quota: Mapping[str, QuotaRoom] | None = None,
) -> NodeFit | Unfit:
    """Place every container of ``pod`` on ``node``: init containers each on their own, app
    containers cumulatively; the result's delta is the collapsed usage (§7.3).

    Each vendor's fit sees (`FitContext.earlier`) its picks for every earlier container, init
    containers included, as HAMi's Fit sees the pod's allocation so far.
    """
    held = {v: _Held() for v in pod.vendors()}
    earlier: dict[str, tuple[Pick, ...]] = {}
    rooms = quota or {}
    containers: list[dict[str, tuple[Pick, ...]]] = []
    app_usage = list(usage)
    for position, requests in enumerate(pod.containers):
        is_init = position < pod.init_count
        if not requests:
            containers.append({})
            continue
        contexts = {
            v: _context(pod, held[v], rooms.get(v), is_init, earlier.get(v, ())) for v in held
        }
        base = usage if is_init else app_usage
        result = fit_container(node, base, requests, pod, vendors, contexts)
        if isinstance(result, Unfit):
            return result
        containers.append(result)
        for vendor_key, picks in result.items():
            _account(held[vendor_key], picks, is_init)
            earlier[vendor_key] = earlier.get(vendor_key, ()) + picks
            if not is_init:
                for pick in picks:
                    app_usage[pick.position] = app_usage[pick.position].plus(
                        pick.slots,
                        pick.device.usedmem,
                        pick.device.usedcores,
                        pick.mig,
                        pick.task_class,
                    )
    return _node_fit(node, pod, containers)


def _context(
    pod: PodRequest,
    held: _Held,
    room: QuotaRoom | None,
    is_init: bool,
    earlier: tuple[Pick, ...],
) -> FitContext:
    return FitContext(
        options=pod.options,
        policy=pod.options.gpu_policy,
        quota_room=room or QuotaRoom(),
        held_memory=0 if is_init else held.app_memory,
        held_cores=0 if is_init else held.app_cores,
        floor_memory=held.init_memory,
        floor_cores=held.init_cores,
        annotations=pod.annotations,
        earlier=earlier,
    )


def _account(held: _Held, picks: Sequence[Pick], is_init: bool) -> None:
    memory = sum(p.device.usedmem for p in picks)
    cores = sum(p.device.usedcores for p in picks)
    if is_init:
        held.init_memory = max(held.init_memory, memory)
        held.init_cores = max(held.init_cores, cores)
    else:
        held.app_memory += memory
        held.app_cores += cores


def _node_fit(
    node: Node, pod: PodRequest, containers: list[dict[str, tuple[Pick, ...]]]
) -> NodeFit:
    vendor_keys = sorted(pod.vendors())
    picks = {v: tuple(c.get(v, ()) for c in containers) for v in vendor_keys}
    flat = [tuple(p.device for v in vendor_keys for p in c.get(v, ())) for c in containers]
    mig: list[tuple[str, MigReservation]] = [
        (p.device.uuid, p.mig) for c in containers for ps in c.values() for p in ps if p.mig
    ]
    slots = None
    if any(p.slots != 1 for c in containers for ps in c.values() for p in ps):
        slots = [tuple(p.slots for v in vendor_keys for p in c.get(v, ())) for c in containers]
    classes = {
        p.device.uuid: p.task_class
        for c in containers
        for ps in c.values()
        for p in ps
        if p.task_class
    }
    delta = accounting.collapse(flat, pod.init_count, mig=mig, slots=slots, classes=classes)
    return NodeFit(node=node.name, picks=picks, delta=delta)
