"""Enflame (wire-format.md §4.10): exclusive whole GCUs learnt from node capacity (`GCU`) and
DRS slices (`Enflame`) registered in `enflame.com/gcu-drs-capacity`.

A DRS container asks for one GCU instance: either a slice count directly (`enflame.com/drs-gcu`)
or memory and/or core percent (`enflame.com/gcu-memory`, `enflame.com/gcu-core`), which picks the
smallest profile that covers it. A pick takes the profile's slice count of the device's `count`
(`Pick.slots`); `EnflameDrsVendor.slots` recovers that count from an allocation annotation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from hami.api import annotations as codec
from hami.api import keys
from hami.api.types import ContainerDevice, PodDevices
from hami.core.errors import RequestInvalid
from hami.core.model import ContainerRequest, Device
from hami.core.policy import MUTEX
from hami.core.status import Reason, Unfit
from hami.core.vendor import Admission, Candidate, FitContext, Pick
from hami.vendors import common, resources
from hami.vendors.config import EnflameConfig
from hami.vendors.family import CapacityRule, Spec, SpecVendor, WholeCardVendor, rules

GCU_SPEC = Spec(
    key=keys.ENFLAME_GCU_VENDOR,
    name="Enflame",
    word="GCU",
    to_allocate=keys.ENFLAME_GCU_TO_ALLOCATE,
    allocated=keys.ENFLAME_GCU_ALLOCATED,
    names=("resource_name_gcu", "", ""),  # whole cards: a count resource only
    lock=None,  # HAMi's Enflame GCU binds without a node lock (§3.13)
    rules=rules(label=keys.ENFLAME_GCU_VENDOR),
    whole=(100, 100, 100),
    capacity=CapacityRule(uuid="GCU", count=1, memory=100),
)
DRS_SPEC = Spec(
    key=keys.ENFLAME_DRS_VENDOR,
    name="Enflame",
    word="GCU",
    allocated=keys.ENFLAME_DRS_ALLOCATED,
    lock=None,  # HAMi's Enflame DRS binds without a node lock (§3.13)
    names=("drs_count_name", "resource_name_gcu_memory", "resource_name_gcu_core"),
    stamps={keys.ENFLAME_ASSIGNED_TIME: "unix-nanos"},
)


@dataclass(frozen=True, slots=True)
class EnflameGcuVendor(WholeCardVendor):
    config: EnflameConfig = field(default_factory=EnflameConfig)
    spec = GCU_SPEC


# --- DRS slices ------------------------------------------------------------------------------------

DIRECT = 0  # ContainerRequest.mem_pct of a slice-count request: memreq is the slice count
BY_SPEC = -1  # … of a memory/core request: memreq is GB (or MiB), coresreq the core percent


@dataclass(frozen=True, slots=True)
class DrsProfile:
    """A profile as the fit uses it: slices, memory and its core percent on this node."""

    name: str
    id: str
    slices: int
    memory_gb: int
    core_pct: int  # ceil(slices × 100 / largest slice count)

    @property
    def memory(self) -> int:
        return self.memory_gb * 1024


@dataclass(frozen=True, slots=True)
class EnflameDrsDevice(Device):
    """A DRS-capable GCU: `count` is its slice capacity; the node's profiles come along."""

    minor: str = ""
    profiles: tuple[DrsProfile, ...] = ()
    # the request's memory is a slice count or GB, not MiB: the cluster summary must not compare
    rough_summary: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class DrsPick(Pick):
    """A DRS pick: the chosen profile and the GCU's minor, for the pod annotations."""

    profile: DrsProfile | None = None
    minor: str = ""


