"""Hygon DCU: HAMi-core style slices on the legacy comma registration (wire-format.md §4.5)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hami.api import keys
from hami.vendors.config import HygonConfig
from hami.vendors.family import SlicedVendor, Spec, rules

SPEC = Spec(
    key=keys.HYGON_VENDOR,
    name="Hygon",
    word="DCU",
    register=keys.HYGON_REGISTER,
    handshake=keys.HYGON_HANDSHAKE,
    to_allocate=keys.HYGON_TO_ALLOCATE,
    allocated=keys.HYGON_ALLOCATED,
    rules=rules(
        label=keys.HYGON_VENDOR,
        use_type_key=keys.HYGON_USE_TYPE,
        nouse_type_key=keys.HYGON_NOUSE_TYPE,
        use_uuid_key=keys.HYGON_USE_UUID,
        nouse_uuid_key=keys.HYGON_NOUSE_UUID,
    ),
)


@dataclass(frozen=True, slots=True)
class HygonVendor(SlicedVendor):
    """The `DCU` vendor, configured by the `hygon:` section."""

    config: HygonConfig = field(default_factory=HygonConfig)
    spec = SPEC
