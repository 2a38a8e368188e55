"""Cambricon MLU: dynamic-SMLU slices learnt from node capacity (wire-format.md §4.4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hami.api import keys
from hami.api.types import PodDevices
from hami.core.vendor import NodeLockSpec, Pick
from hami.vendors import common
from hami.vendors.config import CambriconConfig
from hami.vendors.family import CapacityRule, SlicedVendor, Spec, rules

_UNIT = keys.CAMBRICON_MEMORY_UNIT
CAMBRICON_LOCK_EXPIRY = 120.0  # seconds (§4.4)

SPEC = Spec(
    key=keys.CAMBRICON_VENDOR,
    name="Cambricon",
    word="MLU",
    to_allocate=keys.CAMBRICON_TO_ALLOCATE,
    allocated=keys.CAMBRICON_ALLOCATED,
    # `cambricon.com/dsmlu.lock`: a bare RFC3339 time, taken over after 2 minutes (§4.4)
    lock=NodeLockSpec(keys.CAMBRICON_LOCK, expiry=CAMBRICON_LOCK_EXPIRY, owner=False),
    memory_unit=_UNIT,
    rules=rules(
        quota=True,
        label=keys.CAMBRICON_VENDOR,
        use_uuid_key=keys.CAMBRICON_USE_UUID,
        nouse_uuid_key=keys.CAMBRICON_NOUSE_UUID,
    ),
    # ceil(vcore/100) cards sharing the vmemory capacity evenly, each shared by up to 100 tasks
    capacity=CapacityRule(uuid="cambricon-mlu", count=100, per_card=100, type="MLU"),
)


@dataclass(frozen=True, slots=True)
class CambriconVendor(SlicedVendor):
    """The `MLU` vendor, configured by the `cambricon:` section."""

    config: CambriconConfig = field(default_factory=CambriconConfig)
    spec = SPEC

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        out = SlicedVendor.pod_annotations(self, devices, picks)
        out[keys.CAMBRICON_ASSIGNED] = "false"
        first = common.first_device_index(picks)
        if first is not None:
            pick = picks[first][0]
            used = pick.device
            out[keys.CAMBRICON_PROFILE] = f"{pick.index}_{used.usedcores}_{used.usedmem // _UNIT}"
        return out
