"""Vendor registry: one line per vendor. Adding a vendor touches its module, its tests and here."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from hami.core.config import SchedulerConfig
from hami.core.vendor import Vendor
from hami.vendors.nvidia import NvidiaVendor

_FACTORIES: Mapping[str, Callable[[SchedulerConfig], Vendor]] = {
    "NVIDIA": lambda cfg: NvidiaVendor(cfg.nvidia),
}


def build(config: SchedulerConfig) -> dict[str, Vendor]:
    """Every enabled vendor, keyed by vendor key."""
    vendors = (factory(config) for factory in _FACTORIES.values())
    return {v.key: v for v in vendors}
