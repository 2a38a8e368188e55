"""Loading the scheduler configuration file (HAMi's device-config.yaml keys, §1.4).

Precedence: built-in defaults < the file < explicit overrides from the command line.
Every problem is reported as one `ConfigError` naming the file and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from hami import yamlio
from hami.core.config import GPU_POLICIES, NvidiaConfig, SchedulerConfig
from hami.core.policy import parse_gpu_policy
from hami.vendors.config import (
    AmdConfig,
    CambriconConfig,
    CountConfig,
    EnflameDrsConfig,
    HygonConfig,
    IluvatarChip,
    KunlunConfig,
    MetaxConfig,
    MthreadsConfig,
    NeuronConfig,
    VendorAwareConfig,
    VendorSettings,
    VnpuConfig,
    VnpuTemplate,
)

# Sections of HAMi's device config whose vendors are not implemented yet: accepted (so a HAMi
# file loads) and ignored. Every other section is validated and configures its vendor.
VENDOR_SECTIONS: frozenset[str] = frozenset()


class ConfigError(ValueError):
    """A configuration file cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True
    )


class MigProfileRule(_Strict):
    models: list[str] = Field(min_length=1)
    profiles: list[str] = Field(min_length=1)


class NvidiaSection(_Strict):
    resource_count_name: str = "nvidia.com/gpu"
    resource_memory_name: str = "nvidia.com/gpumem"
    resource_memory_percentage_name: str = "nvidia.com/gpumem-percentage"
    resource_core_name: str = "nvidia.com/gpucores"
    resource_priority_name: str = "nvidia.com/priority"
    overwrite_env: bool = False
    default_memory: int = Field(0, ge=0)
    default_cores: int = Field(0, ge=0, le=100)
    default_gpu_num: int = Field(1, ge=0, alias="defaultGPUNum")
    memory_factor: int = Field(1, ge=1)
    disable_core_limit: bool = False
    gpu_core_policy: Literal["default", "force", "disable"] = "default"
    runtime_class_name: str = ""
    mig_profile_allowlist: list[MigProfileRule] = []
    device_split_count: int = Field(10, ge=1)
    device_memory_scaling: float = Field(1.0, gt=0)
    device_core_scaling: float = Field(1.0, gt=0)
    pre_configured_device_memory: int = Field(0, ge=0)
    lib_cuda_log_level: int = Field(1, ge=0, le=4)
    enable_numa_topology: bool = False
    enabled: bool = True  # hami extension: false switches the NVIDIA vendor off

    def to_core(self) -> NvidiaConfig:
        fields = self.model_dump(exclude={"mig_profile_allowlist", "enabled"})
        return NvidiaConfig(**fields)


class HygonSection(_Strict):
    resource_count_name: str = Field("hygon.com/dcunum", min_length=1)
    resource_memory_name: str = "hygon.com/dcumem"
    resource_core_name: str = "hygon.com/dcucores"
    memory_factor: int = Field(1, ge=1)
    enabled: bool = True

    def to_vendor(self) -> HygonConfig | None:
        return HygonConfig(**self.model_dump(exclude={"enabled"})) if self.enabled else None


class CambriconSection(_Strict):
    resource_count_name: str = Field("cambricon.com/vmlu", min_length=1)
    resource_memory_name: str = Field("cambricon.com/mlu.smlu.vmemory", min_length=1)
    resource_core_name: str = Field("cambricon.com/mlu.smlu.vcore", min_length=1)
    enabled: bool = True

    def to_vendor(self) -> CambriconConfig | None:
        return CambriconConfig(**self.model_dump(exclude={"enabled"})) if self.enabled else None


class MthreadsSection(_Strict):
    resource_count_name: str = Field("mthreads.com/vgpu", min_length=1)
    resource_memory_name: str = Field("mthreads.com/sgpu-memory", min_length=1)
    resource_core_name: str = Field("mthreads.com/sgpu-core", min_length=1)
    enabled: bool = True

    def to_vendor(self) -> MthreadsConfig | None:
        return MthreadsConfig(**self.model_dump(exclude={"enabled"})) if self.enabled else None


class MetaxSection(_Strict):
    resource_count_name: str = Field("metax-tech.com/gpu", min_length=1)
    resource_vcount_name: str = Field(
        "metax-tech.com/sgpu", min_length=1, alias="resourceVCountName"
    )
    resource_vmemory_name: str = Field(
        "metax-tech.com/vmemory", min_length=1, alias="resourceVMemoryName"
    )
    resource_vcore_name: str = Field(
        "metax-tech.com/vcore", min_length=1, alias="resourceVCoreName"
    )
    sgpu_topology_aware: bool = False
    enabled: bool = True

    def to_vendor(self) -> MetaxConfig | None:
        return MetaxConfig(**self.model_dump(exclude={"enabled"})) if self.enabled else None


