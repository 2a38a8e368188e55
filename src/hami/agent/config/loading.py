"""Loading the device-plugin configuration.

Precedence, lowest first (wire-format.md §1.3, §5.1):

1. built-in defaults;
2. the `nvidia:` section of the shared `device-config.yaml` (``--config-file``);
3. the entry of the per-node JSON ``{"nodeconfig":[…]}`` whose ``name`` is this node
   (``--node-config-file``); only keys that are present override;
4. command-line flags that were actually given (unlike HAMi, they take effect).

Every problem raises :class:`~hami.agent.errors.ConfigError` naming the file and the key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hami.agent.config.settings import NodeConfig
from hami.agent.errors import ConfigError
from hami.config import load_config
from hami.core.config import NvidiaConfig

# ---- the per-node JSON ------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _FilterDevices(_Strict):
    uuid: list[str] = []
    index: list[int] = []


class _MigRule(_Strict):
    models: list[str] = Field(min_length=1)
    profiles: list[str] = Field(min_length=1)


class _NodeEntry(_Strict):
    name: str = Field(min_length=1)
    operatingmode: Literal["hami-core", "mig", "mps"] | None = None
    migstrategy: Literal["none", "single", "mixed"] | None = None
    filterdevices: _FilterDevices | None = None
    enablegetpreferredallocation: bool | None = None
    devicesplitcount: int | None = Field(None, ge=1)
    devicememoryscaling: float | None = Field(None, gt=0)
    devicecorescaling: float | None = Field(None, gt=0)
    preconfigureddevicememory: int | None = Field(None, ge=0)
    libcudaloglevel: str | None = None
    enablenumatopology: bool | None = None
    # hami extensions: a per-node MIG allow-list (profile names for every model, or rules)
    # and switching idle GPUs out of MIG mode
    migprofileallowlist: list[str] | list[_MigRule] | None = None
    migdisableidle: bool | None = None

    @field_validator("libcudaloglevel", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value not in ("", "0", "1", "2", "3", "4"):
            raise ValueError("must be one of 0, 1, 2, 3, 4 (or empty)")
        return value


class _NodeFile(_Strict):
    nodeconfig: list[_NodeEntry] = []


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _lower(data: object) -> object:
    """Go's encoding/json matches keys case-insensitively; so do we."""
    if isinstance(data, dict):
        return {str(k).lower(): _lower(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_lower(v) for v in data]
    return data


def load_node_file(path: Path) -> _NodeFile:
    """Read and validate the per-node JSON."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno})") from None
    try:
        return _NodeFile.model_validate(_lower(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{path}: {_where(tuple(first['loc']))}: {first['msg']}") from None


def _entry_overrides(entry: _NodeEntry) -> dict[str, Any]:
    pairs: dict[str, Any] = {
        "operating_mode": entry.operatingmode,
        "preferred_allocation": entry.enablegetpreferredallocation,
        "split_count": entry.devicesplitcount,
        "memory_scaling": entry.devicememoryscaling,
        "core_scaling": entry.devicecorescaling,
        "preconfigured_memory": entry.preconfigureddevicememory,
        "lib_cuda_log_level": entry.libcudaloglevel,
        "enable_numa_topology": entry.enablenumatopology,
    }
    out = {k: v for k, v in pairs.items() if v is not None}
    if entry.migdisableidle is not None:
        out["mig_disable_idle"] = entry.migdisableidle
    if entry.migprofileallowlist is not None:
        out["mig_allowlist"] = tuple(
            (("",), (item,))
            if isinstance(item, str)
            else (tuple(item.models), tuple(item.profiles))
            for item in entry.migprofileallowlist
        )
    if entry.filterdevices is not None:
        out["filter_uuids"] = frozenset(entry.filterdevices.uuid)
        out["filter_indexes"] = frozenset(entry.filterdevices.index)
    return out


def from_shared(nvidia: NvidiaConfig) -> NodeConfig:
    """The node settings the shared device-config.yaml `nvidia:` section implies."""
    return NodeConfig(
        resource_name=nvidia.resource_count_name,
        split_count=nvidia.device_split_count,
        memory_scaling=nvidia.device_memory_scaling,
        core_scaling=nvidia.device_core_scaling,
        preconfigured_memory=nvidia.pre_configured_device_memory,
        lib_cuda_log_level=str(nvidia.lib_cuda_log_level),
        enable_numa_topology=nvidia.enable_numa_topology,
        disable_core_limit=nvidia.disable_core_limit,
    )


def load_shared(path: Path | None) -> NodeConfig:
    nvidia = load_config(path).nvidia
    rules = tuple((r.models, r.profiles) for r in nvidia.mig_profile_allowlist)
    return replace(from_shared(nvidia), mig_allowlist=rules)


def node_config(
    base: NodeConfig, node_file: _NodeFile | None, node_name: str, flags: Mapping[str, Any]
) -> NodeConfig:
    """Apply the per-node entry for ``node_name`` and then the explicit flags to ``base``."""
    config = base
    for entry in node_file.nodeconfig if node_file else ():
        if entry.name == node_name:
            config = replace(config, **_entry_overrides(entry))
    known = {f.name for f in fields(NodeConfig)}
    unknown = set(flags) - known
    if unknown:
        raise ConfigError(f"unknown node setting(s): {', '.join(sorted(unknown))}")
    return replace(config, **{k: v for k, v in flags.items() if v is not None})