def drs_profiles(capacity: codec.DrsCapacity) -> tuple[DrsProfile, ...]:
    """The registration's profiles with their core percent (sorted by slices, then GB)."""
    largest = max(p.slices for p in capacity.profiles)
    return tuple(
        DrsProfile(p.name, p.id, p.slices, p.memory_gb, -(-p.slices * 100 // largest))
        for p in capacity.profiles
    )


def choose_profile(profiles: Sequence[DrsProfile], request: ContainerRequest) -> DrsProfile | None:
    """HAMi's selectProfileByRequest. Direct: the profile with exactly the requested slices.
    By spec: the first (fewest slices, then least memory) profile with at least the requested
    GB and core percent; a memory value above twice the largest profile GB is MiB (rounded up)."""
    if request.mem_pct == DIRECT:
        return next((p for p in profiles if p.slices == request.memreq), None)
    largest_gb = max((p.memory_gb for p in profiles), default=0)
    want_gb = request.memreq
    if largest_gb > 0 and want_gb > largest_gb * 2:
        want_gb = -(-want_gb // 1024)
    for profile in profiles:
        if want_gb > 0 and profile.memory_gb < want_gb:
            continue
        if request.coresreq > 0 and profile.core_pct < request.coresreq:
            continue
        return profile
    return None


@dataclass(frozen=True, slots=True)
class EnflameDrsVendor(SpecVendor):
    """`Enflame`: DRS slices of a GCU, one instance per container (§4.10)."""

    config: EnflameConfig = field(default_factory=EnflameConfig)
    spec = DRS_SPEC

    # --- admission and requests

    def admit_container(self, container: Mapping[str, object], where: str) -> Admission:
        """Slice count (> 0), or memory (> 0) and/or core percent (1..100); each given resource
        is mirrored into both limits and requests."""
        cfg = self.config
        count = resources.integer(container, cfg.drs_count_name, where)
        if count is not None:
            if count <= 0:
                raise RequestInvalid(where, cfg.drs_count_name, f"{count} must be > 0")
            return Admission(True, _mirrored(container, (cfg.drs_count_name,)))
        memory = resources.integer(container, cfg.resource_name_gcu_memory, where)
        cores = resources.integer(container, cfg.resource_name_gcu_core, where)
        if memory is None and cores is None:
            return Admission(uses_vendor=False, container=container)
        if memory is not None and memory <= 0:
            raise RequestInvalid(where, cfg.resource_name_gcu_memory, f"{memory} must be > 0")
        if cores is not None and not 0 < cores <= 100:
            raise RequestInvalid(
                where, cfg.resource_name_gcu_core, f"{cores} must be between 1 and 100"
            )
        names = tuple(
            name
            for name, value in (
                (cfg.resource_name_gcu_memory, memory),
                (cfg.resource_name_gcu_core, cores),
            )
            if value is not None
        )
        return Admission(True, _mirrored(container, names))

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        """Always one device. Direct: memreq = slices, mem_pct 0; by spec: memreq = memory,
        coresreq = core percent, mem_pct −1 (HAMi's request-mode sentinels)."""
        cfg = self.config
        top = common.INT32_MAX
        count = resources.bounded(container, cfg.drs_count_name, where, 0, top)
        if count:
            return ContainerRequest(self.key, 1, memreq=count, mem_pct=DIRECT)
        memory = resources.bounded(container, cfg.resource_name_gcu_memory, where, 0, top)
        cores = resources.bounded(container, cfg.resource_name_gcu_core, where, 0, top)
        if memory is None and cores is None:
            return None
        return ContainerRequest(
            self.key, 1, memreq=memory or 0, mem_pct=BY_SPEC, coresreq=cores or 0
        )

    # --- registration

    def capacity_devices(
        self,
        node: str,
        capacity: Mapping[str, str],
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
    ) -> tuple[Device, ...]:
        """One device per entry of `enflame.com/gcu-drs-capacity`: count = slice capacity,
        memory = the largest profile's GB × 1024, cores 100 (raises WireFormatError)."""
        value = annotations.get(keys.ENFLAME_DRS_CAPACITY)
        if not value:
            return ()
        decoded = codec.decode_drs_capacity(value, keys.ENFLAME_DRS_CAPACITY)
        profiles = drs_profiles(decoded)
        memory = max(p.memory_gb for p in profiles) * 1024
        return tuple(
            EnflameDrsDevice(
                uuid=f"{node}-enflame-drs-{d.index}",
                vendor=self.key,
                type=self.key,
                count=d.capacity,
                memory=memory,
                cores=100,
                index=d.index,
                minor=d.minor,
                profiles=profiles,
            )
            for d in decoded.devices
        )

    # --- fit and accounting

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        """Choose the profile (none: `ModeNotFit`), then per device: health, UUID filter,
        free slices, mutex, memory, cores."""
        profile = choose_profile(_profiles_of(candidates), request)
        if profile is None:
            return Unfit(counts={Reason.MODE_NOT_FIT: 1}, total=len(candidates))
        reasons: Counter[str] = Counter()
        picks: list[Pick] = []
        for cand in candidates:
            reason = _refusal(cand, profile, ctx)
            if reason is not None:
                reasons[reason] += 1
                continue
            picks.append(_pick(cand, profile))
            if len(picks) == request.nums:
                return tuple(picks)
        if picks:
            reasons[Reason.ALLOCATED_CARDS_INSUFFICIENT_REQUEST] += len(picks)
        return Unfit(counts=dict(reasons), total=len(candidates))

    def slots(self, device: Device, used: ContainerDevice) -> int:
        """The slices a recorded entry takes: the profile with its memory and core percent
        (else its memory alone); 1 when no profile matches."""
        if not isinstance(device, EnflameDrsDevice):
            return 1
        both = [p for p in device.profiles if p.memory == used.usedmem]
        exact = [p for p in both if p.core_pct == used.usedcores]
        found = exact or both
        return found[0].slices if found else 1

    # --- annotations

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        return self.named_pod_annotations(devices, picks, ())

    def named_pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]], names: Sequence[str]
    ) -> dict[str, str]:
        """The allocated list, `enflame.com/gcu-assigned=false`, the first DRS container's
        index/id, minor and slice count, and `assigned-containers` (container → profile).
        Unknown container names are written `container-<position>`, as HAMi does."""
        out = {
            keys.ENFLAME_DRS_ALLOCATED: codec.encode_pod_devices(devices),
            keys.ENFLAME_ASSIGNED: "false",
        }
        assigned: dict[str, codec.DrsAssignment] = {}
        for position, container in enumerate(picks):
            if not container:
                continue
            chosen = container[0]
            profile = chosen.profile if isinstance(chosen, DrsPick) else None
            name = names[position] if position < len(names) else f"container-{position}"
            assigned[name] = codec.DrsAssignment(
                request=max(chosen.slots, 1),
                profile_id=profile.id if profile else "",
                profile_name=profile.name if profile else "",
            )
            if keys.ENFLAME_ASSIGNED_INDEX not in out:
                out[keys.ENFLAME_ASSIGNED_INDEX] = str(chosen.index)
                out[keys.ENFLAME_ASSIGNED_ID] = str(chosen.index)
                minor = chosen.minor if isinstance(chosen, DrsPick) else ""
                out[keys.ENFLAME_ASSIGNED_MINOR] = minor or str(chosen.index)
                out[keys.ENFLAME_REQUEST_SIZE] = str(max(chosen.slots, 1))
        if assigned:
            out[keys.ENFLAME_ASSIGNED_CONTAINERS] = codec.encode_drs_assignments(assigned)
        return out


