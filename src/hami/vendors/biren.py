"""Biren: whole-GPU slots on a JSON registration (wire-format.md §4.14)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hami.api import keys
from hami.api.annotations import allocated_key, to_allocate_key
from hami.api.types import PodDevices
from hami.core.model import ContainerRequest, Device
from hami.core.status import Unfit
from hami.core.vendor import Admission, Candidate, FitContext, Pick, RegistrationHealth
from hami.vendors import common, countfit, resources
from hami.vendors.config import CountConfig


def _default() -> CountConfig:
    return CountConfig("birentech.com/gpu")


@dataclass(frozen=True, slots=True)
class BirenVendor:
    config: CountConfig = field(default_factory=_default)

    @property
    def key(self) -> str:
        return keys.BIREN_VENDOR

    @property
    def registration_health(self) -> RegistrationHealth:
        """Handshake and liveness resource for the scheduler's registration loop (§2.7)."""
        return RegistrationHealth(
            self.config.resource_count_name, handshake_key=keys.BIREN_HANDSHAKE
        )

    def admit_container(self, container: Mapping[str, object], where: str) -> Admission:
        return common.admit_if_counted(self, self.config.resource_count_name, container, where)

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        name = self.config.resource_count_name
        nums = resources.bounded(container, name, where, 0, common.INT32_MAX)
        return ContainerRequest(vendor=self.key, nums=nums, mem_pct=100) if nums else None

    def node_devices(self, annotations: Mapping[str, str]) -> tuple[Device, ...]:
        found = common.registered_devices(annotations, keys.BIREN_REGISTER, self.key)
        return tuple(dataclasses.replace(d, cores=100) for d in found)

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        keys_ = (keys.BIREN_USE_UUID, keys.BIREN_NOUSE_UUID)
        found, reasons = countfit.usable(candidates, ctx, keys_)
        if len(found) < request.nums:
            return countfit.short(reasons, len(found), len(candidates))
        return tuple(countfit.pick(c, self.key) for c in found[: request.nums])

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        return common.device_list_annotations(
            devices, to_allocate_key(self.key), allocated_key(self.key)
        )

    def allocated_devices(self, annotations: Mapping[str, str]) -> PodDevices | None:
        return common.decode_allocated(annotations, allocated_key(self.key))
