"""MetaX: whole GPUs (`Metax-GPU`) and sGPU slices (`Metax-SGPU`) (wire-format.md §4.9)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hami.api import annotations as codec
from hami.api import keys
from hami.api.quantity import parse_int_quantity
from hami.api.types import PodDevices
from hami.core.errors import RequestInvalid
from hami.core.model import ContainerRequest, Device, DeviceUsage, Node, PodRequest
from hami.core.policy import SPREAD
from hami.core.slicefit import SliceRules, slice_fit
from hami.core.status import Reason, Unfit
from hami.core.vendor import Candidate, FitContext, Pick, PodAdmission
from hami.vendors import common, resources
from hami.vendors.config import MetaxConfig
from hami.vendors.family import COUNT_ONLY, CapacityRule, Spec, SpecVendor, WholeCardVendor, rules

_WHOLE_MEMORY = 65536
_SGPU_RULES = rules(use_uuid_key=keys.METAX_USE_UUID, nouse_uuid_key=keys.METAX_NOUSE_UUID)
# Online pods take no cores, so none of the core checks apply to them (§4.9).
_ONLINE_RULES = dataclasses.replace(_SGPU_RULES, cores=False)
QOS_MISMATCH = Reason.CARD_QOS_POLICY_MISMATCH
DEFAULT_QOS = "best-effort"
ONLINE = keys.METAX_APP_ONLINE
OFFLINE = keys.METAX_APP_OFFLINE
_TOPOLOGY_NOTE = "topology-aware"  # Pick.note of a topology-aware exclusive pick
# ScoreNode is policy-neutral: HAMi weighs it ±10000 so that it dominates the default score
# under either node policy (§3.11).
_SCORE_WEIGHT = 10000


# --- whole GPU -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetaxGpuDevice(Device):
    """A whole MetaX GPU with the node's topology tables (device count → loss / score)."""

    losses: Mapping[int, int] = field(default_factory=dict)
    scores: Mapping[int, int] = field(default_factory=dict)


GPU_SPEC = Spec(
    key=keys.METAX_GPU_VENDOR,
    name="MetaX",
    word="GPU",
    aliases=("Metax",),
    to_allocate=keys.METAX_GPU_TO_ALLOCATE,
    allocated=keys.METAX_GPU_ALLOCATED,
    lock=None,  # HAMi's whole MetaX GPU binds without a node lock (§3.13)
    names=COUNT_ONLY,
    # No same-card rule: a whole card holds one task, so HAMi's rule (§4.9) made every pod with
    # two GPU containers unschedulable; HAMi itself dropped it later (#2837).
    rules=rules(label=keys.METAX_GPU_VENDOR),
    whole=(0, 100, 100),
    capacity=CapacityRule(uuid="metax", count=1, memory=_WHOLE_MEMORY),
)
SGPU_SPEC = Spec(
    key=keys.METAX_SGPU_VENDOR,
    name="MetaX",
    word="GPU",
    aliases=("Metax",),
    to_allocate=keys.METAX_SGPU_TO_ALLOCATE,
    allocated=keys.METAX_SGPU_ALLOCATED,
    names=("resource_vcount_name", "resource_vmemory_name", "resource_vcore_name"),
    stamps={keys.METAX_PREDICATE_TIME: "unix-nanos"},
)


@dataclass(frozen=True, slots=True)
class MetaxGpuVendor(WholeCardVendor):
    """`Metax-GPU`: exclusive whole cards learnt from node capacity."""

    config: MetaxConfig = field(default_factory=MetaxConfig)
    spec = GPU_SPEC

    def card(
        self, position: int, cards: int, annotations: Mapping[str, str], **fields: Any
    ) -> Device:
        """A card with the node's topology tables."""
        losses = _count_map(annotations, keys.METAX_TOPOLOGY_LOSSES)
        scores = _count_map(annotations, keys.METAX_TOPOLOGY_SCORES)
        return MetaxGpuDevice(**fields, losses=losses, scores=scores)

    def score_node(
        self,
        node: Node,
        before: Sequence[DeviceUsage],
        picks: Sequence[Sequence[Pick]],
        policy: str,
    ) -> float:
        """binpack: 2000 − loss[n]; spread: 2000 − score[n] (n = devices the pod takes)."""
        n = sum(len(c) for c in picks)
        first = next((node.devices[p.position] for c in picks for p in c), None)
        if n == 0 or not isinstance(first, MetaxGpuDevice):
            return 0.0
        table = first.scores if policy == SPREAD else first.losses
        return float(2000 - table[n]) if n in table else 0.0


