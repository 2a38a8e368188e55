"""Cambricon MLU: dynamic-SMLU slices learnt from node capacity (wire-format.md §4.4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hami.api import keys
from hami.api.types import PodDevices
from hami.core.model import ContainerRequest, Device
from hami.core.slicefit import SliceRules, slice_fit
from hami.core.status import Unfit
from hami.core.vendor import Admission, Candidate, FitContext, NodeLockSpec, Pick
from hami.vendors import common, resources
from hami.vendors.config import CambriconConfig

_RULES = SliceRules(
    gates=False,
    mig=False,
    topology=False,
    quota=True,
    label=keys.CAMBRICON_VENDOR,
    use_uuid_key=keys.CAMBRICON_USE_UUID,
    nouse_uuid_key=keys.CAMBRICON_NOUSE_UUID,
)
_UNIT = keys.CAMBRICON_MEMORY_UNIT
_SLOTS = 100  # each card is shared by up to 100 tasks

CAMBRICON_LOCK_EXPIRY = 120.0  # seconds (§4.4)


@dataclass(frozen=True, slots=True)
class CambriconVendor:
    """The `MLU` vendor, configured by the `cambricon:` section."""

    config: CambriconConfig = field(default_factory=CambriconConfig)

    @property
    def key(self) -> str:
        return keys.CAMBRICON_VENDOR

    @property
    def node_lock(self) -> NodeLockSpec | None:
        """`cambricon.com/dsmlu.lock`: a bare RFC3339 time, taken over after 2 minutes (§4.4)."""
        return NodeLockSpec(keys.CAMBRICON_LOCK, expiry=CAMBRICON_LOCK_EXPIRY, owner=False)

    def admit_container(self, container: Mapping[str, object], where: str) -> Admission:
        return common.admit_if_counted(self, self.config.resource_count_name, container, where)

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        cfg = self.config
        nums = resources.bounded(container, cfg.resource_count_name, where, 0, common.INT32_MAX)
        if not nums:
            return None
        units = resources.bounded(container, cfg.resource_memory_name, where, 0) or 0
        memreq = common.scaled_memory(units, _UNIT, where, cfg.resource_memory_name)
        cores = resources.bounded(container, cfg.resource_core_name, where, 0, 100)
        return ContainerRequest(
            vendor=self.key,
            nums=nums,
            memreq=memreq,
            mem_pct=100 if memreq == 0 else 0,
            coresreq=100 if cores is None else cores,
        )

    def node_devices(self, annotations: Mapping[str, str]) -> tuple[Device, ...]:
        return ()  # Cambricon registers through node capacity (capacity_devices)

    def capacity_devices(
        self,
        node: str,
        capacity: Mapping[str, str],
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
    ) -> tuple[Device, ...]:
        """ceil(vcore/100) cards sharing the vmemory capacity evenly."""
        cards = common.capacity_of(capacity, self.config.resource_core_name)
        if cards <= 0:
            return ()
        memory = common.capacity_of(capacity, self.config.resource_memory_name)
        per_card = memory * _UNIT * 100 // cards
        return tuple(
            Device(
                uuid=f"{node}-cambricon-mlu-{i}",
                vendor=self.key,
                type="MLU",
                count=_SLOTS,
                memory=per_card,
                cores=100,
                index=i,
            )
            for i in range(-(-cards // 100))
        )

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        return slice_fit(candidates, request, ctx, _RULES)

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        out = common.device_list_annotations(
            devices, keys.CAMBRICON_TO_ALLOCATE, keys.CAMBRICON_ALLOCATED
        )
        out[keys.CAMBRICON_ASSIGNED] = "false"
        first = common.first_device_index(picks)
        if first is not None:
            pick = picks[first][0]
            used = pick.device
            out[keys.CAMBRICON_PROFILE] = f"{pick.index}_{used.usedcores}_{used.usedmem // _UNIT}"
        return out

    def allocated_devices(self, annotations: Mapping[str, str]) -> PodDevices | None:
        return common.decode_allocated(annotations, keys.CAMBRICON_ALLOCATED)
