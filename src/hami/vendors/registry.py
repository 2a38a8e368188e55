"""The vendor table: one row per device-config section, in HAMi's registration order (§4.1).

A row names the section, the chart's `devices.<name>` that switches it on, the section's config
type (validated generically by `hami.config`) and the vendors it builds. Adding a vendor is a
spec row in its module, its tests and one row here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hami.core.config import NvidiaConfig, SchedulerConfig
from hami.core.vendor import Vendor
from hami.vendors.amd import AmdVendor
from hami.vendors.ascend import AscendVendor
from hami.vendors.biren import BirenVendor
from hami.vendors.cambricon import CambriconVendor
from hami.vendors.config import (
    AmdConfig,
    BirenConfig,
    CambriconConfig,
    EnflameConfig,
    HygonConfig,
    IluvatarChip,
    KunlunConfig,
    MetaxConfig,
    MthreadsConfig,
    NeuronConfig,
    VastaiConfig,
    VnpusConfig,
    vendor_settings,
)
from hami.vendors.enflame import EnflameDrsVendor, EnflameGcuVendor
from hami.vendors.hygon import HygonVendor
from hami.vendors.iluvatar import IluvatarVendor
from hami.vendors.kunlun import KunlunVendor, KunlunVxpuVendor
from hami.vendors.metax import MetaxGpuVendor, MetaxSgpuVendor
from hami.vendors.mthreads import MthreadsVendor
from hami.vendors.neuron import NeuronVendor
from hami.vendors.nvidia import NvidiaVendor
from hami.vendors.vastai import VastaiVendor


@dataclass(frozen=True, slots=True)
class Row:
    """One device-config section and the vendors it enables."""

    section: str  # the device-config key
    chart: str  # the chart's `devices.<chart>`
    config: type  # the section's type: a dataclass with defaults and constraints
    build: Callable[[Any], Sequence[Vendor]]  # config → the vendors, in registration order
    many: bool = False  # the section is a list of configs (one vendor each)

    def vendor_keys(self, config: object | None = None) -> tuple[str, ...]:
        """The keys of the vendors the section builds (its defaults when ``config`` is None)."""
        if config is None:
            config = () if self.many else self.config()
        return tuple(v.key for v in self.build(config))


TABLE: tuple[Row, ...] = (
    Row("nvidia", "nvidia", NvidiaConfig, lambda c: [NvidiaVendor(c)]),
    Row("cambricon", "cambricon", CambriconConfig, lambda c: [CambriconVendor(c)]),
    Row("hygon", "hygon", HygonConfig, lambda c: [HygonVendor(c)]),
    Row("enflame", "enflame", EnflameConfig, lambda c: [EnflameGcuVendor(c), EnflameDrsVendor(c)]),
    Row("mthreads", "mthreads", MthreadsConfig, lambda c: [MthreadsVendor(c)]),
    Row("metax", "metax", MetaxConfig, lambda c: [MetaxGpuVendor(c), MetaxSgpuVendor(c)]),
    Row("kunlun", "kunlun", KunlunConfig, lambda c: [KunlunVendor(c), KunlunVxpuVendor(c)]),
    Row("awsneuron", "awsneuron", NeuronConfig, lambda c: [NeuronVendor(c)]),
    Row("amd", "amd", AmdConfig, lambda c: [AmdVendor(c)]),
    Row("vastai", "vastai", VastaiConfig, lambda c: [VastaiVendor(c)]),
    Row("biren", "biren", BirenConfig, lambda c: [BirenVendor(c)]),
    Row(
        "vnpus",
        "ascend",
        VnpusConfig,
        lambda c: [AscendVendor(npu, c.hami_vnpu_core) for npu in c.configs],
    ),
    Row(
        "iluvatars",
        "iluvatar",
        IluvatarChip,
        lambda chips: [IluvatarVendor(chip) for chip in chips],
        many=True,
    ),
)
ROWS = {row.section: row for row in TABLE}


def build(config: SchedulerConfig) -> dict[str, Vendor]:
    """Every enabled vendor, keyed by vendor key."""
    settings = vendor_settings(config)
    sections: dict[str, object] = dict(settings.sections)
    if settings.nvidia:
        sections["nvidia"] = config.nvidia
    built = (row.build(sections[row.section]) for row in TABLE if row.section in sections)
    return {v.key: v for vendors in built for v in vendors}
