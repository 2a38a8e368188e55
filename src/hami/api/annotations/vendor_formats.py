"""Vendor-specific values: Ascend (§2.9, §4.7), MetaX (§4.9), Enflame DRS (§4.10)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from hami.api import keys
from hami.api.annotations._base import (
    DECIMAL_INT,
    INT32_MAX,
    clip,
    go_json,
    int_field,
    load_json,
)
from hami.api.annotations.devices import (
    str_field,
)
from hami.api.errors import WireFormatError
from hami.api.types import (
    ContainerDevice,
    DeviceInfo,
)

# ------------------------------------------------------------------------------------------------
# Ascend (§2.9, §4.7)


@dataclass(frozen=True, slots=True)
class AscendRuntime:
    """One entry of the `huawei.com/<commonWord>` pod annotation."""

    uuid: str
    temp: str = ""  # vNPU template name (hard split); empty in hami-core mode / whole card
    memory: int = 0
    core: int = 0


def encode_ascend_runtime(items: Sequence[AscendRuntime]) -> str:
    """``[{"UUID":…,"temp":…,"memory":…,"core":…}]`` with Go's omitempty on every field."""
    out: list[dict[str, object]] = []
    for item in items:
        entry: dict[str, object] = {}
        for name, value in (
            ("UUID", item.uuid),
            ("temp", item.temp),
            ("memory", item.memory),
            ("core", item.core),
        ):
            if value:
                entry[name] = value
        out.append(entry)
    return go_json(out)


def decode_ascend_runtime(value: str, key: str) -> tuple[AscendRuntime, ...]:
    raw = load_json(key, value)
    if not isinstance(raw, list):
        raise WireFormatError(key, clip(value), "expected a JSON array")
    found = []
    for item in cast(list[object], raw):
        if not isinstance(item, dict):
            raise WireFormatError(key, clip(value), "expected an array of objects")
        fields = cast(dict[str, object], item)
        uuid = str_field(key, "UUID", fields, "UUID")
        found.append(
            AscendRuntime(
                uuid=uuid,
                temp=str_field(key, uuid, fields, "temp"),
                memory=int_field(key, uuid, "memory", fields.get("memory") or 0, bits32=False),
                core=int_field(key, uuid, "core", fields.get("core") or 0),
            )
        )
    return tuple(found)


def custom_int(info: DeviceInfo, name: str) -> int | None:
    """An integer from a registration's `custominfo` (e.g. Ascend `NetworkID`); None if absent."""
    raw = info.custominfo.get(name)
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and DECIMAL_INT.fullmatch(raw.strip()):
        return int(raw.strip())
    raise WireFormatError("custominfo", info.id, f"{name} {raw!r} is not an integer")


# ------------------------------------------------------------------------------------------------
# MetaX (§4.9)


@dataclass(frozen=True, slots=True)
class MetaxGpu:
    """One entry of the `metax-tech.com/node-gpu-devices` registration."""

    uuid: str
    model: str = ""
    bdf: str = ""
    total_dev_count: int = 0
    total_compute: int = 0
    total_vram: int = 0
    numa: int = 0
    healthy: bool = False
    qos_policy: str = ""
    link_zone: int = 0


def decode_metax_devices(value: str, key: str) -> tuple[MetaxGpu, ...]:
    raw = load_json(key, value)
    if not isinstance(raw, list):
        raise WireFormatError(key, clip(value), "expected a JSON array")
    found = []
    for item in cast(list[object], raw):
        if not isinstance(item, dict):
            raise WireFormatError(key, clip(value), "expected an array of objects")
        fields = cast(dict[str, object], item)
        uuid = str_field(key, "uuid", fields, "uuid")
        if not uuid:
            raise WireFormatError(key, clip(value), "device has no uuid")
        healthy = fields.get("healthy", False)
        if not isinstance(healthy, bool):
            raise WireFormatError(key, uuid, f"healthy {healthy!r} is not a boolean")
        found.append(
            MetaxGpu(
                uuid=uuid,
                model=str_field(key, uuid, fields, "model"),
                bdf=str_field(key, uuid, fields, "bdf"),
                total_dev_count=int_field(
                    key, uuid, "totalDevCount", fields.get("totalDevCount") or 0
                ),
                total_compute=int_field(key, uuid, "totalCompute", fields.get("totalCompute") or 0),
                total_vram=int_field(key, uuid, "totalVRam", fields.get("totalVRam") or 0),
                numa=int_field(key, uuid, "numa", fields.get("numa") or 0, bits32=False),
                healthy=healthy,
                qos_policy=str_field(key, uuid, fields, "qosPolicy"),
                link_zone=int_field(key, uuid, "linkZone", fields.get("linkZone") or 0),
            )
        )
    return tuple(found)


def encode_metax_allocation(containers: Sequence[Sequence[ContainerDevice]]) -> str:
    """``[[{"uuid":…,"compute":…,"vRam":…}],[]]``: one inner array per container."""
    return go_json(
        [
            [{"uuid": d.uuid, "compute": d.usedcores, "vRam": d.usedmem} for d in container]
            for container in containers
        ]
    )


def decode_count_map(value: str, key: str) -> dict[int, int]:
    """A JSON object mapping a device count to an integer (MetaX topology losses/scores)."""
    raw = load_json(key, value)
    if not isinstance(raw, dict):
        raise WireFormatError(key, clip(value), "expected a JSON object")
    out: dict[int, int] = {}
    for count, score in cast(dict[str, object], raw).items():
        out[int_field(key, count, "device count", count, bits32=False)] = int_field(
            key, count, "value", score
        )
    return out


