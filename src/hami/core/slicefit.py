"""The shared per-device check sequence of a sliced accelerator (wire-format.md §3.8).

NVIDIA uses every rule; other sliced vendors switch off what they lack (cordon, MIG, topology…).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from hami.api import annotations as codec
from hami.api import keys
from hami.api.types import ContainerDevice
from hami.core import mig, topology
from hami.core.model import ContainerRequest, Device, DeviceUsage, MigReservation, PodOptions
from hami.core.policy import MUTEX, TOPOLOGY_AWARE
from hami.core.status import Reason, Unfit
from hami.core.vendor import Candidate, FitContext, Pick


@dataclass(frozen=True, slots=True)
class SliceRules:
    """Which optional checks a vendor's devices take part in."""

    gates: bool = True  # use-/nouse- type and uuid annotations, vgpu-mode, cordon
    mig: bool = True
    topology: bool = True
    quota: bool = True
    label: str | None = None  # TYPE written into the pod device list; None = the device type
    # Vendor-specific pod filter annotations (read from FitContext.annotations), e.g.
    # `hygon.com/use-gpuuuid`; None = the vendor has no such filter.
    use_uuid_key: str | None = None
    nouse_uuid_key: str | None = None
    use_type_key: str | None = None
    nouse_type_key: str | None = None
    # Every device picked for the pod's earlier containers (FitContext.earlier) must be this
    # card, else CardNotFoundCustomFilterRule (HAMi's customFilterRule; used by Moore Threads).
    same_card: bool = False
    # The core checks (insufficient cores, exclusive use, compute exhausted); off for MetaX sGPU
    # online pods, which take no cores (wire-format.md §4.9).
    cores: bool = True

    @property
    def vendor_filters(self) -> bool:
        keys_ = (self.use_uuid_key, self.nouse_uuid_key, self.use_type_key, self.nouse_type_key)
        return any(keys_)


def _contains_any(haystack: str, needles: Sequence[str]) -> bool:
    upper = haystack.upper()
    return any(n.upper() in upper for n in needles)


def _gate(cand: Candidate, opts: PodOptions, rules: SliceRules) -> Reason | None:
    """Checks 1–3: health, cordon, type and mode."""
    dev = cand.device
    if not dev.health:
        return Reason.CARD_NOT_HEALTH
    if not rules.gates:
        return None
    if cand.cordoned:
        return Reason.CARD_CORDONED
    if opts.use_types and not _contains_any(dev.type, opts.use_types):
        return Reason.CARD_TYPE_MISMATCH
    if opts.nouse_types and _contains_any(dev.type, opts.nouse_types):
        return Reason.CARD_TYPE_MISMATCH
    if opts.vgpu_mode is not None and dev.mode not in opts.vgpu_mode:
        return Reason.CARD_TYPE_MISMATCH
    return None


def _vendor_gate(dev: Device, ctx: FitContext, rules: SliceRules) -> Reason | None:
    """The vendor's own type and UUID filter annotations (HAMi's CheckType / CheckUUID)."""
    notes = ctx.annotations
    if not notes or not rules.vendor_filters:
        return None
    use_t = codec.decode_comma_list(notes.get(rules.use_type_key or ""))
    nouse_t = codec.decode_comma_list(notes.get(rules.nouse_type_key or ""))
    if (use_t and not _contains_any(dev.type, use_t)) or _contains_any_of(dev.type, nouse_t):
        return Reason.CARD_TYPE_MISMATCH
    use_u = codec.decode_comma_list(notes.get(rules.use_uuid_key or ""))
    nouse_u = codec.decode_comma_list(notes.get(rules.nouse_uuid_key or ""))
    if (use_u and dev.uuid not in use_u) or dev.uuid in nouse_u:
        return Reason.CARD_UUID_MISMATCH
    return None


def _contains_any_of(haystack: str, needles: Sequence[str]) -> bool:
    return bool(needles) and _contains_any(haystack, needles)


def _uuid_gate(dev: Device, opts: PodOptions) -> Reason | None:
    """Check 5."""
    if opts.use_uuids and dev.uuid not in opts.use_uuids:
        return Reason.CARD_UUID_MISMATCH
    if opts.nouse_uuids and dev.uuid in opts.nouse_uuids:
        return Reason.CARD_UUID_MISMATCH
    return None


@dataclass(slots=True)
class _Progress:
    """Mutable accumulation inside one fit call (never escapes it)."""

    remaining: int
    picks: list[Pick]
    memory: int = 0
    cores: int = 0

    def reset(self, nums: int) -> int:
        dropped = len(self.picks)
        self.remaining, self.picks, self.memory, self.cores = nums, [], 0, 0
        return dropped


@dataclass(frozen=True, slots=True)
class _Take:
    memory: int
    cores: int
    instance: MigReservation | None = None


