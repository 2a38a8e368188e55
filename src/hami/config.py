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

from hami.core.config import GPU_POLICIES, NvidiaConfig, SchedulerConfig
from hami.core.policy import parse_gpu_policy

# Sections of HAMi's device config that later vendor modules read; accepted so a HAMi file loads.
VENDOR_SECTIONS = frozenset(
    {
        "cambricon",
        "hygon",
        "metax",
        "mthreads",
        "iluvatars",
        "enflame",
        "kunlun",
        "awsneuron",
        "amd",
        "vastai",
        "biren",
        "vnpus",
    }
)


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

    def to_core(self) -> NvidiaConfig:
        fields = self.model_dump(exclude={"mig_profile_allowlist"})
        return NvidiaConfig(**fields)


class FileModel(_Strict):
    node_scheduler_policy: Literal["binpack", "spread"] = "binpack"
    gpu_scheduler_policy: str = "spread"
    scheduler_name: str = "hami-scheduler"
    nvidia: NvidiaSection = NvidiaSection()


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
    return SchedulerConfig(
        nvidia=model.nvidia.to_core(),
        node_scheduler_policy=model.node_scheduler_policy,
        gpu_scheduler_policy=model.gpu_scheduler_policy,
        scheduler_name=model.scheduler_name,
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
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    return parse_config(data, str(path))


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{problem} (line {mark.line + 1})" if mark is not None else str(problem)