# ------------------------------------------------------------------------------------------------
# Enflame DRS slices (§4.10)


@dataclass(frozen=True, slots=True)
class DrsProfile:
    """One DRS profile of `enflame.com/gcu-drs-capacity`: ``<slices>g.<GB>gb`` → profile id."""

    name: str
    id: str
    slices: int
    memory_gb: int


@dataclass(frozen=True, slots=True)
class DrsDevice:
    """One GCU of `enflame.com/gcu-drs-capacity`: its index, minor and slice capacity."""

    index: int
    minor: str
    capacity: int


@dataclass(frozen=True, slots=True)
class DrsCapacity:
    """The decoded registration; profiles sorted by (slices, GB) as HAMi tries them."""

    devices: tuple[DrsDevice, ...]
    profiles: tuple[DrsProfile, ...]


def parse_drs_profile(name: str) -> tuple[int, int] | None:
    """``"2g.16gb"`` → (2 slices, 16 GB), as HAMi's parseProfile reads it (case-insensitive, the
    ``g``/``gb`` suffixes optional); None when either number is missing or not positive."""
    parts = name.strip().lower().split(".")
    if len(parts) < 2:
        return None
    slices = parts[0].strip().removesuffix("g")
    memory = parts[1].strip().removesuffix("gb")
    if not (slices.isascii() and slices.isdigit() and memory.isascii() and memory.isdigit()):
        return None
    if int(slices) <= 0 or int(memory) <= 0:
        return None
    return int(slices), int(memory)


def decode_drs_capacity(value: str, key: str = keys.ENFLAME_DRS_CAPACITY) -> DrsCapacity:
    """``{"devices":[{"index":"0","minor":"0","capacity":6}],"profiles":{"1g.6gb":"0"}}``.

    A capacity may be a JSON number or a decimal string and must be positive; an index that is
    not a number falls back to the device's position (as HAMi does), an empty minor to the
    index. Profile names HAMi cannot read are skipped, but at least one must remain.
    """
    raw = load_json(key, value)
    if not isinstance(raw, dict):
        raise WireFormatError(key, clip(value), "expected a JSON object")
    fields = cast(dict[str, object], raw)
    listed = fields.get("devices")
    if not isinstance(listed, list):
        raise WireFormatError(key, "devices", f"expected an array, not {listed!r}")
    named = fields.get("profiles")
    if not isinstance(named, dict):
        raise WireFormatError(key, "profiles", f"expected an object, not {named!r}")
    profiles = _drs_profiles(key, cast(dict[str, object], named))
    devices = tuple(
        _drs_device(key, position, item) for position, item in enumerate(cast(list[object], listed))
    )
    return DrsCapacity(devices=devices, profiles=profiles)


def _drs_profiles(key: str, named: Mapping[str, object]) -> tuple[DrsProfile, ...]:
    found = []
    for name, profile_id in named.items():
        if not isinstance(profile_id, str):
            raise WireFormatError(key, f"profiles.{name}", f"id {profile_id!r} is not a string")
        parsed = parse_drs_profile(name)
        if parsed is not None:
            found.append(DrsProfile(name, profile_id, *parsed))
    if not found:
        raise WireFormatError(key, "profiles", "no valid profile (<slices>g.<GB>gb)")
    return tuple(sorted(found, key=lambda p: (p.slices, p.memory_gb, p.name)))


def _drs_device(key: str, position: int, item: object) -> DrsDevice:
    piece = f"devices[{position}]"
    if not isinstance(item, dict):
        raise WireFormatError(key, piece, "expected an object")
    fields = cast(dict[str, object], item)
    index_text = str_field(key, f"{piece}.index", fields, "index").strip()
    index = int(index_text) if DECIMAL_INT.fullmatch(index_text) else position
    if not 0 <= index <= INT32_MAX:
        index = position
    minor = str_field(key, f"{piece}.minor", fields, "minor").strip() or str(index)
    if "capacity" not in fields:
        raise WireFormatError(key, f"{piece}.capacity", "missing")
    capacity = int_field(key, f"{piece}.capacity", "capacity", fields["capacity"])
    if capacity <= 0:
        raise WireFormatError(key, f"{piece}.capacity", f"capacity {capacity} is not positive")
    return DrsDevice(index=index, minor=minor, capacity=capacity)


@dataclass(frozen=True, slots=True)
class DrsAssignment:
    """One container's entry of the `assigned-containers` pod annotation."""

    request: int  # slices
    profile_id: str = ""
    profile_name: str = ""
    allocated: bool = False


def encode_drs_assignments(assigned: Mapping[str, DrsAssignment]) -> str:
    """``{"worker":{"allocated":false,"request":2,"profileID":"3","profileName":"2g.16gb"}}``:
    container names sorted, fields in HAMi's struct order, empty profile fields omitted."""
    out: dict[str, dict[str, object]] = {}
    for name in sorted(assigned):
        item = assigned[name]
        entry: dict[str, object] = {"allocated": item.allocated, "request": item.request}
        if item.profile_id:
            entry["profileID"] = item.profile_id
        if item.profile_name:
            entry["profileName"] = item.profile_name
        out[name] = entry
    return go_json(out)
