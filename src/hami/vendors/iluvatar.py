"""Iluvatar: one vendor per configured chip, slices on the legacy comma registration (§4.6)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hami.api import keys
from hami.api.annotations import allocated_key, to_allocate_key
from hami.api.types import PodDevices
from hami.core.model import ContainerRequest, Device
from hami.core.slicefit import SliceRules, slice_fit
from hami.core.status import Unfit
from hami.core.vendor import Admission, Candidate, FitContext, Pick, RegistrationHealth
from hami.vendors import common, resources
from hami.vendors.config import IluvatarChip

_UNIT = keys.ILUVATAR_MEMORY_UNIT


@dataclass(frozen=True, slots=True)
class IluvatarVendor:
    """The `<chip>` vendor (e.g. `BI-V100`), configured by one entry of `iluvatars:`."""

    chip: IluvatarChip

    @property
    def key(self) -> str:
        return self.chip.common_word

    @property
    def register_key(self) -> str:
        return f"hami.io/node-{self.key}-register"

    @property
    def handshake_key(self) -> str:
        return f"hami.io/node-handshake-{self.key}"

    def _rules(self) -> SliceRules:
        return SliceRules(
            gates=False,
            mig=False,
            topology=False,
            quota=False,
            label=self.key,
            use_uuid_key=f"hami.io/use-{self.key}-uuid",
            nouse_uuid_key=f"hami.io/no-use-{self.key}-uuid",
        )

    @property
    def registration_health(self) -> RegistrationHealth:
        """Handshake and liveness resource for the scheduler's registration loop (§2.7)."""
        return RegistrationHealth(self.chip.resource_count_name, handshake_key=self.handshake_key)

    def admit_container(self, container: Mapping[str, object], where: str) -> Admission:
        """A multi-card request takes whole cards (vCore = count × 100); the container's name
        goes into `SOL_CONTINER_NAME`."""
        chip = self.chip
        if chip.resource_count_name not in resources.limits(container):
            return Admission(uses_vendor=False, container=container)
        self.parse_container(container, where)
        out = common.mutable(container)
        count = resources.integer(out, chip.resource_count_name, where) or 0
        if count > 1:
            common.section_of(out, "limits")[chip.resource_core_name] = count * 100
        env = {keys.ILUVATAR_CONTAINER_ENV: str(container.get("name") or "")}
        return Admission(uses_vendor=True, container=out, env=env)

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        chip = self.chip
        nums = resources.bounded(container, chip.resource_count_name, where, 0, common.INT32_MAX)
        if not nums:
            return None
        units = resources.bounded(container, chip.resource_memory_name, where, 0) or 0
        memreq = common.scaled_memory(units, _UNIT, where, chip.resource_memory_name)
        cores = resources.bounded(container, chip.resource_core_name, where, 0) or 0
        return ContainerRequest(
            vendor=self.key,
            nums=nums,
            memreq=memreq,
            mem_pct=100 if memreq == 0 else 0,
            coresreq=cores,
        )

    def node_devices(self, annotations: Mapping[str, str]) -> tuple[Device, ...]:
        return common.registered_devices(annotations, self.register_key, self.key)

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        return slice_fit(candidates, request, ctx, self._rules())

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        return common.device_list_annotations(
            devices, to_allocate_key(self.key), allocated_key(self.key)
        )

    def allocated_devices(self, annotations: Mapping[str, str]) -> PodDevices | None:
        return common.decode_allocated(annotations, allocated_key(self.key))
