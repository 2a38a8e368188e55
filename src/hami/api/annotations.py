"""THE codec: every encode/decode of HAMi's annotation values (wire-format.md §2).

Decoders raise :class:`~hami.api.errors.WireFormatError` naming the key, the offending piece and
why. Encoders write exactly what HAMi writes (compact Go-style JSON, colon/semicolon lists).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import cast

from hami.api import keys
from hami.api.errors import WireFormatError
from hami.api.types import (
    ContainerDevice,
    ContainerDevices,
    DeviceInfo,
    Handshake,
    MigAllocation,
    MigPlacement,
    MigProfile,
    NodeLock,
    PairScores,
    PodDevices,
    ScoringWeights,
)

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

# ------------------------------------------------------------------------------------------------
# small shared helpers


def go_json(value: object) -> str:
    """Serialise like Go's ``json.Marshal``: compact, UTF-8, with <, >, & and U+2028/9 escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _go_map(value: object) -> object:
    """Go's ``json.Marshal`` writes map keys sorted (nested maps included)."""
    if isinstance(value, Mapping):
        items = cast(Mapping[object, object], value).items()
        return {str(k): _go_map(v) for k, v in sorted(items, key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_go_map(v) for v in cast(Sequence[object], value)]
    return value


def _load_json(key: str, value: str) -> object:
    try:
        return cast(object, json.loads(value))
    except json.JSONDecodeError as exc:
        raise WireFormatError(
            key, _clip(value), f"not valid JSON ({exc.msg} at {exc.pos})"
        ) from exc
    except (ValueError, RecursionError) as exc:  # huge integer literals, absurd nesting
        raise WireFormatError(key, _clip(value), f"not valid JSON ({exc})") from None


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_DECIMAL_INT = re.compile(r"[+-]?[0-9]+")


def _int(key: str, piece: str, name: str, raw: object, *, bits32: bool = True) -> int:
    """An integer from JSON or text; rejects bools, fractions and (for int32 fields) overflow."""
    if isinstance(raw, bool):
        raise WireFormatError(key, piece, f"{name} {raw!r} is not an integer")
    if isinstance(raw, int):
        number = raw
    elif isinstance(raw, float) and raw.is_integer():
        number = int(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        # Go's strconv.ParseInt(s, 10, …): ASCII digits only (Python's int() would also take
        # "1_000" and non-ASCII digits).
        if not _DECIMAL_INT.fullmatch(text):
            raise WireFormatError(key, piece, f"{name} {raw!r} is not an integer")
        try:
            number = int(text, 10)
        except ValueError:
            raise WireFormatError(key, piece, f"{name} {raw!r} is not an integer") from None
    else:
        raise WireFormatError(key, piece, f"{name} {raw!r} is not an integer")
    if bits32 and not INT32_MIN <= number <= INT32_MAX:
        raise WireFormatError(key, piece, f"{name} {number} does not fit in int32")
    return number


_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_go_bool(key: str, value: str) -> bool:
    """Go's ``strconv.ParseBool``."""
    text = value.strip()
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    raise WireFormatError(key, value, "not a boolean (true/false/1/0/t/f)")


def decode_comma_list(value: str | None) -> tuple[str, ...]:
    """A comma list such as `nvidia.com/use-gputype`: tokens trimmed, empty tokens dropped."""
    if not value:
        return ()
    return tuple(token.strip() for token in value.split(",") if token.strip())


def encode_comma_list(items: Iterable[str]) -> str:
    return ",".join(items)


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
    raw = _load_json(key, text)
    if not isinstance(raw, list):
        raise WireFormatError(key, _clip(text), "expected a JSON array of devices")
    devices = []
    for position, item in enumerate(cast(list[object], raw)):
        piece = f"device #{position}"
        fields = _lower_keys(key, piece, item)
        devices.append(_device_from_fields(key, piece, fields))
    return tuple(devices)


def _str_field(key: str, piece: str, fields: Mapping[str, object], name: str) -> str:
    raw = fields.get(name)
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise WireFormatError(key, piece, f"{name} {raw!r} is not a string")
    return raw


def _device_from_fields(key: str, piece: str, fields: dict[str, object]) -> DeviceInfo:
    device_id = _str_field(key, piece, fields, "id")
    if not device_id:
        raise WireFormatError(key, piece, "device has no id")
    piece = device_id
    health = fields.get("health", False)
    if health is None:
        health = False
    if not isinstance(health, bool):
        raise WireFormatError(key, piece, f"health {health!r} is not a boolean")
    index = _int(key, piece, "index", fields.get("index") or 0, bits32=False)
    if index < 0:
        raise WireFormatError(key, piece, f"index {index} is negative")
    custom = fields.get("custominfo") or {}
    if not isinstance(custom, dict):
        raise WireFormatError(key, piece, "custominfo is not a JSON object")
    return DeviceInfo(
        id=device_id,
        index=index,
        count=_int(key, piece, "count", fields.get("count") or 0),
        devmem=_int(key, piece, "devmem", fields.get("devmem") or 0),
        devcore=_int(key, piece, "devcore", fields.get("devcore") or 0),
        type=_str_field(key, piece, fields, "type"),
        numa=_int(key, piece, "numa", fields.get("numa") or 0, bits32=False),
        mode=_str_field(key, piece, fields, "mode"),
        health=health,
        mig_profiles=_decode_mig_profiles(key, piece, fields.get("migprofiles")),
        devicevendor=_str_field(key, piece, fields, "devicevendor"),
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
        name = _str_field(key, piece, fields, "name")
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
                    start=_int(key, name, "placement start", pf.get("start") or 0),
                    size=_int(key, name, "placement size", pf.get("size") or 0),
                )
            )
        profiles.append(
            MigProfile(
                name=name,
                memory_mb=_int(key, name, "memoryMB", fields.get("memorymb") or 0),
                core=_int(key, name, "core", fields.get("core") or 0),
                slice_count=_int(key, name, "sliceCount", fields.get("slicecount") or 0),
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
        raise WireFormatError(key, _clip(value), "legacy registration must contain ':'")
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
            index = _int(key, segment, "index", fields[7], bits32=False)
            if index < 0:
                raise WireFormatError(key, segment, f"index {index} is negative")
            mode = fields[8]
        devices.append(
            DeviceInfo(
                id=fields[0],
                count=_int(key, segment, "count", fields[1]),
                devmem=_int(key, segment, "devmem", fields[2]),
                devcore=_int(key, segment, "devcore", fields[3]),
                type=fields[4],
                numa=_int(key, segment, "numa", fields[5], bits32=False),
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


# ------------------------------------------------------------------------------------------------
# pod device lists (§2.5)


def decode_pod_devices(value: str, key: str = keys.NVIDIA_ALLOCATED) -> PodDevices:
    """Decode ``…-devices-to-allocate`` / ``…-devices-allocated`` into one entry per container.

    The final ``;`` terminates the last container; it does not open a new one. Surplus empty
    entries that HAMi's device plugin appends on every rewrite (§9.15) decode as empty containers.
    """
    if value == "":
        return ()
    entries = value.split(";")
    if entries[-1] == "":
        entries.pop()
    return tuple(_decode_container(key, entry) for entry in entries)


def _decode_container(key: str, entry: str) -> ContainerDevices:
    devices = []
    for piece in entry.split(":"):
        if "," not in piece:
            # HAMi parses only the pieces that contain a comma; the rest are skipped (§2.5).
            continue
        fields = piece.split(",")
        if len(fields) < 4:
            raise WireFormatError(
                key, piece, f"a device needs 4 comma-separated fields, got {len(fields)}"
            )
        if not fields[0]:
            raise WireFormatError(key, piece, "device UUID is empty")
        devices.append(
            ContainerDevice(
                uuid=fields[0],
                type=fields[1],
                usedmem=_int(key, piece, "memory", fields[2]),
                usedcores=_int(key, piece, "cores", fields[3]),
            )
        )
    return tuple(devices)


def encode_pod_devices(pod_devices: Sequence[Sequence[ContainerDevice]]) -> str:
    """One ``;``-terminated entry per container; each device ``UUID,TYPE,mem,cores:``."""
    return "".join(
        "".join(f"{d.uuid},{d.type},{d.usedmem},{d.usedcores}:" for d in container) + ";"
        for container in pod_devices
    )


# ------------------------------------------------------------------------------------------------
# node lock (§2.2, §3.13)


def encode_node_lock(lock: NodeLock) -> str:
    """``<RFC3339>,<namespace>,<pod>`` (seconds precision; ``Z`` for UTC as Go writes it)."""
    stamp = _rfc3339(lock.time)
    if lock.namespace is None or lock.name is None:
        return stamp
    return f"{stamp},{lock.namespace},{lock.name}"


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("node-lock times must be timezone-aware")
    text = moment.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def decode_node_lock(value: str, key: str = keys.NODE_LOCK) -> NodeLock:
    """Decode a node-lock value; the legacy bare timestamp has no owner."""
    parts = value.split(",")
    if len(parts) not in (1, 3):
        raise WireFormatError(key, value, "expected '<RFC3339>,<namespace>,<pod>'")
    moment = _parse_rfc3339(key, parts[0])
    if len(parts) == 1:
        return NodeLock(time=moment)
    if not parts[1] or not parts[2]:
        raise WireFormatError(key, value, "lock owner namespace and name must be non-empty")
    return NodeLock(time=moment, namespace=parts[1], name=parts[2])


def _parse_rfc3339(key: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise WireFormatError(key, text, "not an RFC3339 time") from None
    if moment.tzinfo is None:
        raise WireFormatError(key, text, "RFC3339 time needs a zone offset or Z")
    return moment


# ------------------------------------------------------------------------------------------------
# handshake (§2.7)


def encode_handshake_requesting(moment: datetime) -> str:
    """``Requesting_<2006-01-02 15:04:05>`` in the writer's local zone."""
    return f"{keys.HANDSHAKE_REQUESTING}_{moment.strftime(keys.HANDSHAKE_TIME_LAYOUT)}"


def encode_handshake_deleted(moment: datetime) -> str:
    return f"{keys.HANDSHAKE_DELETED}_{moment.strftime(keys.HANDSHAKE_TIME_LAYOUT)}"


def decode_handshake(value: str, zone: tzinfo = UTC) -> Handshake:
    """Classify a handshake value. Unparseable times decode with ``time=None`` (HAMi: healthy)."""
    if keys.HANDSHAKE_REQUESTING in value or value.startswith(keys.HANDSHAKE_DELETED):
        state = (
            keys.HANDSHAKE_REQUESTING
            if keys.HANDSHAKE_REQUESTING in value
            else keys.HANDSHAKE_DELETED
        )
        _, sep, stamp = value.partition("_")
        if not sep:
            return Handshake(state=state)
        try:
            moment = datetime.strptime(stamp, keys.HANDSHAKE_TIME_LAYOUT).replace(tzinfo=zone)
        except ValueError:
            return Handshake(state=state)
        return Handshake(state=state, time=moment)
    if value.startswith(keys.HANDSHAKE_REPORTED):
        return Handshake(state=keys.HANDSHAKE_REPORTED)
    return Handshake(state="")


# ------------------------------------------------------------------------------------------------
# device scoring weights (§2.1, §3.18)


def decode_scoring_weights(
    value: str | None, key: str = keys.DEVICE_SCORING_WEIGHTS
) -> ScoringWeights:
    """``slot=1,core=1,memory=3``: exactly the three keys, non-negative, at least one positive."""
    if value is None:
        return ScoringWeights()
    items = value.split(",")
    if len(items) != 3:
        raise WireFormatError(key, value, "expected exactly slot=N,core=N,memory=N")
    weights: dict[str, int] = {}
    for item in items:
        name, sep, number = item.partition("=")
        name = name.strip()
        if not sep or name not in ("slot", "core", "memory"):
            raise WireFormatError(key, item, "items must be slot=N, core=N or memory=N")
        if name in weights:
            raise WireFormatError(key, item, f'"{name}" weight given twice')
        weight = _int(key, item, f'"{name}" weight', number)
        if weight < 0:
            raise WireFormatError(key, item, f'"{name}" weight must not be negative')
        weights[name] = weight
    if not any(weights.values()):
        raise WireFormatError(key, value, "at least one weight must be positive")
    return ScoringWeights(slot=weights["slot"], core=weights["core"], memory=weights["memory"])


def encode_scoring_weights(weights: ScoringWeights) -> str:
    return f"slot={weights.slot},core={weights.core},memory={weights.memory}"


# ------------------------------------------------------------------------------------------------
# MIG allocations (§2.8)


def encode_mig_allocations(allocations: Sequence[MigAllocation]) -> str:
    out = []
    for a in allocations:
        item: dict[str, object] = {
            "containerIndex": a.container_index,
            "deviceIndex": a.device_index,
            "gpuUUID": a.gpu_uuid,
            "profile": a.profile,
            "placement": {"start": a.placement.start, "size": a.placement.size},
        }
        if a.mig_uuid:
            item["migUUID"] = a.mig_uuid
        if a.gpu_instance_id is not None:
            item["gpuInstanceID"] = a.gpu_instance_id
        if a.compute_instance_id is not None:
            item["computeInstanceID"] = a.compute_instance_id
        out.append(item)
    return go_json(out)


def decode_mig_allocations(
    value: str, key: str = keys.MIG_ALLOCATIONS
) -> tuple[MigAllocation, ...]:
    raw = _load_json(key, value)
    if not isinstance(raw, list):
        raise WireFormatError(key, _clip(value), "expected a JSON array")
    seen: set[tuple[int, int]] = set()
    result = []
    for position, item in enumerate(cast(list[object], raw)):
        piece = f"entry #{position}"
        fields = _lower_keys(key, piece, item)
        allocation = _mig_allocation(key, piece, fields)
        slot = (allocation.container_index, allocation.device_index)
        if slot in seen:
            raise WireFormatError(key, piece, f"duplicate (containerIndex, deviceIndex) {slot}")
        seen.add(slot)
        result.append(allocation)
    return tuple(result)


def _mig_allocation(key: str, piece: str, fields: dict[str, object]) -> MigAllocation:
    container_index = _int(key, piece, "containerIndex", fields.get("containerindex", 0))
    device_index = _int(key, piece, "deviceIndex", fields.get("deviceindex", 0))
    if container_index < 0 or device_index < 0:
        raise WireFormatError(key, piece, "indexes must be non-negative")
    gpu_uuid = _str_field(key, piece, fields, "gpuuuid")
    profile = _str_field(key, piece, fields, "profile")
    if not gpu_uuid or not profile:
        raise WireFormatError(key, piece, "gpuUUID and profile must be non-empty")
    place = _lower_keys(key, piece, fields.get("placement") or {})
    placement = MigPlacement(
        start=_int(key, piece, "placement.start", place.get("start", 0)),
        size=_int(key, piece, "placement.size", place.get("size", 0)),
    )
    if placement.size == 0:
        raise WireFormatError(key, piece, "placement.size must not be 0")
    mig_uuid = _str_field(key, piece, fields, "miguuid") or None
    gi = fields.get("gpuinstanceid")
    ci = fields.get("computeinstanceid")
    present = [mig_uuid is not None, gi is not None, ci is not None]
    if any(present) and not all(present):
        raise WireFormatError(
            key, piece, "migUUID, gpuInstanceID and computeInstanceID must be all set or all absent"
        )
    return MigAllocation(
        container_index=container_index,
        device_index=device_index,
        gpu_uuid=gpu_uuid,
        profile=profile,
        placement=placement,
        mig_uuid=mig_uuid,
        gpu_instance_id=None if gi is None else _int(key, piece, "gpuInstanceID", gi, bits32=False),
        compute_instance_id=None
        if ci is None
        else _int(key, piece, "computeInstanceID", ci, bits32=False),
    )


# ------------------------------------------------------------------------------------------------
# topology pair scores (§2.3, §3.9)


def decode_pair_scores(value: str, key: str = keys.NVIDIA_SCORE) -> tuple[PairScores, ...]:
    raw = _load_json(key, value)
    if not isinstance(raw, list):
        raise WireFormatError(key, _clip(value), "expected a JSON array")
    result = []
    for position, item in enumerate(cast(list[object], raw)):
        piece = f"entry #{position}"
        fields = _lower_keys(key, piece, item)
        uuid = _str_field(key, piece, fields, "uuid")
        if not uuid:
            raise WireFormatError(key, piece, "uuid must be non-empty")
        score_raw = fields.get("score") or {}
        if not isinstance(score_raw, dict):
            raise WireFormatError(key, uuid, "score must be a JSON object")
        scores = {
            str(peer): _int(key, uuid, f"score of {peer}", s)
            for peer, s in cast(dict[str, object], score_raw).items()
        }
        result.append(PairScores(uuid=uuid, scores=scores))
    return tuple(result)


def encode_pair_scores(pairs: Sequence[PairScores]) -> str:
    return go_json([{"uuid": p.uuid, "score": _go_map(p.scores)} for p in pairs])


# ------------------------------------------------------------------------------------------------
# generic per-vendor keys


def to_allocate_key(vendor_prefix: str) -> str:
    """``hami.io/<prefix>-devices-to-allocate`` (NVIDIA's prefix is ``vgpu``)."""
    return f"hami.io/{vendor_prefix}-devices-to-allocate"


def allocated_key(vendor_prefix: str) -> str:
    return f"hami.io/{vendor_prefix}-devices-allocated"


def unix_seconds(moment: datetime) -> str:
    """A decimal Unix-seconds annotation value (`hami.io/vgpu-time`, `hami.io/bind-time`)."""
    return str(int(moment.timestamp()))


def unix_nanos(moment: datetime) -> str:
    """A decimal Unix-nanoseconds value (`mthreads.com/predicate-time` and friends)."""
    return str(int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000)


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
    raw = _load_json(key, value)
    if not isinstance(raw, list):
        raise WireFormatError(key, _clip(value), "expected a JSON array")
    found = []
    for item in cast(list[object], raw):
        if not isinstance(item, dict):
            raise WireFormatError(key, _clip(value), "expected an array of objects")
        fields = cast(dict[str, object], item)
        uuid = _str_field(key, "UUID", fields, "UUID")
        found.append(
            AscendRuntime(
                uuid=uuid,
                temp=_str_field(key, uuid, fields, "temp"),
                memory=_int(key, uuid, "memory", fields.get("memory") or 0, bits32=False),
                core=_int(key, uuid, "core", fields.get("core") or 0),
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
    if isinstance(raw, str) and _DECIMAL_INT.fullmatch(raw.strip()):
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
    raw = _load_json(key, value)
    if not isinstance(raw, list):
        raise WireFormatError(key, _clip(value), "expected a JSON array")
    found = []
    for item in cast(list[object], raw):
        if not isinstance(item, dict):
            raise WireFormatError(key, _clip(value), "expected an array of objects")
        fields = cast(dict[str, object], item)
        uuid = _str_field(key, "uuid", fields, "uuid")
        if not uuid:
            raise WireFormatError(key, _clip(value), "device has no uuid")
        healthy = fields.get("healthy", False)
        if not isinstance(healthy, bool):
            raise WireFormatError(key, uuid, f"healthy {healthy!r} is not a boolean")
        found.append(
            MetaxGpu(
                uuid=uuid,
                model=_str_field(key, uuid, fields, "model"),
                bdf=_str_field(key, uuid, fields, "bdf"),
                total_dev_count=_int(key, uuid, "totalDevCount", fields.get("totalDevCount") or 0),
                total_compute=_int(key, uuid, "totalCompute", fields.get("totalCompute") or 0),
                total_vram=_int(key, uuid, "totalVRam", fields.get("totalVRam") or 0),
                numa=_int(key, uuid, "numa", fields.get("numa") or 0, bits32=False),
                healthy=healthy,
                qos_policy=_str_field(key, uuid, fields, "qosPolicy"),
                link_zone=_int(key, uuid, "linkZone", fields.get("linkZone") or 0),
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
    raw = _load_json(key, value)
    if not isinstance(raw, dict):
        raise WireFormatError(key, _clip(value), "expected a JSON object")
    out: dict[int, int] = {}
    for count, score in cast(dict[str, object], raw).items():
        out[_int(key, count, "device count", count, bits32=False)] = _int(
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
    raw = _load_json(key, value)
    if not isinstance(raw, dict):
        raise WireFormatError(key, _clip(value), "expected a JSON object")
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
    index_text = _str_field(key, f"{piece}.index", fields, "index").strip()
    index = int(index_text) if _DECIMAL_INT.fullmatch(index_text) else position
    if not 0 <= index <= INT32_MAX:
        index = position
    minor = _str_field(key, f"{piece}.minor", fields, "minor").strip() or str(index)
    if "capacity" not in fields:
        raise WireFormatError(key, f"{piece}.capacity", "missing")
    capacity = _int(key, f"{piece}.capacity", "capacity", fields["capacity"])
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