def _capacity(
    dev: Device,
    use: DeviceUsage,
    request: ContainerRequest,
    ctx: FitContext,
    state: _Progress,
    rules: SliceRules,
) -> Reason | _Take:
    """Checks 6–15 against the device's usage plus this container's earlier picks of it."""
    mine = [p for p in state.picks if p.device.uuid == dev.uuid]
    used = use.used + len(mine)
    usedmem = use.usedmem + sum(p.device.usedmem for p in mine)
    usedcores = use.usedcores + sum(p.device.usedcores for p in mine)
    if dev.count <= used:
        return Reason.CARD_TIME_SLICING_EXHAUSTED
    if MUTEX in ctx.policy and used > 0:
        return Reason.EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT
    cores = min(request.coresreq, 100)
    memreq = request.memory_on(dev)
    if rules.quota and not _quota_allows(ctx, state, memreq, cores):
        return Reason.RESOURCE_QUOTA_NOT_FIT
    if dev.memory - usedmem < memreq:
        return Reason.CARD_INSUFFICIENT_MEMORY
    if rules.cores:
        if dev.cores - usedcores < cores:
            return Reason.CARD_INSUFFICIENT_CORE
        if dev.cores == 100 and cores == 100 and used > 0:
            return Reason.EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT
        if dev.cores != 0 and usedcores == dev.cores and cores == 0:
            return Reason.CARD_COMPUTE_UNITS_EXHAUSTED
    if not (rules.mig and dev.mode == keys.MODE_MIG):
        return _Take(memreq, cores)
    taken = list(use.mig) + [p.mig for p in mine if p.mig]
    instance = mig.choose_instance(dev.mig_profiles, taken, memreq)
    if instance is None:
        return Reason.CARD_MIG_TOPOLOGY_INFEASIBLE
    profile = mig.profile_named(dev.mig_profiles, instance.profile)
    assert profile is not None
    return _Take(profile.memory_mb, profile.core, instance)


def _same_card(dev: Device, ctx: FitContext) -> Reason | None:
    """HAMi's customFilterRule: the pod's earlier containers hold no other card than ``dev``."""
    if any(p.device.uuid != dev.uuid for p in ctx.earlier):
        return Reason.CARD_NOT_FOUND_CUSTOM_FILTER_RULE
    return None


def _quota_allows(ctx: FitContext, state: _Progress, memreq: int, cores: int) -> bool:
    room = ctx.quota_room
    if room.memory is not None:
        hypothetical = max(ctx.floor_memory, ctx.held_memory + state.memory + memreq)
        if hypothetical > room.memory:
            return False
    if room.cores is not None:
        hypothetical = max(ctx.floor_cores, ctx.held_cores + state.cores + cores)
        if hypothetical > room.cores:
            return False
    return True


def slice_fit(
    candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext, rules: SliceRules
) -> tuple[Pick, ...] | Unfit:
    """Pick ``request.nums`` devices, trying ``candidates`` in order; or say why not."""
    opts = ctx.options
    topo = rules.topology and TOPOLOGY_AWARE in ctx.policy
    reasons: Counter[str] = Counter()
    state = _Progress(remaining=request.nums, picks=[])
    prev_numa: int | None = None
    for cand in candidates:
        dev = cand.device
        reason = _gate(cand, opts, rules)
        if reason is None and opts.numa_bind:
            if prev_numa is not None and dev.numa != prev_numa:
                dropped = state.reset(request.nums)
                if dropped:
                    reasons[Reason.NUMA_NOT_FIT] += dropped
            prev_numa = dev.numa
        reason = reason or (_uuid_gate(dev, opts) if rules.gates else None)
        reason = reason or _vendor_gate(dev, ctx, rules)
        if reason is not None:
            reasons[reason] += 1
            continue
        while True:  # a MIG GPU may host several instances of one container
            took = _capacity(dev, cand.usage, request, ctx, state, rules)
            if not isinstance(took, Reason) and rules.same_card:
                took = _same_card(dev, ctx) or took
            if isinstance(took, Reason):
                reasons[took] += 1
                break
            memory, cores, instance = took.memory, took.cores, took.instance
            label = rules.label if rules.label is not None else dev.type
            picked = ContainerDevice(uuid=dev.uuid, type=label, usedmem=memory, usedcores=cores)
            state.picks.append(
                Pick(position=cand.position, device=picked, mig=instance, index=dev.index)
            )
            state.memory += memory
            state.cores += cores
            if not topo:
                state.remaining -= 1
                if state.remaining == 0:
                    return tuple(state.picks)
            if instance is None:
                break
    if topo and len(state.picks) >= request.nums:
        chosen = topology.select(
            [_device_at(candidates, p.position) for p in state.picks], request.nums
        )
        return tuple(state.picks[i] for i in chosen)
    if state.picks:
        reasons[Reason.ALLOCATED_CARDS_INSUFFICIENT_REQUEST] += len(state.picks)
    return Unfit(counts=dict(reasons), total=len(candidates))


def _device_at(candidates: Sequence[Candidate], position: int) -> Device:
    return next(c.device for c in candidates if c.position == position)