def _count_map(annotations: Mapping[str, str], key: str) -> Mapping[int, int]:
    value = annotations.get(key)
    return codec.decode_count_map(value, key) if value else {}


# --- sGPU ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetaxSgpuDevice(Device):
    qos_policy: str = ""
    link_zone: int = 0
    model: str = ""


@dataclass(frozen=True, slots=True)
class MetaxSgpuVendor(SpecVendor):
    """`Metax-SGPU`: memory/compute slices with QoS policies and MetaLink zones."""

    config: MetaxConfig = field(default_factory=MetaxConfig)
    spec = SGPU_SPEC

    def admit_pod(
        self, annotations: Mapping[str, str], counts: Sequence[int], where: str
    ) -> dict[str, str]:
        """Pod-level rules: the app class and QoS policy; returns the annotations to add.

        ``counts`` are the sGPU counts of the pod's containers that ask for sGPUs.
        """
        app_class = annotations.get(keys.METAX_APP_CLASS)
        if app_class is not None:
            if app_class not in keys.METAX_APP_CLASSES:
                raise RequestInvalid(
                    where, keys.METAX_APP_CLASS, f"{app_class!r} must be online or offline"
                )
            if any(c != 1 for c in counts):
                raise RequestInvalid(
                    where, self.config.resource_vcount_name, "an app class needs exactly 1 sGPU"
                )
        if app_class == "online":
            return {}
        qos = annotations.get(keys.METAX_QOS_POLICY)
        if qos is None:
            return {keys.METAX_QOS_POLICY: DEFAULT_QOS}
        if qos not in keys.METAX_QOS_POLICIES:
            allowed = ", ".join(keys.METAX_QOS_POLICIES)
            raise RequestInvalid(where, keys.METAX_QOS_POLICY, f"{qos!r} must be one of {allowed}")
        return {}

    def pod_admission(
        self,
        annotations: Mapping[str, str],
        containers: Sequence[Mapping[str, object]],
        where: str,
    ) -> PodAdmission:
        """`admit_pod` over the containers asking for sGPUs (nothing when none does)."""
        name = self.config.resource_vcount_name
        counts = [
            resources.integer(c, name, where) or 0
            for c in containers
            if name in resources.limits(c)
        ]
        if not counts:
            return PodAdmission()
        return PodAdmission(annotations=self.admit_pod(annotations, counts, where))

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        cfg = self.config
        limits = resources.limits(container)
        nums = resources.bounded(
            {"resources": {"limits": limits}}, cfg.resource_vcount_name, where, 0
        )
        if not nums:
            return None
        memory = _vmemory(limits.get(cfg.resource_vmemory_name), cfg.resource_vmemory_name, where)
        cores = resources.bounded(
            {"resources": {"limits": limits}}, cfg.resource_vcore_name, where, 0, 100
        )
        return ContainerRequest(
            vendor=self.key,
            nums=nums,
            memreq=memory,
            mem_pct=100 if memory == 0 else 0,
            coresreq=100 if cores is None else cores,
        )

    def node_devices(self, annotations: Mapping[str, str]) -> tuple[Device, ...]:
        value = annotations.get(keys.METAX_SGPU_REGISTER)
        if not value:
            return ()
        return tuple(
            MetaxSgpuDevice(
                uuid=gpu.uuid,
                vendor=self.key,
                type=self.key,
                count=gpu.total_dev_count,
                memory=gpu.total_vram,
                cores=gpu.total_compute,
                numa=gpu.numa,
                health=gpu.healthy,
                index=i,
                qos_policy=gpu.qos_policy,
                link_zone=gpu.link_zone,
                model=gpu.model,
            )
            for i, gpu in enumerate(codec.decode_metax_devices(value, keys.METAX_SGPU_REGISTER))
        )

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        """HAMi's sGPU fit (§4.9): health, app class, QoS, then the slice checks; online pods
        go to the devices with the fewest online tasks and take no cores.

        Picks carry the pod's app class (`Pick.task_class`), so that `DeviceUsage.tasks`
        tells later pods which kinds of tasks share each device.
        """
        app_class = self.task_class(ctx.annotations)
        qos = ctx.annotations.get(keys.METAX_QOS_POLICY, DEFAULT_QOS)
        exclusive = request.coresreq >= 100
        reasons: Counter[str] = Counter()
        usable = []
        for cand in candidates:
            reason = _refusal(cand, app_class, qos, exclusive)
            if reason is None:
                usable.append(cand)
            else:
                reasons[reason] += 1
        topology = self._topology(ctx)
        if app_class == ONLINE:
            result = _fit_online(usable, request, ctx)
        elif topology and exclusive and request.nums > 1:
            result = _fit_zones(usable, request, ctx)
        else:
            result = slice_fit(usable, request, ctx, _SGPU_RULES)
        if isinstance(result, Unfit):
            reasons.update(result.counts)
            return Unfit(counts=dict(reasons), total=len(candidates))
        if not app_class and not topology:
            return result
        return tuple(_labelled(p, app_class, topology) for p in result)

    def task_class(self, annotations: Mapping[str, str]) -> str:
        """The pod's app class (`online`, `offline`, or "" when unclassed)."""
        value = annotations.get(keys.METAX_APP_CLASS, "")
        return value if value in keys.METAX_APP_CLASSES else ""

    def score_node(
        self,
        node: Node,
        before: Sequence[DeviceUsage],
        picks: Sequence[Sequence[Pick]],
        policy: str,
    ) -> float:
        """HAMi's policy-neutral ScoreNode (§4.9), weighted +10000 (−10000 under spread).

        Online pods: Σ over the chosen devices of −100 × offline tasks for a device that runs
        only offline tasks, else −20 × online − 2 × offline tasks (fewer, lighter neighbours
        win). Topology-aware exclusive pods: 10 × the chosen set's link score − the link score
        the placement breaks among the idle devices. Other pods: 0.
        """
        flat = [p for c in picks for p in c]
        weight = -_SCORE_WEIGHT if policy == SPREAD else _SCORE_WEIGHT
        if any(p.task_class == ONLINE for p in flat):
            return float(weight * _online_score(before, {p.position for p in flat}))
        if any(p.note == _TOPOLOGY_NOTE for p in flat):
            return float(weight * _exclusive_score(node, before, flat))
        return 0.0

    def scores(self, pod: PodRequest) -> bool:
        """`score_node` is zero unless the pod is online or topology-aware (then it may have
        exclusive picks): other sGPU pods keep the core's fast ranked walk."""
        annotations = pod.annotations
        if annotations.get(keys.METAX_APP_CLASS) == ONLINE:
            return True
        return self._topology_flag(annotations)

    def _topology(self, ctx: FitContext) -> bool:
        return self._topology_flag(ctx.annotations)

    def _topology_flag(self, annotations: Mapping[str, str]) -> bool:
        flag = annotations.get(keys.METAX_TOPOLOGY_AWARE, "")
        return self.config.sgpu_topology_aware or flag == "true"

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        out = SpecVendor.pod_annotations(self, devices, picks)
        out[keys.METAX_DEVICES_ALLOCATED] = codec.encode_metax_allocation(devices)
        return out