class KunlunSection(_Strict):
    resource_count_name: str = Field("kunlunxin.com/xpu", min_length=1)
    resource_vcount_name: str = Field(
        "kunlunxin.com/vxpu", min_length=1, alias="resourceVCountName"
    )
    resource_vmemory_name: str = Field(
        "kunlunxin.com/vxpu-memory", min_length=1, alias="resourceVMemoryName"
    )
    enabled: bool = True

    def to_vendor(self) -> KunlunConfig | None:
        return KunlunConfig(**self.model_dump(exclude={"enabled"})) if self.enabled else None


class NeuronSection(_Strict):
    resource_count_name: str = Field("aws.amazon.com/neuron", min_length=1)
    resource_core_name: str = Field("aws.amazon.com/neuroncore", min_length=1)
    enabled: bool = True

    def to_vendor(self) -> NeuronConfig | None:
        return NeuronConfig(**self.model_dump(exclude={"enabled"})) if self.enabled else None


class CountSection(_Strict):
    resource_count_name: str = Field(min_length=1)
    enabled: bool = True

    def to_vendor(self) -> CountConfig | None:
        return CountConfig(self.resource_count_name) if self.enabled else None


class VastaiSection(CountSection):
    resource_count_name: str = Field("vastaitech.com/va", min_length=1)


class BirenSection(CountSection):
    resource_count_name: str = Field("birentech.com/gpu", min_length=1)


class AmdSection(_Strict):
    resource_count_name: str = Field("amd.com/gpu", min_length=1)
    resource_memory_name: str = Field("amd.com/gpumem", min_length=1)
    resource_core_name: str = Field("amd.com/gpucores", min_length=1)
    enabled: bool = True

    def to_vendor(self) -> AmdConfig | None:
        return AmdConfig(**self.model_dump(exclude={"enabled"})) if self.enabled else None


class EnflameSection(_Strict):
    """`enflame:`: whole GCUs (`GCU`) and DRS slices (`Enflame`); the vGCU names are accepted and
    only stand in for an empty `resourceNameDRSGCU`, as in HAMi."""

    resource_name_gcu: str = Field("enflame.com/gcu", min_length=1, alias="resourceNameGCU")
    resource_name_drsgcu: str = Field("enflame.com/drs-gcu", alias="resourceNameDRSGCU")
    resource_name_gcu_memory: str = Field("enflame.com/gcu-memory", alias="resourceNameGCUMemory")
    resource_name_gcu_core: str = Field("enflame.com/gcu-core", alias="resourceNameGCUCore")
    resource_name_vgcu: str = Field("", alias="resourceNameVGCU")
    resource_name_vgcu_percentage: str = Field("", alias="resourceNameVGCUPercentage")
    enabled: bool = True

    def to_vendor(self) -> CountConfig | None:
        return CountConfig(self.resource_name_gcu) if self.enabled else None

    def to_drs_vendor(self) -> EnflameDrsConfig | None:
        if not self.enabled:
            return None
        default = EnflameDrsConfig()
        return EnflameDrsConfig(
            resource_name_drsgcu=self.resource_name_drsgcu
            or self.resource_name_vgcu
            or default.resource_name_drsgcu,
            resource_name_gcu_memory=self.resource_name_gcu_memory
            or default.resource_name_gcu_memory,
            resource_name_gcu_core=self.resource_name_gcu_core or default.resource_name_gcu_core,
        )


class IluvatarEntry(_Strict):
    chip_name: str = Field(min_length=1)
    common_word: str = ""
    resource_count_name: str = ""
    resource_memory_name: str = ""
    resource_core_name: str = ""

    def to_vendor(self) -> IluvatarChip:
        named = IluvatarChip.named(self.common_word or self.chip_name)
        return IluvatarChip(
            chip_name=self.chip_name,
            common_word=named.common_word,
            resource_count_name=self.resource_count_name or named.resource_count_name,
            resource_memory_name=self.resource_memory_name or named.resource_memory_name,
            resource_core_name=self.resource_core_name or named.resource_core_name,
        )


class VnpuTemplateEntry(_Strict):
    name: str = Field(min_length=1)
    memory: int = Field(gt=0)
    ai_core: int = Field(0, ge=0)
    ai_cpu: int = Field(0, ge=0, alias="aiCPU")


