"""Hygon DCU: HAMi-core style slices on the legacy comma registration (wire-format.md §4.5)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hami.api import keys
from hami.api.types import PodDevices
from hami.core.model import ContainerRequest, Device
from hami.core.slicefit import SliceRules, slice_fit
from hami.core.status import Unfit
from hami.core.vendor import Admission, Candidate, FitContext, Pick, RegistrationHealth
from hami.vendors import common, resources
from hami.vendors.config import HygonConfig

_RULES = SliceRules(
    gates=False,
    mig=False,
    topology=False,
    quota=False,
    label=keys.HYGON_VENDOR,
    use_type_key=keys.HYGON_USE_TYPE,
    nouse_type_key=keys.HYGON_NOUSE_TYPE,
    use_uuid_key=keys.HYGON_USE_UUID,
    nouse_uuid_key=keys.HYGON_NOUSE_UUID,
)


@dataclass(frozen=True, slots=True)
class HygonVendor:
    """The `DCU` vendor, configured by the `hygon:` section."""

    config: HygonConfig = field(default_factory=HygonConfig)

    @property
    def key(self) -> str:
        return keys.HYGON_VENDOR

    @property
    def registration_health(self) -> RegistrationHealth:
        """Handshake and liveness resource for the scheduler's registration loop (§2.7)."""
        return RegistrationHealth(
            self.config.resource_count_name, handshake_key=keys.HYGON_HANDSHAKE
        )

    def admit_container(self, container: Mapping[str, object], where: str) -> Admission:
        """Used iff the count resource is in limits; values are validated, nothing is changed."""
        return common.admit_if_counted(self, self.config.resource_count_name, container, where)

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        cfg = self.config
        nums = resources.bounded(container, cfg.resource_count_name, where, 0, common.INT32_MAX)
        if not nums:
            return None
        mem = resources.bounded(container, cfg.resource_memory_name, where, 0) or 0
        memreq = common.scaled_memory(mem, cfg.memory_factor, where, cfg.resource_memory_name)
        cores = resources.bounded(container, cfg.resource_core_name, where, 0, 100)
        return ContainerRequest(
            vendor=self.key,
            nums=nums,
            memreq=memreq,
            mem_pct=100 if memreq == 0 else 0,
            coresreq=100 if cores is None else cores,
        )

    def node_devices(self, annotations: Mapping[str, str]) -> tuple[Device, ...]:
        return common.registered_devices(annotations, keys.HYGON_REGISTER, self.key)

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        return slice_fit(candidates, request, ctx, _RULES)

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        return common.device_list_annotations(devices, keys.HYGON_TO_ALLOCATE, keys.HYGON_ALLOCATED)

    def allocated_devices(self, annotations: Mapping[str, str]) -> PodDevices | None:
        return common.decode_allocated(annotations, keys.HYGON_ALLOCATED)
