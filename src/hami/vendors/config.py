"""Per-vendor configuration (the non-NVIDIA sections of HAMi's device-config.yaml, §1.4–§1.5).

Each section's type is written once, here, with its defaults and constraints; `hami.config`
validates every section generically from its type (keys are the camelCase field names), and
`registry.build` builds every vendor whose section is present and enabled. A plain
`SchedulerConfig` enables NVIDIA only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from annotated_types import Ge, MinLen

from hami.core.config import SchedulerConfig

# Constraints that `hami.config` checks when it validates a section (annotated_types markers).
Name = Annotated[str, MinLen(1)]
Positive = Annotated[int, Ge(1)]
NonNegative = Annotated[int, Ge(0)]


@dataclass(frozen=True, slots=True)
class HygonConfig:
    resource_count_name: Name = "hygon.com/dcunum"
    resource_memory_name: str = "hygon.com/dcumem"
    resource_core_name: str = "hygon.com/dcucores"
    memory_factor: Positive = 1


@dataclass(frozen=True, slots=True)
class CambriconConfig:
    resource_count_name: Name = "cambricon.com/vmlu"
    resource_memory_name: Name = "cambricon.com/mlu.smlu.vmemory"
    resource_core_name: Name = "cambricon.com/mlu.smlu.vcore"


@dataclass(frozen=True, slots=True)
class MthreadsConfig:
    resource_count_name: Name = "mthreads.com/vgpu"
    resource_memory_name: Name = "mthreads.com/sgpu-memory"
    resource_core_name: Name = "mthreads.com/sgpu-core"


@dataclass(frozen=True, slots=True)
class MetaxConfig:
    resource_count_name: Name = "metax-tech.com/gpu"
    resource_vcount_name: Name = "metax-tech.com/sgpu"
    resource_vmemory_name: Name = "metax-tech.com/vmemory"
    resource_vcore_name: Name = "metax-tech.com/vcore"
    sgpu_topology_aware: bool = False


@dataclass(frozen=True, slots=True)
class KunlunConfig:
    resource_count_name: Name = "kunlunxin.com/xpu"
    resource_vcount_name: Name = "kunlunxin.com/vxpu"
    resource_vmemory_name: Name = "kunlunxin.com/vxpu-memory"


@dataclass(frozen=True, slots=True)
class NeuronConfig:
    """`awsneuron:` — whole Neuron devices and NeuronCores."""

    resource_count_name: Name = "aws.amazon.com/neuron"
    resource_core_name: Name = "aws.amazon.com/neuroncore"


@dataclass(frozen=True, slots=True)
class VastaiConfig:
    resource_count_name: Name = "vastaitech.com/va"


@dataclass(frozen=True, slots=True)
class BirenConfig:
    resource_count_name: Name = "birentech.com/gpu"


@dataclass(frozen=True, slots=True)
class EnflameConfig:
    """`enflame:`: whole GCUs (`GCU`) and DRS slices (`Enflame`); the vGCU name only stands in
    for an empty `resourceNameDRSGCU`, as in HAMi (§4.10)."""

    resource_name_gcu: Name = "enflame.com/gcu"
    resource_name_drsgcu: str = "enflame.com/drs-gcu"
    resource_name_gcu_memory: str = "enflame.com/gcu-memory"
    resource_name_gcu_core: str = "enflame.com/gcu-core"
    resource_name_vgcu: str = ""
    resource_name_vgcu_percentage: str = ""

    @property
    def drs_count_name(self) -> str:
        return self.resource_name_drsgcu or self.resource_name_vgcu or "enflame.com/drs-gcu"


@dataclass(frozen=True, slots=True)
class AmdConfig:
    resource_count_name: Name = "amd.com/gpu"
    resource_memory_name: Name = "amd.com/gpumem"
    resource_core_name: Name = "amd.com/gpucores"


@dataclass(frozen=True, slots=True)
class IluvatarChip:
    """One entry of `iluvatars:`; the vendor key is the common word (e.g. `BI-V100`)."""

    chip_name: Name
    common_word: str = ""
    resource_count_name: str = ""
    resource_memory_name: str = ""
    resource_core_name: str = ""

    @classmethod
    def named(cls, chip: str) -> IluvatarChip:
        """The chart's default names for ``chip``."""
        return cls(chip_name=chip).completed()

    def completed(self) -> IluvatarChip:
        """Unset names filled from the common word (itself the chip name when unset)."""
        word = self.common_word or self.chip_name
        return IluvatarChip(
            chip_name=self.chip_name,
            common_word=word,
            resource_count_name=self.resource_count_name or f"iluvatar.ai/{word}-vgpu",
            resource_memory_name=self.resource_memory_name or f"iluvatar.ai/{word}.vMem",
            resource_core_name=self.resource_core_name or f"iluvatar.ai/{word}.vCore",
        )


DEFAULT_ILUVATAR_CHIPS = ("MR-V100", "MR-V50", "BI-V150", "BI-V100")


