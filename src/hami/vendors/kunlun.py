"""Kunlun XPU: whole cards on 8-card boards with wing topology (wire-format.md §4.11, §8.13).

Positions 0–3 form the left wing and 4–7 the right wing. A request takes a wing whose free count
fits best, else a cross-wing pair or quad; the node score rewards not fragmenting the wings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hami.api import annotations as codec
from hami.api import keys
from hami.api.types import ContainerDevice, PodDevices
from hami.core.errors import RequestInvalid
from hami.core.model import ContainerRequest, Device, DeviceUsage, Node
from hami.core.policy import MUTEX
from hami.core.status import Reason, Unfit
from hami.core.vendor import Admission, Candidate, FitContext, Pick
from hami.vendors import common, resources
from hami.vendors.config import KunlunConfig
from hami.vendors.family import COUNT_ONLY, CapacityRule, Spec, SpecVendor, WholeCardVendor

CROSS_PAIRS: tuple[tuple[int, ...], ...] = ((0, 4), (1, 5), (2, 6), (3, 7))
WING_PAIRS: tuple[tuple[int, ...], ...] = tuple(
    (a, b)
    for wing in ((0, 1, 2, 3), (4, 5, 6, 7))
    for i, a in enumerate(wing)
    for b in wing[i + 1 :]
)
QUADS: tuple[tuple[int, ...], ...] = (
    (0, 1, 4, 5),
    (2, 3, 6, 7),
    (0, 2, 4, 6),
    (1, 3, 5, 7),
    (0, 3, 4, 7),
    (1, 2, 5, 6),
)
_ODD_ORDER = (1, 3, 2, 4)


def wing_select(free: Sequence[int], nums: int) -> tuple[int, ...]:
    """HAMi's graghSelect: the device indexes to take, or () when the board cannot serve."""
    left = sorted(i for i in free if i < 4)
    right = sorted(i for i in free if i >= 4)
    if nums == 8:
        return tuple(range(8)) if len(left) + len(right) == 8 else ()
    if nums not in (1, 2, 4):
        return ()
    if len(left) >= nums or len(right) >= nums:
        for slots in range(nums, 5):
            want = _ODD_ORDER[slots - 1] if nums % 2 else slots
            if len(left) == want:
                return tuple(left[:nums])
            if len(right) == want:
                return tuple(right[:nums])
    return _interconnect(sorted(free), nums)


def _interconnect(free: Sequence[int], nums: int) -> tuple[int, ...]:
    have = set(free)
    if nums == 2:
        for a in free:
            for b in free:
                if a != b and ((a, b) in CROSS_PAIRS or (b, a) in CROSS_PAIRS):
                    return (a, b)
    if nums == 4 and len(free) in (4, 5):
        return next((q for q in QUADS if have.issuperset(q)), ())
    if nums == 4 and len(free) == 6:
        chosen: tuple[int, ...] = ()
        for quad in QUADS:
            if have.issuperset(quad):
                chosen = quad
                rest = have.difference(quad)
                if any(rest.issuperset(p) for p in (*CROSS_PAIRS, *WING_PAIRS)):
                    return chosen
        return chosen
    return ()


def bubbles(indexes: Sequence[int]) -> int:
    """Wing fragmentation of a set of indexes (per wing: 4 → 0, 1 → 2, else 1)."""
    left = sum(1 for i in indexes if i < 4)
    right = len(indexes) - left
    if left == 0 and right == 0:
        return 1
    return _bubble(left) + _bubble(right)


def _bubble(count: int) -> int:
    return 0 if count == 4 else 2 if count == 1 else 1


def wing_score(previous: Sequence[int], current: Sequence[int]) -> float:
    change = bubbles(current) - bubbles(previous)
    return {-1: 3000.0, 0: 2000.0, 1: 1000.0, 2: 0.0}.get(change, 1000.0)


WHOLE_SPEC = Spec(
    key=keys.KUNLUN_VENDOR,
    name="Kunlunxin",
    word="XPU",
    aliases=("Kunlun",),
    allocated=keys.KUNLUN_ALLOCATED,
    lock=None,  # HAMi's whole-XPU vendor binds without a node lock (§3.13)
    names=COUNT_ONLY,
    capacity=CapacityRule(uuid="kunlun", count=100, memory=keys.KUNLUN_WHOLE_MEMORY),
)
VXPU_SPEC = Spec(
    key=keys.KUNLUN_VXPU_VENDOR,
    name="Kunlunxin",
    word="XPU",
    aliases=("Kunlun",),
    register=keys.KUNLUN_VXPU_REGISTER,
    handshake=keys.KUNLUN_VXPU_HANDSHAKE,
    to_allocate=keys.KUNLUN_VXPU_TO_ALLOCATE,
    allocated=keys.KUNLUN_VXPU_ALLOCATED,
    names=("resource_vcount_name", "resource_vmemory_name", ""),
)