def _vmemory(raw: object, name: str, where: str) -> int:
    """A bare number is GiB; a quantity with a unit is bytes (both → MiB)."""
    if raw is None:
        return 0
    text = str(raw).strip()
    try:
        value = parse_int_quantity(raw, name)
    except ValueError as exc:
        raise RequestInvalid(where, name, f"{raw!r}: {exc}") from None
    if value < 0:
        raise RequestInvalid(where, name, f"{value} is negative")
    memory = value * 1024 if text.isdigit() else value // (1024 * 1024)
    return common.scaled_memory(memory, 1, where, name)


def _refusal(cand: Candidate, app_class: str, qos: str, exclusive: bool) -> Reason | None:
    """HAMi's MetaX gates, in its order: health, app class, QoS (not for online pods)."""
    dev = cand.device
    if not dev.health:
        return Reason.CARD_UNHEALTHY
    if not _classes_agree(cand.usage, app_class):
        return Reason.CARD_APP_CLASS_MISMATCH
    if app_class == ONLINE or cand.usage.used == 0 or exclusive:
        return None
    policy = dev.qos_policy if isinstance(dev, MetaxSgpuDevice) else ""
    return QOS_MISMATCH if policy and policy != qos else None


def _classes_agree(usage: DeviceUsage, app_class: str) -> bool:
    """Classed pods never share a device with unclassed ones; offline pods keep off devices
    running online pods (they would be suspended there anyway).

    HAMi looks only at whether any classed task runs on a busy device; we also count the
    unclassed ones (``used`` minus the classed), so a device running both kinds (placed by
    other means) takes neither kind of newcomer.
    """
    if usage.used == 0:
        return True
    online = usage.tasks_of(ONLINE)
    offline = usage.tasks_of(OFFLINE)
    unclassed = usage.used - online - offline
    if not app_class:
        return online + offline == 0
    if unclassed > 0:
        return False
    return not (app_class == OFFLINE and online > 0)


