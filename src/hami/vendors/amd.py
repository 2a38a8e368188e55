"""AMD: memory plus a share of the compute units (CUs) (wire-format.md §4.13)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from hami.api import annotations as codec
from hami.api import keys
from hami.api.types import ContainerDevice
from hami.core.model import ContainerRequest, Device
from hami.core.policy import MUTEX
from hami.core.status import Reason, Unfit
from hami.core.vendor import Admission, Candidate, FitContext, Pick
from hami.vendors import common, resources
from hami.vendors.config import AmdConfig
from hami.vendors.family import Spec, SpecVendor


@dataclass(frozen=True, slots=True)
class AmdDevice(Device):
    """`cores` is the number of compute units; requests ask for a percentage of them."""

    rough_summary: ClassVar[bool] = True  # the cluster summary must not compare % with CUs


SPEC = Spec(
    key=keys.AMD_VENDOR,
    name="AMD",
    word="GPU",
    register=keys.AMD_REGISTER,
    cleanup=keys.AMD_REGISTER,  # no handshake: an unhealthy node loses its registration
    to_allocate=keys.AMD_TO_ALLOCATE,
    allocated=keys.AMD_ALLOCATED,
    unit="CUs",
)


@dataclass(frozen=True, slots=True)
class AmdVendor(SpecVendor):
    config: AmdConfig = field(default_factory=AmdConfig)
    spec = SPEC

    def _names(self) -> tuple[str, str, str]:
        cfg = self.config
        return cfg.resource_count_name, cfg.resource_memory_name, cfg.resource_core_name

    def admit_container(self, container: Mapping[str, object], where: str) -> Admission:
        limits = resources.limits(container)
        uses = any(n in limits for n in self._names())
        if uses:
            self.parse_container(container, where)
        return Admission(uses_vendor=uses, container=container)

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        """Limits only: count (1 when only memory/cores are given), MiB, % of CUs (1–100)."""
        count_name, memory_name, core_name = self._names()
        limited = {"resources": {"limits": dict(resources.limits(container))}}
        if not any(n in resources.limits(container) for n in self._names()):
            return None
        nums = resources.bounded(limited, count_name, where, 0, common.INT32_MAX)
        if nums == 0:
            return None
        memory = resources.bounded(limited, memory_name, where, 0, common.INT32_MAX) or 0
        cores = resources.bounded(limited, core_name, where, 1, 100)
        return ContainerRequest(
            vendor=self.key,
            nums=nums or 1,
            memreq=memory,
            mem_pct=100 if memory == 0 else 0,
            coresreq=100 if cores is None else cores,
        )

    def node_devices(self, annotations: Mapping[str, str]) -> tuple[Device, ...]:
        return tuple(
            common.retyped(d, AmdDevice) for d in SpecVendor.node_devices(self, annotations)
        )

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        reasons: Counter[str] = Counter()
        picks: list[Pick] = []
        for cand in candidates:
            took = _take(cand, request, ctx)
            if isinstance(took, Pick):
                picks.append(took)
                if len(picks) == request.nums:
                    return tuple(picks)
            else:
                reasons[took] += 1
        if picks:
            reasons[Reason.ALLOCATED_CARDS_INSUFFICIENT_REQUEST] += len(picks)
        return Unfit(counts=dict(reasons), total=len(candidates))


def compute_units(total: int, percent: int) -> int:
    """max(1, total × percent / 100), capped at the total."""
    return min(max(1, total * percent // 100), total)


def _gate(dev: Device, notes: Mapping[str, str]) -> Reason | None:
    use = codec.decode_comma_list(notes.get(keys.AMD_USE_TYPE))
    nouse = codec.decode_comma_list(notes.get(keys.AMD_NOUSE_TYPE))
    upper = dev.type.upper()
    if (use and not any(t.upper() in upper for t in use)) or any(t.upper() in upper for t in nouse):
        return Reason.CARD_TYPE_MISMATCH
    if not common.uuid_allowed(dev.uuid, notes, keys.AMD_USE_UUID, keys.AMD_NOUSE_UUID):
        return Reason.CARD_UUID_MISMATCH
    return None


def _take(cand: Candidate, request: ContainerRequest, ctx: FitContext) -> Pick | Reason:
    dev, use = cand.device, cand.usage
    if not dev.health:
        return Reason.CARD_NOT_HEALTH
    reason = _gate(dev, ctx.annotations)
    if reason is not None:
        return reason
    if dev.count <= use.used:
        return Reason.CARD_TIME_SLICING_EXHAUSTED
    if MUTEX in ctx.policy and use.used > 0:
        return Reason.EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT
    memory = request.memory_on(dev)
    if dev.memory - use.usedmem < memory:
        return Reason.CARD_INSUFFICIENT_MEMORY
    units = compute_units(dev.cores, request.coresreq)
    if dev.cores - use.usedcores < units:
        return Reason.CARD_INSUFFICIENT_CORE
    used = ContainerDevice(uuid=dev.uuid, type=dev.type, usedmem=memory, usedcores=units)
    return Pick(position=cand.position, device=used, index=dev.index)
