"""Reading a container's `resources` the way HAMi does: limits first, then requests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from hami.api.errors import WireFormatError
from hami.api.quantity import parse_int_quantity
from hami.core.errors import RequestInvalid


def _section(container: Mapping[str, object], name: str) -> Mapping[str, object]:
    resources = container.get("resources") or {}
    if not isinstance(resources, Mapping):
        return {}
    section = cast(Mapping[str, object], resources).get(name) or {}
    return cast(Mapping[str, object], section) if isinstance(section, Mapping) else {}


def limits(container: Mapping[str, object]) -> Mapping[str, object]:
    return _section(container, "limits")


def requests(container: Mapping[str, object]) -> Mapping[str, object]:
    return _section(container, "requests")


def raw(container: Mapping[str, object], name: str) -> object | None:
    """The raw quantity of ``name`` from limits, else requests; None when absent."""
    if not name:
        return None
    value = limits(container).get(name)
    return requests(container).get(name) if value is None else value


def integer(container: Mapping[str, object], name: str, where: str) -> int | None:
    """A whole-number resource (None when absent); a bad quantity names container and field."""
    value = raw(container, name)
    if value is None:
        return None
    try:
        return parse_int_quantity(value, name)
    except WireFormatError as exc:
        raise RequestInvalid(where, name, f"{value!r} {exc.why}") from None


def bounded(
    container: Mapping[str, object], name: str, where: str, low: int, high: int | None = None
) -> int | None:
    value = integer(container, name, where)
    if value is None:
        return None
    if value < low or (high is not None and value > high):
        span = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise RequestInvalid(where, name, f"{value} is out of range (must be {span})")
    return value
