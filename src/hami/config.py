"""Loading the scheduler configuration file (HAMi's device-config.yaml keys, §1.4).

Precedence: built-in defaults < the file < explicit overrides from the command line.
Every problem is reported as one `ConfigError` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from hami import yamlio
from hami.core.config import GPU_POLICIES, NvidiaConfig, SchedulerConfig
from hami.core.errors import ConfigError as ConfigError  # the config files' error, re-exported
from hami.core.policy import parse_gpu_policy
from hami.vendors.config import VendorAwareConfig, VendorSettings


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True
    )


class FileModel(_Strict):
    node_scheduler_policy: Literal["binpack", "spread"] = "binpack"
    gpu_scheduler_policy: str = "spread"
    scheduler_name: str = "hami-scheduler"

    @classmethod
    def keys(cls) -> frozenset[str]:
        """The top-level keys this model validates (vendor sections are validated apart)."""
        return frozenset(f.alias or name for name, f in cls.model_fields.items())


def _unique(source: str, where: str, words: list[str]) -> None:
    seen = [w for i, w in enumerate(words) if w in words[:i]]
    if seen:
        raise ConfigError(f"{source}: {where}: commonWord {seen[0]!r} is listed twice")


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())) or "(top level)"
    return f"{where}: {error.get('msg', 'invalid')}"


def parse_config(data: object, source: str = "<config>") -> SchedulerConfig:
    """Validate an already-parsed YAML document."""
    from hami.vendors import registry  # the vendor table (imported late: `hami --help` is lean)

    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the configuration must be a mapping of sections")
    known = FileModel.keys()
    vendor_data = {k: v for k, v in data.items() if k in registry.ROWS and k not in known}
    unknown = [str(k) for k in data if k not in known and k not in registry.ROWS]
    if unknown:
        names = ", ".join(sorted(set(registry.ROWS) | known))
        raise ConfigError(f"{source}: {unknown[0]}: unknown section (known: {names})")
    try:
        model = FileModel.model_validate({k: v for k, v in data.items() if k in known})
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc.errors()[0])}") from None
    for token in parse_gpu_policy(model.gpu_scheduler_policy):
        if token not in GPU_POLICIES:
            raise ConfigError(f"{source}: gpuSchedulerPolicy: unknown policy {token!r}")
    sections: dict[str, Any] = {}
    for name, value in vendor_data.items():
        row = registry.ROWS[name]
        section = _section(row.config, row.many, value, f"{source}: {name}")
        if section is not None:
            sections[name] = section
    if "iluvatars" in sections:
        _unique(source, "iluvatars", [c.common_word for c in sections["iluvatars"]])
    if "vnpus" in sections:
        _unique(source, "vnpus.configs", [c.common_word for c in sections["vnpus"].configs])
    nvidia = sections.pop("nvidia", None)
    return VendorAwareConfig(
        nvidia=nvidia or NvidiaConfig(),
        node_scheduler_policy=model.node_scheduler_policy,
        gpu_scheduler_policy=model.gpu_scheduler_policy,
        scheduler_name=model.scheduler_name,
        vendors=VendorSettings(
            nvidia=nvidia is not None or "nvidia" not in data, sections=sections
        ),
    )


# --- vendor sections, validated from each vendor's own config type ----------------------------------

_ACRONYMS = {
    "Gpu": "GPU",
    "Cpu": "CPU",
    "Gcu": "GCU",
    "Drsgcu": "DRSGCU",
    "Vgcu": "VGCU",
    "Vcount": "VCount",
    "Vmemory": "VMemory",
    "Vcore": "VCore",
}


def camel(name: str) -> str:
    """A config field's key in HAMi's file: camelCase, with HAMi's acronyms in capitals
    (``resource_vcount_name`` → ``resourceVCountName``, ``ai_cpu`` → ``aiCPU``)."""
    head, *rest = name.split("_")
    return head + "".join(_ACRONYMS.get(w.capitalize(), w.capitalize()) for w in rest)


_SECTION_WORDS = {"unexpected_keyword_argument": "unknown key", "missing_argument": "required"}
_SECTION_CONFIG = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=camel)


@functools.cache
def _adapter(kind: type, many: bool) -> TypeAdapter[Any]:
    _configure(kind)
    return TypeAdapter(tuple[kind, ...] if many else kind)  # type: ignore[valid-type]


def _configure(kind: type) -> None:
    """Give ``kind`` and the dataclasses nested in it the strict camelCase section config."""
    if not dataclasses.is_dataclass(kind) or "__pydantic_config__" in vars(kind):
        return
    kind.__pydantic_config__ = _SECTION_CONFIG  # type: ignore[attr-defined]
    for hint in typing.get_type_hints(kind).values():
        for inner in (hint, *typing.get_args(hint)):
            if isinstance(inner, type):
                _configure(inner)


def _section(kind: type, many: bool, value: object, where: str) -> object | None:
    """One vendor section validated as ``kind`` (None when it says `enabled: false`)."""
    if isinstance(value, Mapping) and "enabled" in value:
        enabled = value["enabled"]
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where}.enabled: must be true or false, not {enabled!r}")
        if not enabled:
            return None
        value = {k: v for k, v in value.items() if k != "enabled"}
    value = {} if value is None else value
    if not isinstance(value, list if many else Mapping):
        kind_word = "a list of entries" if many else "a mapping of keys"
        raise ConfigError(f"{where}: must be {kind_word}, not {type(value).__name__}")
    try:
        section = _adapter(kind, many).validate_python(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        why = _SECTION_WORDS.get(error.get("type", ""), error.get("msg", "invalid"))
        raise ConfigError(f"{where}.{_describe({**error, 'msg': why})}") from None
    if many:
        return tuple(_completed(item) for item in section)
    return _completed(section)


def _completed(section: object) -> object:
    """A section whose unset fields follow from the others (`completed()`), else as it is."""
    complete = getattr(section, "completed", None)
    return complete() if callable(complete) else section


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
