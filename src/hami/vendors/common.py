"""Helpers shared by the vendor modules (container mutation, legacy registrations, device lists)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar, cast

from hami.api import annotations as codec
from hami.api.quantity import parse_int_quantity
from hami.api.types import DeviceInfo, PodDevices
from hami.core.errors import RequestInvalid
from hami.core.model import ContainerRequest, Device
from hami.core.vendor import Admission
from hami.vendors import resources

INT32_MAX = 2**31 - 1
D = TypeVar("D", bound=Device)


class _Parser(Protocol):
    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None: ...


def admit_if_counted(
    vendor: _Parser, count_name: str, container: Mapping[str, object], where: str
) -> Admission:
    """The container uses the vendor iff its count resource is in limits; the request is
    validated (RequestInvalid on bad values) and nothing is changed."""
    uses = count_name in resources.limits(container)
    if uses:
        vendor.parse_container(container, where)
    return Admission(uses_vendor=uses, container=container)


def mutable(container: Mapping[str, object]) -> dict[str, object]:
    """A deep copy of a container manifest that admission may change."""
    return copy.deepcopy(dict(container))


def section_of(container: dict[str, object], name: str) -> dict[str, object]:
    """The container's `resources.<name>` (limits/requests) as a mutable dict, created if absent."""
    res = container.setdefault("resources", {})
    if not isinstance(res, dict):
        res = {}
        container["resources"] = res
    section = res.setdefault(name, {})
    if not isinstance(section, dict):
        section = {}
        res[name] = section
    return cast(dict[str, object], section)


def has_section(container: Mapping[str, object], name: str) -> bool:
    res = container.get("resources")
    return isinstance(res, Mapping) and isinstance(res.get(name), Mapping)


def scaled_memory(value: int, factor: int, where: str, name: str) -> int:
    """Memory × factor (MiB), refused above int32 as HAMi does."""
    memory = value * factor
    if memory > INT32_MAX:
        raise RequestInvalid(where, name, f"{memory} MiB is too large")
    return memory


def device_from_info(info: DeviceInfo, vendor: str) -> Device:
    """A registered device (JSON or legacy comma form) as the core sees it."""
    return Device(
        uuid=info.id,
        vendor=vendor,
        type=info.type,
        count=info.count,
        memory=info.devmem,
        cores=info.devcore,
        index=info.index,
        numa=info.numa,
        mode=info.mode,
        health=info.health,
    )


def retyped(device: Device, kind: Callable[..., D], **extra: object) -> D:
    """``device`` as a vendor's own device type (a `Device` subclass), with its extra fields."""
    values = {f.name: getattr(device, f.name) for f in dataclasses.fields(device)}
    return kind(**{**values, **extra})


def registered_devices(annotations: Mapping[str, str], key: str, vendor: str) -> tuple[Device, ...]:
    """Decode a JSON or legacy comma registration annotation (absent or empty → no devices)."""
    value = annotations.get(key)
    if not value:
        return ()
    return tuple(device_from_info(i, vendor) for i in codec.decode_node_devices(value, key))


def device_list_annotations(
    devices: PodDevices, to_allocate: str | None, allocated: str
) -> dict[str, str]:
    """HAMi's standard to-allocate / allocated pair (§2.4–§2.5); to-allocate may be absent."""
    encoded = codec.encode_pod_devices(devices)
    out = {allocated: encoded}
    if to_allocate is not None:
        out[to_allocate] = encoded
    return out


def decode_allocated(annotations: Mapping[str, str], key: str) -> PodDevices | None:
    value = annotations.get(key)
    if value is None:
        return None
    return codec.decode_pod_devices(value, key)


def first_device_index(picks: Sequence[Sequence[object]]) -> int | None:
    """The position of the first container that holds a device, or None."""
    for position, container in enumerate(picks):
        if container:
            return position
    return None


def capacity_of(capacity: Mapping[str, str], name: str) -> int:
    """A node capacity quantity as an integer (0 when absent)."""
    value = capacity.get(name)
    if value is None:
        return 0
    return parse_int_quantity(value, name)


def uuid_allowed(uuid: str, annotations: Mapping[str, str], use_key: str, nouse_key: str) -> bool:
    """HAMi's CheckUUID: the use list (when given) must name the device, the nouse list not."""
    use = codec.decode_comma_list(annotations.get(use_key))
    if use:
        return uuid in use
    return uuid not in codec.decode_comma_list(annotations.get(nouse_key))
