"""Node device registration values (wire-format.md §2.6)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

from hami.api import keys
from hami.api.annotations._base import (
    _go_map,
    clip,
    go_json,
    int_field,
    load_json,
    parse_go_bool,
)
from hami.api.errors import WireFormatError
from hami.api.types import (
    DeviceInfo,
    MigPlacement,
    MigProfile,
)

# ------------------------------------------------------------------------------------------------
# node device registration (§2.6)

_DEVICE_JSON_FIELDS = frozenset(
    {
        "id",
        "index",
        "count",
        "devmem",
        "devcore",
        "type",
        "numa",
        "mode",
        "migprofiles",
        "migtemplate",
        "health",
        "devicevendor",
        "custominfo",
    }
)


def decode_node_devices(value: str, key: str = keys.NVIDIA_REGISTER) -> tuple[DeviceInfo, ...]:
    """Decode a node registration: a JSON array, or the legacy 7/9-field colon format."""
    text = value.strip()
    if not text:
        raise WireFormatError(key, value, "empty registration")
    if text.startswith(("[", "{")):  # a legacy value never starts with "{"
        return _decode_node_devices_json(key, text)
    return decode_legacy_node_devices(value, key)


def _lower_keys(key: str, piece: str, raw: object) -> dict[str, object]:
    if not isinstance(raw, dict):
        raise WireFormatError(key, piece, "expected a JSON object")
    # Go's encoding/json matches field names case-insensitively; so do we.
    return {str(k).lower(): v for k, v in cast(dict[str, object], raw).items()}


def _decode_node_devices_json(key: str, text: str) -> tuple[DeviceInfo, ...]:
    raw = load_json(key, text)
    if not isinstance(raw, list):
        raise WireFormatError(key, clip(text), "expected a JSON array of devices")
    devices = []
    for position, item in enumerate(cast(list[object], raw)):
        piece = f"device #{position}"
        fields = _lower_keys(key, piece, item)
        devices.append(_device_from_fields(key, piece, fields))
    return tuple(devices)


def str_field(key: str, piece: str, fields: Mapping[str, object], name: str) -> str:
    raw = fields.get(name)
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise WireFormatError(key, piece, f"{name} {raw!r} is not a string")
    return raw


def _device_from_fields(key: str, piece: str, fields: dict[str, object]) -> DeviceInfo:
    device_id = str_field(key, piece, fields, "id")
    if not device_id:
        raise WireFormatError(key, piece, "device has no id")
    piece = device_id
    health = fields.get("health", False)
    if health is None:
        health = False
    if not isinstance(health, bool):
        raise WireFormatError(key, piece, f"health {health!r} is not a boolean")
    index = int_field(key, piece, "index", fields.get("index") or 0, bits32=False)
    if index < 0:
        raise WireFormatError(key, piece, f"index {index} is negative")
    custom = fields.get("custominfo") or {}
    if not isinstance(custom, dict):
        raise WireFormatError(key, piece, "custominfo is not a JSON object")
    return DeviceInfo(
        id=device_id,
        index=index,
        count=int_field(key, piece, "count", fields.get("count") or 0),
        devmem=int_field(key, piece, "devmem", fields.get("devmem") or 0),
        devcore=int_field(key, piece, "devcore", fields.get("devcore") or 0),
        type=str_field(key, piece, fields, "type"),
        numa=int_field(key, piece, "numa", fields.get("numa") or 0, bits32=False),
        mode=str_field(key, piece, fields, "mode"),
        health=health,
        mig_profiles=_decode_mig_profiles(key, piece, fields.get("migprofiles")),
        devicevendor=str_field(key, piece, fields, "devicevendor"),
        custominfo=dict(cast(dict[str, object], custom)),
    )


def _decode_mig_profiles(key: str, piece: str, raw: object) -> tuple[MigProfile, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise WireFormatError(key, piece, "migProfiles is not a JSON array")
    profiles = []
    for item in cast(list[object], raw):
        fields = _lower_keys(key, piece, item)
        name = str_field(key, piece, fields, "name")
        if not name:
            raise WireFormatError(key, piece, "a MIG profile has no name")
        placements = []
        raw_placements = fields.get("placements") or []
        if not isinstance(raw_placements, list):
            raise WireFormatError(key, f"{piece} {name}", "placements is not a JSON array")
        for place in cast(list[object], raw_placements):
            pf = _lower_keys(key, f"{piece} {name}", place)
            placements.append(
                MigPlacement(
                    start=int_field(key, name, "placement start", pf.get("start") or 0),
                    size=int_field(key, name, "placement size", pf.get("size") or 0),
                )
            )
        profiles.append(
            MigProfile(
                name=name,
                memory_mb=int_field(key, name, "memoryMB", fields.get("memorymb") or 0),
                core=int_field(key, name, "core", fields.get("core") or 0),
                slice_count=int_field(key, name, "sliceCount", fields.get("slicecount") or 0),
                placements=tuple(placements),
            )
        )
    return tuple(profiles)


def _mig_profile_json(profile: MigProfile) -> dict[str, object]:
    return {
        "name": profile.name,
        "memoryMB": profile.memory_mb,
        "core": profile.core,
        "sliceCount": profile.slice_count,
        "placements": [{"start": p.start, "size": p.size} for p in profile.placements],
    }


def device_info_json(device: DeviceInfo) -> dict[str, object]:
    """The JSON object HAMi's NVIDIA plugin writes for one device (omitempty, struct order)."""
    out: dict[str, object] = {}
    candidates: tuple[tuple[str, object], ...] = (
        ("id", device.id),
        ("index", device.index),
        ("count", device.count),
        ("devmem", device.devmem),
        ("devcore", device.devcore),
        ("type", device.type),
        ("numa", device.numa),
        ("mode", device.mode),
        ("migProfiles", [_mig_profile_json(p) for p in device.mig_profiles]),
        ("health", device.health),
        ("devicevendor", device.devicevendor),
        ("custominfo", _go_map(device.custominfo)),
    )
    for name, val in candidates:
        if val or val is True:
            out[name] = val
    return out


