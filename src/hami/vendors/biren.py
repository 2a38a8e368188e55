"""Biren: whole-GPU slots on a JSON registration (wire-format.md §4.14)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from hami.api import keys
from hami.api.annotations import allocated_key, to_allocate_key
from hami.core.model import Device
from hami.vendors.config import BirenConfig
from hami.vendors.family import COUNT_ONLY, CountVendor, Spec

SPEC = Spec(
    key=keys.BIREN_VENDOR,
    name="Biren",
    word="GPU",
    register=keys.BIREN_REGISTER,
    handshake=keys.BIREN_HANDSHAKE,
    to_allocate=to_allocate_key(keys.BIREN_VENDOR),
    allocated=allocated_key(keys.BIREN_VENDOR),
    names=COUNT_ONLY,
    uuid_keys=(keys.BIREN_USE_UUID, keys.BIREN_NOUSE_UUID),
)


@dataclass(frozen=True, slots=True)
class BirenVendor(CountVendor):
    config: BirenConfig = field(default_factory=BirenConfig)
    spec = SPEC

    def node_devices(self, annotations: Mapping[str, str]) -> tuple[Device, ...]:
        found = CountVendor.node_devices(self, annotations)
        return tuple(dataclasses.replace(d, cores=100) for d in found)
