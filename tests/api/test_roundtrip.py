"""Property tests: decode(encode(x)) == x for every wire format, and decoders fail only typed."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from hami.api import keys
from hami.api.annotations import (
    decode_comma_list,
    decode_handshake,
    decode_legacy_node_devices,
    decode_mig_allocations,
    decode_node_devices,
    decode_node_lock,
    decode_pair_scores,
    decode_pod_devices,
    decode_scoring_weights,
    encode_handshake_deleted,
    encode_handshake_requesting,
    encode_legacy_node_devices,
    encode_mig_allocations,
    encode_node_devices,
    encode_node_lock,
    encode_pair_scores,
    encode_pod_devices,
    encode_scoring_weights,
    parse_go_bool,
)
from hami.api.errors import WireFormatError
from hami.api.quantity import parse_int_quantity, parse_quantity
from hami.api.types import (
    ContainerDevice,
    DeviceInfo,
    MigAllocation,
    MigPlacement,
    MigProfile,
    NodeLock,
    PairScores,
    ScoringWeights,
)

EXAMPLES = settings(max_examples=60, deadline=None)

INT32 = st.integers(-(2**31), 2**31 - 1)
NON_NEG_INT32 = st.integers(0, 2**31 - 1)
# Plain words for fields of the colon/semicolon formats: no separator characters.
WORD = st.text(
    alphabet=st.characters(blacklist_characters=",:;", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=12,
)
ANY_TEXT = st.text(max_size=16)


# ------------------------------------------------------------------------------------------------
# pod device lists

container_devices = st.builds(
    ContainerDevice,
    uuid=WORD,
    type=st.one_of(st.just("NVIDIA"), WORD, st.just("")),
    usedmem=INT32,
    usedcores=INT32,
)
pod_devices = st.lists(st.lists(container_devices, max_size=3).map(tuple), max_size=5).map(tuple)


@EXAMPLES
@given(pod_devices)
def test_pod_devices_roundtrip(value: tuple[tuple[ContainerDevice, ...], ...]) -> None:
    text = encode_pod_devices(value)
    assert decode_pod_devices(text) == value
    assert text.count(";") == len(value)
    assert encode_pod_devices(decode_pod_devices(text)) == text


# ------------------------------------------------------------------------------------------------
# registrations

JSON_SCALAR = st.one_of(st.none(), st.booleans(), INT32, ANY_TEXT)
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(ANY_TEXT, inner, max_size=3)
    ),
    max_leaves=8,
)

mig_profiles = st.builds(
    MigProfile,
    name=st.text(min_size=1, max_size=10),
    memory_mb=INT32,
    core=INT32,
    slice_count=INT32,
    placements=st.lists(st.builds(MigPlacement, start=INT32, size=INT32), max_size=3).map(tuple),
)

full_devices = st.builds(
    DeviceInfo,
    id=st.text(min_size=1, max_size=20),
    count=INT32,
    devmem=INT32,
    devcore=INT32,
    type=ANY_TEXT,
    index=st.integers(0, 2**40),
    numa=st.integers(-(2**40), 2**40),
    mode=ANY_TEXT,
    health=st.booleans(),
    mig_profiles=st.lists(mig_profiles, max_size=2).map(tuple),
    devicevendor=ANY_TEXT,
    custominfo=st.dictionaries(ANY_TEXT, JSON_VALUE, max_size=3),
)

zero_devices = st.builds(
    DeviceInfo,
    id=st.text(min_size=1, max_size=20),
    count=st.just(0),
    devmem=st.just(0),
    devcore=st.just(0),
    type=st.just(""),
)


@EXAMPLES
@given(st.lists(full_devices, max_size=4))
def test_json_registration_roundtrip(devices: list[DeviceInfo]) -> None:
    text = encode_node_devices(devices)
    assert decode_node_devices(text) == tuple(devices)
    assert encode_node_devices(decode_node_devices(text)) == text


@EXAMPLES
@given(st.lists(zero_devices, min_size=1, max_size=3))
def test_json_registration_zero_values_roundtrip(devices: list[DeviceInfo]) -> None:
    text = encode_node_devices(devices)
    for device in json.loads(text):
        assert list(device) == ["id"]  # every zero field is omitted, as Go's omitempty does
    assert decode_node_devices(text) == tuple(devices)


legacy_devices = st.builds(
    DeviceInfo,
    id=WORD.filter(lambda w: not w.lstrip().startswith(("[", "{"))),  # those mean JSON
    count=INT32,
    devmem=INT32,
    devcore=INT32,
    type=WORD,
    numa=st.integers(-(2**40), 2**40),
    health=st.booleans(),
    index=st.integers(0, 2**40),
    mode=st.one_of(st.sampled_from(["hami-core", "mig", "mps"]), WORD),
)


@EXAMPLES
@given(st.lists(legacy_devices, min_size=1, max_size=4))
def test_legacy_registration_roundtrip(devices: list[DeviceInfo]) -> None:
    text = encode_legacy_node_devices(devices)
    assert all(len(segment.split(",")) == 9 for segment in text.split(":")[:-1])
    assert decode_legacy_node_devices(text) == tuple(devices)
    assert decode_node_devices(text) == tuple(devices)


# ------------------------------------------------------------------------------------------------
# node lock and handshake

OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
SECOND_DATETIMES = st.datetimes(
    min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30)
).map(lambda d: d.replace(microsecond=0))
OWNER = st.text(
    alphabet=st.characters(blacklist_characters=",", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=20,
)


@EXAMPLES
@given(SECOND_DATETIMES, OFFSETS, st.one_of(st.none(), st.tuples(OWNER, OWNER)))
def test_node_lock_roundtrip(
    moment: datetime, zone: timezone, owner: tuple[str, str] | None
) -> None:
    aware = moment.replace(tzinfo=zone)
    lock = NodeLock(aware) if owner is None else NodeLock(aware, owner[0], owner[1])
    text = encode_node_lock(lock)
    decoded = decode_node_lock(text)
    assert decoded == lock
    assert decoded.time.utcoffset() == aware.utcoffset()
    assert encode_node_lock(decoded) == text
    stamp = text.split(",")[0]
    assert stamp.endswith("Z") == (zone.utcoffset(None) == timedelta(0))  # Go writes Z for UTC


@EXAMPLES
@given(SECOND_DATETIMES, OFFSETS)
def test_handshake_roundtrip(moment: datetime, zone: timezone) -> None:
    requesting = decode_handshake(encode_handshake_requesting(moment), zone=zone)
    assert requesting.state == keys.HANDSHAKE_REQUESTING
    assert requesting.time == moment.replace(tzinfo=zone)
    deleted = decode_handshake(encode_handshake_deleted(moment.replace(tzinfo=UTC)))
    assert deleted.state == keys.HANDSHAKE_DELETED
    assert deleted.time == moment.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------------------------
# scoring weights, MIG allocations, pair scores

weights = st.builds(
    ScoringWeights, slot=NON_NEG_INT32, core=NON_NEG_INT32, memory=NON_NEG_INT32
).filter(lambda w: w.slot > 0 or w.core > 0 or w.memory > 0)


@EXAMPLES
@given(weights, st.permutations([0, 1, 2]))
def test_scoring_weights_roundtrip(value: ScoringWeights, order: list[int]) -> None:
    text = encode_scoring_weights(value)
    assert decode_scoring_weights(text) == value
    shuffled = ",".join(text.split(",")[i] for i in order)
    assert decode_scoring_weights(shuffled) == value


@st.composite
def mig_allocation_lists(draw: st.DrawFn) -> list[MigAllocation]:
    slots = draw(st.lists(st.tuples(NON_NEG_INT32, NON_NEG_INT32), unique=True, max_size=4))
    result = []
    for container_index, device_index in slots:
        realised = draw(st.booleans())
        result.append(
            MigAllocation(
                container_index=container_index,
                device_index=device_index,
                gpu_uuid=draw(st.text(min_size=1, max_size=12)),
                profile=draw(st.text(min_size=1, max_size=8)),
                placement=MigPlacement(
                    start=draw(INT32), size=draw(INT32.filter(lambda s: s != 0))
                ),
                mig_uuid=draw(st.text(min_size=1, max_size=12)) if realised else None,
                gpu_instance_id=draw(st.integers(0, 2**32 - 1)) if realised else None,
                compute_instance_id=draw(st.integers(0, 2**32 - 1)) if realised else None,
            )
        )
    return result


@EXAMPLES
@given(mig_allocation_lists())
def test_mig_allocations_roundtrip(allocations: list[MigAllocation]) -> None:
    text = encode_mig_allocations(allocations)
    assert decode_mig_allocations(text) == tuple(allocations)
    assert encode_mig_allocations(decode_mig_allocations(text)) == text


pair_scores = st.builds(
    PairScores,
    uuid=st.text(min_size=1, max_size=12),
    scores=st.dictionaries(st.text(max_size=12), INT32, max_size=4),
)


@EXAMPLES
@given(st.lists(pair_scores, max_size=4))
def test_pair_scores_roundtrip(pairs: list[PairScores]) -> None:
    text = encode_pair_scores(pairs)
    assert decode_pair_scores(text) == tuple(pairs)
    assert encode_pair_scores(decode_pair_scores(text)) == text


# ------------------------------------------------------------------------------------------------
# every decoder: arbitrary input either decodes or raises WireFormatError, nothing else

DECODERS: dict[str, Callable[[str], object]] = {
    "pod_devices": decode_pod_devices,
    "node_devices": decode_node_devices,
    "legacy_node_devices": decode_legacy_node_devices,
    "node_lock": decode_node_lock,
    "handshake": decode_handshake,
    "scoring_weights": decode_scoring_weights,
    "mig_allocations": decode_mig_allocations,
    "pair_scores": decode_pair_scores,
    "go_bool": lambda v: parse_go_bool(keys.NUMA_BIND, v),
    "comma_list": decode_comma_list,
    "quantity": parse_quantity,
    "int_quantity": parse_int_quantity,
}

# Text biased towards the formats' own characters, so the fuzz reaches past the first check.
WIRE_ALPHABET = st.sampled_from([*'0123456789,:;=[]{}"-+._ eEZTtfGiKkm', "\u0661", "é"])
WIRE_TOKENS = st.sampled_from(
    [
        "GPU-1",
        "NVIDIA",
        "true",
        "false",
        "slot=",
        "core=",
        "memory=",
        "Requesting_",
        "Deleted_",
        "2026-08-21T06:20:39Z",
        "2026-08-21 06:20:39",
        "+08:00",
        '"id":',
        '"placement":',
        '"placements":',
        '"migProfiles":',
        '"score":',
        '"size":',
        "null",
        "2147483648",
        "1e309",
    ]
)
WIRE_TEXT = st.lists(st.one_of(WIRE_ALPHABET, WIRE_TOKENS), max_size=30).map("".join)

JSON_KEYS = st.sampled_from(
    [
        "id",
        "ID",
        "index",
        "count",
        "devmem",
        "devcore",
        "type",
        "numa",
        "mode",
        "health",
        "migProfiles",
        "name",
        "memoryMB",
        "core",
        "sliceCount",
        "placements",
        "start",
        "size",
        "custominfo",
        "containerIndex",
        "deviceIndex",
        "gpuUUID",
        "profile",
        "placement",
        "migUUID",
        "gpuInstanceID",
        "computeInstanceID",
        "uuid",
        "score",
    ]
)
FUZZ_JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**40), 2**40),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=6),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(JSON_KEYS, inner, max_size=5)
    ),
    max_leaves=12,
)


def _decode_or_wire_error(decode: Callable[[str], object], text: str) -> None:
    try:
        decode(text)
    except WireFormatError as err:
        assert err.key and err.why
        assert str(err).startswith(f"{err.key}: ")


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(DECODERS)), st.one_of(st.text(max_size=40), WIRE_TEXT))
def test_decoders_fail_only_with_wire_format_error(name: str, text: str) -> None:
    _decode_or_wire_error(DECODERS[name], text)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["node_devices", "mig_allocations", "pair_scores"]), FUZZ_JSON)
def test_json_decoders_fail_only_with_wire_format_error(name: str, value: object) -> None:
    text = json.dumps([value]) if not isinstance(value, list) else json.dumps(value)
    _decode_or_wire_error(DECODERS[name], text)


@settings(max_examples=40, deadline=None)
@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.lists(st.integers(), max_size=2),
        st.text(max_size=12),
    )
)
def test_quantity_accepts_any_yaml_value_or_raises_wire_error(value: object) -> None:
    for parse in (parse_quantity, parse_int_quantity):
        with contextlib.suppress(WireFormatError):
            parse(value)