@dataclass(frozen=True, slots=True)
class KunlunVendor(WholeCardVendor):
    """`kunlun`: exclusive whole XPUs learnt from node capacity."""

    config: KunlunConfig = field(default_factory=KunlunConfig)
    spec = WHOLE_SPEC

    def card(
        self, position: int, cards: int, annotations: Mapping[str, str], **fields: Any
    ) -> Device:
        """The second half of the board is NUMA node 1."""
        return Device(**fields, numa=1 if position >= cards // 2 else 0)

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        by_index = {c.device.index: c for c in candidates}
        use = codec.decode_comma_list(ctx.annotations.get(keys.KUNLUN_USE_UUID))
        nouse = codec.decode_comma_list(ctx.annotations.get(keys.KUNLUN_NOUSE_UUID))
        reasons: Counter[str] = Counter()
        free = []
        for index, cand in sorted(by_index.items()):
            dev = cand.device
            if (use and dev.uuid not in use) or dev.uuid in nouse:
                reasons[Reason.CARD_UUID_MISMATCH] += 1
            elif cand.usage.used == 0 and dev.health:
                free.append(index)
        chosen = wing_select(free, request.nums)
        if not chosen:
            reasons[Reason.NUMA_NOT_FIT] += 1
            return Unfit(counts=dict(reasons), total=len(candidates))
        return tuple(_whole(by_index[i], self.key) for i in chosen)

    def score_node(
        self,
        node: Node,
        before: Sequence[DeviceUsage],
        picks: Sequence[Sequence[Pick]],
        policy: str,
    ) -> float:
        """Fewer wing bubbles after the placement score higher (0 with other vendors' devices)."""
        if any(d.vendor != self.key for d in node.devices):
            return 0.0
        previous = sorted({d.index for d, u in zip(node.devices, before, strict=True) if u.used})
        current = sorted({p.index for c in picks for p in c})
        return wing_score(previous, current)

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        out = WholeCardVendor.pod_annotations(self, devices, picks)
        for container in picks:
            if container:
                out[keys.KUNLUN_DEVICE_IDX] = codec.encode_comma_list(
                    str(p.index) for p in container
                )
        return out


def _whole(cand: Candidate, label: str) -> Pick:
    dev = cand.device
    used = ContainerDevice(uuid=dev.uuid, type=label, usedmem=dev.memory, usedcores=dev.cores)
    return Pick(position=cand.position, device=used, index=dev.index)


# --- vXPU ------------------------------------------------------------------------------------------


def trim_vxpu_memory(memory: int) -> int | None:
    """Round up to a vXPU slice size (24576 / 49152 / 98304 MiB); None above a whole card."""
    return next((size for size in keys.KUNLUN_VXPU_SIZES if memory <= size), None)


@dataclass(frozen=True, slots=True)
class KunlunVxpuVendor(SpecVendor):
    """`XPU`: fixed-size vXPU slices on a JSON registration, same-size slices per card."""

    config: KunlunConfig = field(default_factory=KunlunConfig)
    spec = VXPU_SPEC

    def admit_container(self, container: Mapping[str, object], where: str) -> Admission:
        """Round the memory up to a slice size, in limits and requests."""
        cfg = self.config
        if cfg.resource_vcount_name not in resources.limits(container):
            return Admission(uses_vendor=False, container=container)
        self.parse_container(container, where)
        out = common.mutable(container)
        asked = resources.integer(out, cfg.resource_vmemory_name, where)
        if asked is not None:
            size = trim_vxpu_memory(asked)
            common.section_of(out, "limits")[cfg.resource_vmemory_name] = size
            if common.has_section(out, "requests"):
                common.section_of(out, "requests")[cfg.resource_vmemory_name] = size
        return Admission(uses_vendor=True, container=out)

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        cfg = self.config
        nums = resources.bounded(container, cfg.resource_vcount_name, where, 0, common.INT32_MAX)
        if not nums:
            return None
        asked = resources.bounded(container, cfg.resource_vmemory_name, where, 0) or 0
        if asked == 0:
            whole = keys.KUNLUN_WHOLE_MEMORY
            return ContainerRequest(self.key, nums, memreq=whole, mem_pct=100, coresreq=100)
        size = trim_vxpu_memory(asked)
        if size is None:
            why = f"{asked} MiB is more than a whole XPU ({keys.KUNLUN_WHOLE_MEMORY} MiB)"
            raise RequestInvalid(where, cfg.resource_vmemory_name, why)
        cores = size * 100 // keys.KUNLUN_WHOLE_MEMORY
        return ContainerRequest(self.key, nums, memreq=size, mem_pct=0, coresreq=cores)

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        by_index = {c.device.index: c for c in candidates}
        reasons: Counter[str] = Counter()
        free = []
        mutex = MUTEX in ctx.policy
        for index, cand in sorted(by_index.items()):
            reason = _vxpu_reason(cand, request, ctx.annotations, mutex)
            if reason is None:
                free.append(index)
            else:
                reasons[reason] += 1
        chosen = wing_select(free, request.nums)
        if not chosen:
            reasons[Reason.NUMA_NOT_FIT] += 1
            return Unfit(counts=dict(reasons), total=len(candidates))
        return tuple(_slice(by_index[i], request, self.key) for i in chosen)


def _vxpu_reason(
    cand: Candidate, request: ContainerRequest, notes: Mapping[str, str], mutex: bool
) -> str | None:
    dev, use = cand.device, cand.usage
    uuid_keys = (keys.KUNLUN_VXPU_USE_UUID, keys.KUNLUN_VXPU_NOUSE_UUID)
    if not common.uuid_allowed(dev.uuid, notes, *uuid_keys):
        return Reason.CARD_UUID_MISMATCH
    if not dev.health:
        return Reason.CARD_NOT_HEALTH
    if dev.count <= use.used:
        return Reason.CARD_TIME_SLICING_EXHAUSTED
    if use.used and (mutex or use.usedmem // use.used != request.memreq):
        return Reason.EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT  # only same-size slices share a card
    if dev.memory - use.usedmem < request.memreq:
        return Reason.CARD_INSUFFICIENT_MEMORY
    return None


def _slice(cand: Candidate, request: ContainerRequest, label: str) -> Pick:
    used = ContainerDevice(
        uuid=cand.device.uuid, type=label, usedmem=request.memreq, usedcores=request.coresreq
    )
    return Pick(position=cand.position, device=used, index=cand.device.index)