@dataclass(frozen=True, slots=True)
class VnpuTemplate:
    name: Name
    memory: Positive  # MiB
    ai_core: NonNegative = 0
    ai_cpu: NonNegative = 0


@dataclass(frozen=True, slots=True)
class VnpuConfig:
    """One entry of `vnpus.configs` (one Ascend vendor, keyed by its common word)."""

    common_word: Name
    chip_name: str = ""
    resource_name: str = ""
    resource_memory_name: str = ""
    resource_core_name: str = ""
    memory_allocatable: NonNegative = 0
    memory_capacity: NonNegative = 0
    memory_factor: Positive = 1
    ai_core: NonNegative = 0
    ai_cpu: NonNegative = 0
    runtime_class_name: str = ""
    overwrite_env: bool = False
    super_pod: bool = False
    templates: tuple[VnpuTemplate, ...] = ()

    def completed(self) -> VnpuConfig:
        """Unset names and capacity filled as HAMi does (`huawei.com/<commonWord>`…)."""
        resource = self.resource_name or f"huawei.com/{self.common_word}"
        return dataclasses.replace(
            self,
            chip_name=self.chip_name or self.common_word,
            resource_name=resource,
            resource_memory_name=self.resource_memory_name or f"{resource}-memory",
            resource_core_name=self.resource_core_name or f"{resource}-core",
            memory_capacity=self.memory_capacity or self.memory_allocatable,
        )

    def sorted_templates(self) -> tuple[VnpuTemplate, ...]:
        """Templates by memory ascending (HAMi sorts them on load)."""
        return tuple(sorted(self.templates, key=lambda t: t.memory))


def _vnpu(
    cw: str,
    mem: tuple[int, int],
    cores: tuple[int, int],
    templates: tuple[VnpuTemplate, ...],
    chip: str | None = None,
    super_pod: bool = False,
) -> VnpuConfig:
    resource = f"huawei.com/{cw}"
    return VnpuConfig(
        chip_name=chip or cw.removeprefix("Ascend"),
        common_word=cw,
        resource_name=resource,
        resource_memory_name=f"{resource}-memory",
        resource_core_name=f"{resource}-core",
        memory_allocatable=mem[0],
        memory_capacity=mem[1],
        ai_core=cores[0],
        ai_cpu=cores[1],
        super_pod=super_pod,
        templates=templates,
    )


_T = VnpuTemplate
_B3 = (_T("vir05_1c_16g", 16384, 5, 1), _T("vir10_3c_32g", 32768, 10, 3))
# The chart's default vNPU configs (wire-format.md §1.5).
DEFAULT_VNPUS: tuple[VnpuConfig, ...] = (
    _vnpu(
        "Ascend910A",
        (32768, 32768),
        (30, 0),
        (_T("vir02", 2184, 2), _T("vir04", 4369, 4), _T("vir08", 8738, 8), _T("vir16", 17476, 16)),
    ),
    _vnpu(
        "Ascend910B2",
        (65536, 65536),
        (24, 6),
        (
            _T("vir03_1c_8g", 8192, 3, 1),
            _T("vir06_1c_16g", 16384, 6, 1),
            _T("vir12_3c_32g", 32768, 12, 3),
        ),
    ),
    _vnpu("Ascend910B3", (65536, 65536), (20, 7), _B3),
    _vnpu("Ascend910B4-1", (65536, 65536), (20, 7), _B3),
    _vnpu(
        "Ascend910B4",
        (32768, 32768),
        (20, 7),
        (_T("vir05_1c_8g", 8192, 5, 1), _T("vir10_3c_16g", 16384, 10, 3)),
    ),
    _vnpu(
        "Ascend310P",
        (21527, 24576),
        (8, 7),
        (_T("vir01", 3072, 1, 1), _T("vir02", 6144, 2, 2), _T("vir04", 12288, 4, 4)),
    ),
    _vnpu("Ascend910C", (65536, 65536), (20, 7), _B3, chip="Ascend910", super_pod=True),
)


@dataclass(frozen=True, slots=True)
class VnpusConfig:
    """`vnpus:` — one Ascend vendor per entry of ``configs`` (the chart's NPUs by default)."""

    hami_vnpu_core: bool = False
    configs: tuple[VnpuConfig, ...] = DEFAULT_VNPUS

    def completed(self) -> VnpusConfig:
        return VnpusConfig(self.hami_vnpu_core, tuple(c.completed() for c in self.configs))


@dataclass(frozen=True, slots=True)
class VendorSettings:
    """The enabled vendor sections: section name → its validated config (a list section gives
    a tuple); NVIDIA's own section lives in `SchedulerConfig.nvidia`."""

    nvidia: bool = True
    sections: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VendorAwareConfig(SchedulerConfig):
    """A scheduler configuration that also carries the vendor sections."""

    vendors: VendorSettings = field(default_factory=VendorSettings)


def vendor_settings(config: SchedulerConfig) -> VendorSettings:
    """The vendor sections of ``config`` (NVIDIA only for a plain `SchedulerConfig`)."""
    return config.vendors if isinstance(config, VendorAwareConfig) else VendorSettings()