def _labelled(pick: Pick, app_class: str, topology: bool) -> Pick:
    """The pick with the pod's app class; a topology-aware exclusive pick is noted for
    `score_node`."""
    note = _TOPOLOGY_NOTE if topology and pick.device.usedcores == 100 else pick.note
    return dataclasses.replace(pick, task_class=app_class, note=note)


def _fitting(
    candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext, rules: SliceRules
) -> tuple[list[tuple[Candidate, Pick]], Counter[str]]:
    """Every candidate that could take one of the request's devices (HAMi's candidate list),
    in try order, and why the others cannot."""
    one = dataclasses.replace(request, nums=1)
    fitting: list[tuple[Candidate, Pick]] = []
    reasons: Counter[str] = Counter()
    for cand in candidates:
        result = slice_fit([cand], one, ctx, rules)
        if isinstance(result, Unfit):
            reasons.update(result.counts)
        else:
            fitting.append((cand, result[0]))
    return fitting, reasons


def _short(fitting: Sequence[object], reasons: Counter[str], total: int) -> Unfit:
    if fitting:
        reasons[Reason.ALLOCATED_CARDS_INSUFFICIENT_REQUEST] += len(fitting)
    return Unfit(counts=dict(reasons), total=total)


def _online_rank(usage: DeviceUsage) -> tuple[int, int, int]:
    """Devices with fewer online tasks first (then fewer offline ones); devices running only
    offline tasks last, fewest offline first."""
    online, offline = usage.tasks_of(ONLINE), usage.tasks_of(OFFLINE)
    if online == 0 and offline > 0:
        return (1, offline, 0)
    return (0, online, offline)


def _fit_online(
    candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
) -> tuple[Pick, ...] | Unfit:
    """Online pods: no core checks and no cores recorded; among more devices than needed,
    the best by `_online_rank` (a stable sort: ties keep the policy order)."""
    no_cores = dataclasses.replace(request, coresreq=0)
    fitting, reasons = _fitting(candidates, no_cores, ctx, _ONLINE_RULES)
    if len(fitting) < request.nums:
        return _short(fitting, reasons, len(candidates))
    if len(fitting) > request.nums:
        fitting = sorted(fitting, key=lambda found: _online_rank(found[0].usage))
    return tuple(pick for _, pick in fitting[: request.nums])


def _online_score(before: Sequence[DeviceUsage], positions: set[int]) -> int:
    score = 0
    for position in positions:
        usage = before[position]
        online, offline = usage.tasks_of(ONLINE), usage.tasks_of(OFFLINE)
        if offline > 0 and online == 0:
            score -= 100 * offline
        else:
            score -= 20 * online + 2 * offline
    return score


_LINK_SCORE = 10  # a pair of devices in the same non-zero MetaLink zone


def _link_score(zones: Sequence[tuple[str, int]]) -> int:
    return sum(
        _LINK_SCORE
        for i, (uuid, zone) in enumerate(zones)
        for other, other_zone in zones[i + 1 :]
        if zone and zone == other_zone and uuid != other
    )


def _exclusive_score(node: Node, before: Sequence[DeviceUsage], picks: Sequence[Pick]) -> int:
    """10 × link score of the chosen exclusive devices − the link score lost among the idle
    devices (idle − chosen − the idle ones left)."""
    zone_of = {d.uuid: d.link_zone for d in node.devices if isinstance(d, MetaxSgpuDevice)}
    chosen = [(p.device.uuid, zone_of.get(p.device.uuid, 0)) for p in picks if p.note]
    taken = {uuid for uuid, _ in chosen}
    idle = [
        (d.uuid, zone_of.get(d.uuid, 0))
        for d, u in zip(node.devices, before, strict=True)
        if u.used == 0
    ]
    rest = [entry for entry in idle if entry[0] not in taken]
    allocated = _link_score(chosen)
    return 10 * allocated - (_link_score(idle) - allocated - _link_score(rest))


def _fit_zones(
    candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
) -> tuple[Pick, ...] | Unfit:
    """Exclusive multi-GPU requests: the smallest MetaLink zone that holds them all, else the
    first devices in policy order."""
    fitting, reasons = _fitting(candidates, request, ctx, _SGPU_RULES)
    if len(fitting) < request.nums:
        return Unfit(counts=dict(reasons), total=len(candidates))
    zones: dict[int, list[Pick]] = {}
    for cand, pick in fitting:
        zone = cand.device.link_zone if isinstance(cand.device, MetaxSgpuDevice) else 0
        if zone:
            zones.setdefault(zone, []).append(pick)
    holding = [z for z in zones.values() if len(z) >= request.nums]
    if holding:
        return tuple(min(holding, key=len)[: request.nums])
    return tuple(p for _, p in fitting[: request.nums])