def _mirrored(container: Mapping[str, object], names: Sequence[str]) -> dict[str, object]:
    """The container with each of ``names`` present in both limits and requests."""
    out = common.mutable(container)
    limits = common.section_of(out, "limits")
    requests = common.section_of(out, "requests")
    for name in names:
        value = limits.get(name)
        if value is None:
            value = requests.get(name)
        limits.setdefault(name, value)
        requests.setdefault(name, value)
    return out


def _profiles_of(candidates: Sequence[Candidate]) -> tuple[DrsProfile, ...]:
    """The profiles of the candidate devices (a node's devices share one list)."""
    for cand in candidates:
        if isinstance(cand.device, EnflameDrsDevice) and cand.device.profiles:
            return cand.device.profiles
    return ()


def _refusal(cand: Candidate, profile: DrsProfile, ctx: FitContext) -> Reason | None:
    dev, use = cand.device, cand.usage
    if not dev.health:
        return Reason.CARD_NOT_HEALTH
    if not common.uuid_allowed(
        dev.uuid, ctx.annotations, keys.ENFLAME_USE_UUID, keys.ENFLAME_NOUSE_UUID
    ):
        return Reason.CARD_UUID_MISMATCH
    if dev.count - use.used < profile.slices:
        return Reason.CARD_TIME_SLICING_EXHAUSTED
    if MUTEX in ctx.policy and use.used > 0:
        return Reason.EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT
    if dev.memory - use.usedmem < profile.memory:
        return Reason.CARD_INSUFFICIENT_MEMORY
    if dev.cores > 0 and dev.cores - use.usedcores < profile.core_pct:
        return Reason.CARD_INSUFFICIENT_CORE
    return None


def _pick(cand: Candidate, profile: DrsProfile) -> DrsPick:
    dev = cand.device
    used = ContainerDevice(
        uuid=dev.uuid,
        type=keys.ENFLAME_DRS_VENDOR,
        usedmem=profile.memory,
        usedcores=profile.core_pct,
    )
    minor = dev.minor if isinstance(dev, EnflameDrsDevice) else ""
    return DrsPick(
        position=cand.position,
        device=used,
        index=dev.index,
        slots=profile.slices,
        profile=profile,
        minor=minor,
    )