def encode_node_devices(devices: Sequence[DeviceInfo]) -> str:
    """Encode a registration as HAMi's JSON array (zero/false/empty fields omitted)."""
    return go_json([device_info_json(d) for d in devices])


def decode_legacy_node_devices(
    value: str, key: str = keys.NVIDIA_REGISTER
) -> tuple[DeviceInfo, ...]:
    """The pre-2.8 comma format: ``id,count,devmem,devcore,type,numa,health[,index,mode]:`` …"""
    if ":" not in value:
        raise WireFormatError(key, clip(value), "legacy registration must contain ':'")
    devices = []
    for segment in value.split(":"):
        if not segment.strip():
            continue
        fields = segment.split(",")
        if len(fields) not in (7, 9):
            raise WireFormatError(
                key, segment, f"expected 7 or 9 comma-separated fields, got {len(fields)}"
            )
        index, mode = 0, keys.MODE_HAMI_CORE
        if len(fields) == 9:
            index = int_field(key, segment, "index", fields[7], bits32=False)
            if index < 0:
                raise WireFormatError(key, segment, f"index {index} is negative")
            mode = fields[8]
        devices.append(
            DeviceInfo(
                id=fields[0],
                count=int_field(key, segment, "count", fields[1]),
                devmem=int_field(key, segment, "devmem", fields[2]),
                devcore=int_field(key, segment, "devcore", fields[3]),
                type=fields[4],
                numa=int_field(key, segment, "numa", fields[5], bits32=False),
                health=parse_go_bool(key, fields[6]),
                index=index,
                mode=mode,
            )
        )
    return tuple(devices)


def encode_legacy_node_devices(devices: Sequence[DeviceInfo]) -> str:
    """The comma format, always with 9 fields (Hygon, Iluvatar)."""
    return "".join(
        f"{d.id},{d.count},{d.devmem},{d.devcore},{d.type},{d.numa},"
        f"{'true' if d.health else 'false'},{d.index},{d.mode or keys.MODE_HAMI_CORE}:"
        for d in devices
    )
