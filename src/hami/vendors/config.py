"""Per-vendor configuration (the non-NVIDIA sections of HAMi's device-config.yaml, §1.4–§1.5).

`hami.config` validates the file and returns a `VendorAwareConfig`; `registry.build` builds every
vendor whose section is present and enabled. A plain `SchedulerConfig` enables NVIDIA only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hami.core.config import SchedulerConfig


@dataclass(frozen=True, slots=True)
class HygonConfig:
    resource_count_name: str = "hygon.com/dcunum"
    resource_memory_name: str = "hygon.com/dcumem"
    resource_core_name: str = "hygon.com/dcucores"
    memory_factor: int = 1


@dataclass(frozen=True, slots=True)
class CambriconConfig:
    resource_count_name: str = "cambricon.com/vmlu"
    resource_memory_name: str = "cambricon.com/mlu.smlu.vmemory"
    resource_core_name: str = "cambricon.com/mlu.smlu.vcore"


@dataclass(frozen=True, slots=True)
class MthreadsConfig:
    resource_count_name: str = "mthreads.com/vgpu"
    resource_memory_name: str = "mthreads.com/sgpu-memory"
    resource_core_name: str = "mthreads.com/sgpu-core"


@dataclass(frozen=True, slots=True)
class MetaxConfig:
    resource_count_name: str = "metax-tech.com/gpu"
    resource_vcount_name: str = "metax-tech.com/sgpu"
    resource_vmemory_name: str = "metax-tech.com/vmemory"
    resource_vcore_name: str = "metax-tech.com/vcore"
    sgpu_topology_aware: bool = False


@dataclass(frozen=True, slots=True)
class KunlunConfig:
    resource_count_name: str = "kunlunxin.com/xpu"
    resource_vcount_name: str = "kunlunxin.com/vxpu"
    resource_vmemory_name: str = "kunlunxin.com/vxpu-memory"


@dataclass(frozen=True, slots=True)
class NeuronConfig:
    """`awsneuron:` — whole Neuron devices and NeuronCores."""

    resource_count_name: str = "aws.amazon.com/neuron"
    resource_core_name: str = "aws.amazon.com/neuroncore"


@dataclass(frozen=True, slots=True)
class CountConfig:
    """A vendor configured by its count resource only (Biren, Vastai, Enflame GCU)."""

    resource_count_name: str


@dataclass(frozen=True, slots=True)
class EnflameDrsConfig:
    """The DRS-slice resources of the `enflame:` section (HAMi's Enflame vendor, §4.10)."""

    resource_name_drsgcu: str = "enflame.com/drs-gcu"
    resource_name_gcu_memory: str = "enflame.com/gcu-memory"
    resource_name_gcu_core: str = "enflame.com/gcu-core"


@dataclass(frozen=True, slots=True)
class AmdConfig:
    resource_count_name: str = "amd.com/gpu"
    resource_memory_name: str = "amd.com/gpumem"
    resource_core_name: str = "amd.com/gpucores"


@dataclass(frozen=True, slots=True)
class IluvatarChip:
    """One entry of `iluvatars:`; the vendor key is the common word (e.g. `BI-V100`)."""

    chip_name: str
    common_word: str
    resource_count_name: str
    resource_memory_name: str
    resource_core_name: str

    @classmethod
    def named(cls, chip: str) -> IluvatarChip:
        """The chart's default names for ``chip``."""
        return cls(
            chip_name=chip,
            common_word=chip,
            resource_count_name=f"iluvatar.ai/{chip}-vgpu",
            resource_memory_name=f"iluvatar.ai/{chip}.vMem",
            resource_core_name=f"iluvatar.ai/{chip}.vCore",
        )


DEFAULT_ILUVATAR_CHIPS = ("MR-V100", "MR-V50", "BI-V150", "BI-V100")


@dataclass(frozen=True, slots=True)
class VnpuTemplate:
    name: str
    memory: int  # MiB
    ai_core: int = 0
    ai_cpu: int = 0


@dataclass(frozen=True, slots=True)
class VnpuConfig:
    """One entry of `vnpus.configs` (one Ascend vendor, keyed by its common word)."""

    chip_name: str
    common_word: str
    resource_name: str
    resource_memory_name: str
    resource_core_name: str = ""
    memory_allocatable: int = 0
    memory_capacity: int = 0
    memory_factor: int = 1
    ai_core: int = 0
    ai_cpu: int = 0
    runtime_class_name: str = ""
    overwrite_env: bool = False
    super_pod: bool = False
    templates: tuple[VnpuTemplate, ...] = ()

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
class VendorSettings:
    """Which vendors are enabled, and how each is configured (None / empty = disabled)."""

    nvidia: bool = True
    hygon: HygonConfig | None = None
    cambricon: CambriconConfig | None = None
    mthreads: MthreadsConfig | None = None
    metax: MetaxConfig | None = None
    kunlun: KunlunConfig | None = None
    awsneuron: NeuronConfig | None = None
    amd: AmdConfig | None = None
    enflame_gcu: CountConfig | None = None
    enflame_drs: EnflameDrsConfig | None = None
    vastai: CountConfig | None = None
    biren: CountConfig | None = None
    iluvatars: tuple[IluvatarChip, ...] = ()
    vnpus: tuple[VnpuConfig, ...] = ()
    hami_vnpu_core: bool = False


@dataclass(frozen=True, slots=True)
class VendorAwareConfig(SchedulerConfig):
    """A scheduler configuration that also carries the vendor sections."""

    vendors: VendorSettings = field(default_factory=VendorSettings)


def vendor_settings(config: SchedulerConfig) -> VendorSettings:
    """The vendor sections of ``config`` (NVIDIA only for a plain `SchedulerConfig`)."""
    return config.vendors if isinstance(config, VendorAwareConfig) else VendorSettings()
