"""Builders shared by the vendor tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hami.core.model import EMPTY_USAGE, ContainerRequest, Device, DeviceUsage
from hami.core.vendor import Candidate, FitContext, Pick, Vendor
from tests import builders


def container(
    name: str = "c", requests: Mapping[str, object] | None = None, /, **limits: object
) -> dict[str, object]:
    """A container manifest; keyword names use `__` for `/` (e.g. ``hygon_com__dcunum=1``).
    ``name`` and ``requests`` are positional, so any keyword (or ``**{...}`` key) is a limit."""
    return builders.container(name, {_name(k): v for k, v in limits.items()}, requests=requests)


def _name(key: str) -> str:
    return key.replace("__", "/").replace("_", ".")


def candidates(
    devices: Sequence[Device], usage: Sequence[DeviceUsage] | None = None
) -> list[Candidate]:
    taken = usage or [EMPTY_USAGE] * len(devices)
    return [Candidate(i, d, u) for i, (d, u) in enumerate(zip(devices, taken, strict=True))]


def fit(
    vendor: Vendor,
    devices: Sequence[Device],
    request: ContainerRequest,
    usage: Sequence[DeviceUsage] | None = None,
    annotations: Mapping[str, str] | None = None,
    policy: tuple[str, ...] = ("spread",),
) -> tuple[Pick, ...] | object:
    ctx = FitContext(policy=policy, annotations=dict(annotations or {}))
    return vendor.fit(candidates(devices, usage), request, ctx)