class VnpuEntry(_Strict):
    chip_name: str = ""
    common_word: str = Field(min_length=1)
    resource_name: str = ""
    resource_memory_name: str = ""
    resource_core_name: str = ""
    memory_allocatable: int = Field(0, ge=0)
    memory_capacity: int = Field(0, ge=0)
    memory_factor: int = Field(1, ge=1)
    ai_core: int = Field(0, ge=0)
    ai_cpu: int = Field(0, ge=0, alias="aiCPU")
    runtime_class_name: str = ""
    overwrite_env: bool = False
    super_pod: bool = False
    templates: list[VnpuTemplateEntry] = []

    def to_vendor(self) -> VnpuConfig:
        resource = self.resource_name or f"huawei.com/{self.common_word}"
        return VnpuConfig(
            chip_name=self.chip_name or self.common_word,
            common_word=self.common_word,
            resource_name=resource,
            resource_memory_name=self.resource_memory_name or f"{resource}-memory",
            resource_core_name=self.resource_core_name or f"{resource}-core",
            memory_allocatable=self.memory_allocatable,
            memory_capacity=self.memory_capacity or self.memory_allocatable,
            memory_factor=self.memory_factor,
            ai_core=self.ai_core,
            ai_cpu=self.ai_cpu,
            runtime_class_name=self.runtime_class_name,
            overwrite_env=self.overwrite_env,
            super_pod=self.super_pod,
            templates=tuple(
                VnpuTemplate(t.name, t.memory, t.ai_core, t.ai_cpu) for t in self.templates
            ),
        )


class VnpusSection(_Strict):
    hami_vnpu_core: bool = False
    configs: list[VnpuEntry] = []
    enabled: bool = True


class FileModel(_Strict):
    node_scheduler_policy: Literal["binpack", "spread"] = "binpack"
    gpu_scheduler_policy: str = "spread"
    scheduler_name: str = "hami-scheduler"
    nvidia: NvidiaSection = NvidiaSection()
    hygon: HygonSection | None = None
    cambricon: CambriconSection | None = None
    mthreads: MthreadsSection | None = None
    metax: MetaxSection | None = None
    kunlun: KunlunSection | None = None
    awsneuron: NeuronSection | None = None
    amd: AmdSection | None = None
    enflame: EnflameSection | None = None
    vastai: VastaiSection | None = None
    biren: BirenSection | None = None
    iluvatars: list[IluvatarEntry] = []
    vnpus: VnpusSection | None = None

    def vendor_settings(self, source: str) -> VendorSettings:
        vnpus = self.vnpus if self.vnpus is not None and self.vnpus.enabled else None
        chips = tuple(entry.to_vendor() for entry in self.iluvatars)
        configs = tuple(c.to_vendor() for c in vnpus.configs) if vnpus else ()
        _unique(source, "iluvatars", [c.common_word for c in chips])
        _unique(source, "vnpus.configs", [c.common_word for c in configs])
        return VendorSettings(
            nvidia=self.nvidia.enabled,
            hygon=self.hygon.to_vendor() if self.hygon else None,
            cambricon=self.cambricon.to_vendor() if self.cambricon else None,
            mthreads=self.mthreads.to_vendor() if self.mthreads else None,
            metax=self.metax.to_vendor() if self.metax else None,
            kunlun=self.kunlun.to_vendor() if self.kunlun else None,
            awsneuron=self.awsneuron.to_vendor() if self.awsneuron else None,
            amd=self.amd.to_vendor() if self.amd else None,
            enflame_gcu=self.enflame.to_vendor() if self.enflame else None,
            enflame_drs=self.enflame.to_drs_vendor() if self.enflame else None,
            vastai=self.vastai.to_vendor() if self.vastai else None,
            biren=self.biren.to_vendor() if self.biren else None,
            iluvatars=chips,
            vnpus=configs,
            hami_vnpu_core=vnpus.hami_vnpu_core if vnpus else False,
        )


def _unique(source: str, where: str, words: list[str]) -> None:
    seen = [w for i, w in enumerate(words) if w in words[:i]]
    if seen:
        raise ConfigError(f"{source}: {where}: commonWord {seen[0]!r} is listed twice")


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())) or "(top level)"
    return f"{where}: {error.get('msg', 'invalid')}"


def parse_config(data: object, source: str = "<config>") -> SchedulerConfig:
    """Validate an already-parsed YAML document."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the configuration must be a mapping of sections")
    known = {k: v for k, v in data.items() if k not in VENDOR_SECTIONS}
    try:
        model = FileModel.model_validate(known)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{source}: {_describe(first)}") from None
    for token in parse_gpu_policy(model.gpu_scheduler_policy):
        if token not in GPU_POLICIES:
            raise ConfigError(f"{source}: gpuSchedulerPolicy: unknown policy {token!r}")
    return VendorAwareConfig(
        nvidia=model.nvidia.to_core(),
        node_scheduler_policy=model.node_scheduler_policy,
        gpu_scheduler_policy=model.gpu_scheduler_policy,
        scheduler_name=model.scheduler_name,
        vendors=model.vendor_settings(source),
    )


def load_config(path: Path | None) -> SchedulerConfig:
    """Read and validate a configuration file; None gives the defaults."""
    if path is None:
        return SchedulerConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yamlio.load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    return parse_config(data, str(path))


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{problem} (line {mark.line + 1})" if mark is not None else str(problem)
