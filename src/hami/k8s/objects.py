"""Reading fields of API objects (plain JSON mappings) without repeating isinstance checks."""

from collections.abc import Mapping
from typing import cast

Manifest = Mapping[str, object]

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})  # a pod in one of these holds nothing


def section(obj: Manifest, name: str) -> Manifest:
    value = obj.get(name)
    return cast(Manifest, value) if isinstance(value, Mapping) else {}


def meta(obj: Manifest) -> Manifest:
    return section(obj, "metadata")


def name(obj: Manifest) -> str:
    return str(meta(obj).get("name") or "")


def namespace(obj: Manifest) -> str:
    return str(meta(obj).get("namespace") or "")


def uid(obj: Manifest) -> str:
    return str(meta(obj).get("uid") or "")


def resource_version(obj: Manifest) -> str:
    return str(meta(obj).get("resourceVersion") or "")


def annotations(obj: Manifest) -> dict[str, str]:
    return {str(k): str(v) for k, v in section(meta(obj), "annotations").items()}


def labels(obj: Manifest) -> dict[str, str]:
    return {str(k): str(v) for k, v in section(meta(obj), "labels").items()}


def spec(obj: Manifest) -> Manifest:
    return section(obj, "spec")


def status(obj: Manifest) -> Manifest:
    return section(obj, "status")


def key(obj: Manifest) -> str:
    """``namespace/name`` (just ``name`` for cluster-scoped objects)."""
    ns = namespace(obj)
    return f"{ns}/{name(obj)}" if ns else name(obj)


def rv_number(value: str) -> int:
    """A resourceVersion as a number for ordering (etcd revisions); -1 when not numeric."""
    return int(value) if value.isdigit() else -1
