"""Vendor registry: one line per vendor. Adding a vendor touches its module, its tests and here.

Each factory returns the vendors its config section enables (none when the section is absent),
in HAMi's registration order (§4.1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from hami.core.config import SchedulerConfig
from hami.core.vendor import Vendor
from hami.vendors.amd import AmdVendor
from hami.vendors.ascend import AscendVendor
from hami.vendors.biren import BirenVendor
from hami.vendors.cambricon import CambriconVendor
from hami.vendors.config import VendorSettings, vendor_settings
from hami.vendors.enflame import EnflameDrsVendor, EnflameGcuVendor
from hami.vendors.hygon import HygonVendor
from hami.vendors.iluvatar import IluvatarVendor
from hami.vendors.kunlun import KunlunVendor, KunlunVxpuVendor
from hami.vendors.metax import MetaxGpuVendor, MetaxSgpuVendor
from hami.vendors.mthreads import MthreadsVendor
from hami.vendors.neuron import NeuronVendor
from hami.vendors.nvidia import NvidiaVendor
from hami.vendors.vastai import VastaiVendor

Factory = Callable[[SchedulerConfig, VendorSettings], Iterable[Vendor]]

_FACTORIES: Sequence[Factory] = (
    lambda cfg, v: [NvidiaVendor(cfg.nvidia)] if v.nvidia else [],
    lambda cfg, v: [CambriconVendor(v.cambricon)] if v.cambricon else [],
    lambda cfg, v: [HygonVendor(v.hygon)] if v.hygon else [],
    lambda cfg, v: [EnflameGcuVendor(v.enflame_gcu)] if v.enflame_gcu else [],
    lambda cfg, v: [EnflameDrsVendor(v.enflame_drs)] if v.enflame_drs else [],
    lambda cfg, v: [MthreadsVendor(v.mthreads)] if v.mthreads else [],
    lambda cfg, v: [MetaxGpuVendor(v.metax), MetaxSgpuVendor(v.metax)] if v.metax else [],
    lambda cfg, v: [KunlunVendor(v.kunlun), KunlunVxpuVendor(v.kunlun)] if v.kunlun else [],
    lambda cfg, v: [NeuronVendor(v.awsneuron)] if v.awsneuron else [],
    lambda cfg, v: [AmdVendor(v.amd)] if v.amd else [],
    lambda cfg, v: [VastaiVendor(v.vastai)] if v.vastai else [],
    lambda cfg, v: [BirenVendor(v.biren)] if v.biren else [],
    lambda cfg, v: [AscendVendor(c, v.hami_vnpu_core) for c in v.vnpus],
    lambda cfg, v: [IluvatarVendor(chip) for chip in v.iluvatars],
)


def build(config: SchedulerConfig) -> dict[str, Vendor]:
    """Every enabled vendor, keyed by vendor key."""
    settings = vendor_settings(config)
    return {v.key: v for factory in _FACTORIES for v in factory(config, settings)}
