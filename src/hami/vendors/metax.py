"""MetaX: whole GPUs (`Metax-GPU`) and sGPU slices (`Metax-SGPU`) (wire-format.md §4.9)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hami.api import annotations as codec
from hami.api import keys
from hami.api.quantity import parse_int_quantity
from hami.api.types import PodDevices
from hami.core.errors import RequestInvalid
from hami.core.model import ContainerRequest, Device, DeviceUsage, Node
from hami.core.policy import SPREAD
from hami.core.slicefit import SliceRules, slice_fit
from hami.core.status import Unfit
from hami.core.vendor import (
    Admission,
    Candidate,
    FitContext,
    NodeLockSpec,
    Pick,
    PodAdmission,
    Stamp,
)
from hami.vendors import common, resources
from hami.vendors.config import MetaxConfig

_WHOLE_MEMORY = 65536
_GPU_RULES = SliceRules(
    gates=False,
    mig=False,
    topology=False,
    quota=False,
    label=keys.METAX_GPU_VENDOR,
    # No same-card rule: a whole card holds one task, so HAMi's rule (§4.9) made every pod with
    # two GPU containers unschedulable; HAMi itself dropped it later (#2837).
)
_SGPU_RULES = SliceRules(
    gates=False,
    mig=False,
    topology=False,
    quota=False,
    use_uuid_key=keys.METAX_USE_UUID,
    nouse_uuid_key=keys.METAX_NOUSE_UUID,
)
QOS_MISMATCH = "CardQosPolicyMismatch"
DEFAULT_QOS = "best-effort"


# --- whole GPU -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetaxGpuDevice(Device):
    """A whole MetaX GPU with the node's topology tables (device count → loss / score)."""

    losses: Mapping[int, int] = field(default_factory=dict)
    scores: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetaxGpuVendor:
    """`Metax-GPU`: exclusive whole cards learnt from node capacity."""

    config: MetaxConfig = field(default_factory=MetaxConfig)

    @property
    def key(self) -> str:
        return keys.METAX_GPU_VENDOR

    @property
    def node_lock(self) -> NodeLockSpec | None:
        """HAMi's whole MetaX GPU binds without a node lock (§3.13)."""
        return None

    def admit_container(self, container: Mapping[str, object], where: str) -> Admission:
        return common.admit_if_counted(self, self.config.resource_count_name, container, where)

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        return common.whole_devices(
            self.key, container, self.config.resource_count_name, where, mem_pct=100, coresreq=100
        )

    def node_devices(self, annotations: Mapping[str, str]) -> tuple[Device, ...]:
        return ()  # registered through node capacity

    def capacity_devices(
        self,
        node: str,
        capacity: Mapping[str, str],
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
    ) -> tuple[Device, ...]:
        cards = common.capacity_of(capacity, self.config.resource_count_name)
        losses = _count_map(annotations, keys.METAX_TOPOLOGY_LOSSES)
        scores = _count_map(annotations, keys.METAX_TOPOLOGY_SCORES)
        return tuple(
            MetaxGpuDevice(
                uuid=f"{node}-metax-{i}",
                vendor=self.key,
                type=self.key,
                count=1,
                memory=_WHOLE_MEMORY,
                cores=100,
                index=i,
                losses=losses,
                scores=scores,
            )
            for i in range(max(cards, 0))
        )

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        """The generic slice fit, plus HAMi's rule that all containers of a pod use the same
        card (`CardNotFoundCustomFilterRule`, §4.9), init containers included.

        A whole card has count 1, so two app containers asking for one card each never fit
        (HAMi behaves the same at the reference version; later HAMi dropped the rule)."""
        return slice_fit(candidates, request, ctx, _GPU_RULES)

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

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        return common.device_list_annotations(
            devices, keys.METAX_GPU_TO_ALLOCATE, keys.METAX_GPU_ALLOCATED
        )

    def allocated_devices(self, annotations: Mapping[str, str]) -> PodDevices | None:
        return common.decode_allocated(annotations, keys.METAX_GPU_ALLOCATED)


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
class MetaxSgpuVendor:
    """`Metax-SGPU`: memory/compute slices with QoS policies and MetaLink zones."""

    config: MetaxConfig = field(default_factory=MetaxConfig)

    @property
    def key(self) -> str:
        return keys.METAX_SGPU_VENDOR

    def admit_container(self, container: Mapping[str, object], where: str) -> Admission:
        uses = self.config.resource_vcount_name in resources.limits(container)
        if uses:
            self.parse_container(container, where)
        return Admission(uses_vendor=uses, container=container)

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
        app_class = ctx.annotations.get(keys.METAX_APP_CLASS)
        qos = ctx.annotations.get(keys.METAX_QOS_POLICY, DEFAULT_QOS)
        exclusive = request.coresreq >= 100
        reasons: Counter[str] = Counter()
        usable = []
        for cand in candidates:
            dev = cand.device
            policy = dev.qos_policy if isinstance(dev, MetaxSgpuDevice) else ""
            if dev.health and cand.usage.used > 0 and not exclusive and policy != qos:
                reasons[QOS_MISMATCH] += 1
            else:
                usable.append(cand)
        if self._topology(ctx) and exclusive and request.nums > 1:
            result = _fit_zones(usable, request, ctx)
        else:
            result = slice_fit(usable, request, ctx, _SGPU_RULES)
        if isinstance(result, Unfit):
            reasons.update(result.counts)
            return Unfit(counts=dict(reasons), total=len(candidates))
        if app_class != "online":
            return result
        return tuple(_without_cores(p) for p in result)

    def _topology(self, ctx: FitContext) -> bool:
        flag = ctx.annotations.get("metax-tech.com/sgpu-topology-aware", "")
        return self.config.sgpu_topology_aware or flag == "true"

    def stamps(self) -> Mapping[str, Stamp]:
        return {keys.METAX_PREDICATE_TIME: "unix-nanos"}

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        out = common.device_list_annotations(
            devices, keys.METAX_SGPU_TO_ALLOCATE, keys.METAX_SGPU_ALLOCATED
        )
        out[keys.METAX_DEVICES_ALLOCATED] = codec.encode_metax_allocation(devices)
        return out

    def allocated_devices(self, annotations: Mapping[str, str]) -> PodDevices | None:
        return common.decode_allocated(annotations, keys.METAX_SGPU_ALLOCATED)


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


def _without_cores(pick: Pick) -> Pick:
    """Online pods record no cores."""
    return dataclasses.replace(pick, device=dataclasses.replace(pick.device, usedcores=0))


def _fit_zones(
    candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
) -> tuple[Pick, ...] | Unfit:
    """Exclusive multi-GPU requests: the smallest MetaLink zone that holds them all, else the
    first devices in policy order."""
    one = dataclasses.replace(request, nums=1)
    fitting: list[tuple[int, Pick]] = []
    reasons: Counter[str] = Counter()
    for cand in candidates:
        result = slice_fit([cand], one, ctx, _SGPU_RULES)
        if isinstance(result, Unfit):
            reasons.update(result.counts)
            continue
        zone = cand.device.link_zone if isinstance(cand.device, MetaxSgpuDevice) else 0
        fitting.append((zone, result[0]))
    if len(fitting) < request.nums:
        return Unfit(counts=dict(reasons), total=len(candidates))
    zones: dict[int, list[Pick]] = {}
    for zone, pick in fitting:
        if zone:
            zones.setdefault(zone, []).append(pick)
    holding = [z for z in zones.values() if len(z) >= request.nums]
    if holding:
        return tuple(min(holding, key=len)[: request.nums])
    return tuple(p for _, p in fitting[: request.nums])
