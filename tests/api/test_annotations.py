"""Golden, tolerance and malformed-input tests for the wire codec (wire-format.md §2, §3.9, §5.7, §10)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from hami.api import keys
from hami.api.annotations import (
    allocated_key,
    decode_comma_list,
    decode_handshake,
    decode_legacy_node_devices,
    decode_mig_allocations,
    decode_node_devices,
    decode_node_lock,
    decode_pair_scores,
    decode_pod_devices,
    decode_scoring_weights,
    encode_comma_list,
    encode_handshake_deleted,
    encode_handshake_requesting,
    encode_legacy_node_devices,
    encode_mig_allocations,
    encode_node_devices,
    encode_node_lock,
    encode_pair_scores,
    encode_pod_devices,
    encode_scoring_weights,
    go_json,
    parse_go_bool,
    to_allocate_key,
    unix_seconds,
)
from hami.api.errors import WireFormatError
from hami.api.types import (
    ContainerDevice,
    DeviceInfo,
    Handshake,
    MigAllocation,
    MigPlacement,
    MigProfile,
    NodeLock,
    PairScores,
    ScoringWeights,
)

V100 = "NVIDIA-Tesla V100-PCIE-32GB"
UUID_A = "GPU-00552014-5c87-89ac-b1a6-7b53aa24b0ec"
UUID_B = "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448"
UUID_P4 = "GPU-ebe7c3f7-303d-558d-435e-99a160631fe4"
UUID_8D = "GPU-8dcd427f-483b-b48f-d7e5-75fb19a52b76"


def expect_error(
    decode: Callable[[str], object], value: str, key: str, piece: str, why: str
) -> WireFormatError:
    """Decoding *value* fails with a message naming the key, the offending piece and why."""
    with pytest.raises(WireFormatError) as info:
        decode(value)
    err = info.value
    message = str(err)
    assert err.key == key, message
    assert piece in err.piece, message
    assert why in err.why, message
    assert message.startswith(f"{key}: ")
    assert piece in message
    assert why in message
    return err


def dev(uuid: str, mem: int, cores: int, vendor: str = "NVIDIA") -> ContainerDevice:
    return ContainerDevice(uuid=uuid, type=vendor, usedmem=mem, usedcores=cores)


# ------------------------------------------------------------------------------------------------
# §2.6 node registration — JSON form


TWO_V100 = (
    '[{"id":"GPU-00552014-5c87-89ac-b1a6-7b53aa24b0ec","count":10,"devmem":32768,"devcore":100,'
    '"type":"NVIDIA-Tesla V100-PCIE-32GB","mode":"hami-core","health":true},'
    '{"id":"GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448","index":1,"count":10,"devmem":32768,'
    '"devcore":100,"type":"NVIDIA-Tesla V100-PCIE-32GB","mode":"hami-core","health":true}]'
)
TWO_V100_DEVICES = (
    DeviceInfo(
        id=UUID_A, count=10, devmem=32768, devcore=100, type=V100, mode="hami-core", health=True
    ),
    DeviceInfo(
        id=UUID_B,
        index=1,
        count=10,
        devmem=32768,
        devcore=100,
        type=V100,
        mode="hami-core",
        health=True,
    ),
)

# §10 worked example: node-a's registration.
ONE_V100 = (
    '[{"id":"GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448","count":10,"devmem":32768,"devcore":100,'
    '"type":"NVIDIA-Tesla V100-PCIE-32GB","mode":"hami-core","health":true}]'
)

# §5.7 MIG profile example, embedded in a registration in the plugin's struct order.
MIG_PROFILE_JSON = (
    '{"name":"2g.10gb","memoryMB":9984,"core":29,"sliceCount":2,'
    '"placements":[{"start":0,"size":2},{"start":2,"size":2},{"start":4,"size":2}]}'
)
MIG_PROFILE = MigProfile(
    name="2g.10gb",
    memory_mb=9984,
    core=29,
    slice_count=2,
    placements=(MigPlacement(0, 2), MigPlacement(2, 2), MigPlacement(4, 2)),
)
A100_MIG = (
    '[{"id":"GPU-a100","index":2,"count":3,"devmem":40960,"devcore":100,'
    '"type":"NVIDIA A100-SXM4-40GB","numa":1,"mode":"mig","migProfiles":[' + MIG_PROFILE_JSON + "],"
    '"health":true}]'
)


def test_two_v100_registration_decodes() -> None:
    assert decode_node_devices(TWO_V100) == TWO_V100_DEVICES


def test_two_v100_registration_reencodes_byte_for_byte() -> None:
    assert encode_node_devices(TWO_V100_DEVICES) == TWO_V100
    assert encode_node_devices(decode_node_devices(TWO_V100)) == TWO_V100


def test_worked_example_registration() -> None:
    (device,) = decode_node_devices(ONE_V100)
    assert device == DeviceInfo(
        id=UUID_B, count=10, devmem=32768, devcore=100, type=V100, mode="hami-core", health=True
    )
    assert encode_node_devices([device]) == ONE_V100


def test_mig_profile_registration_golden() -> None:
    (device,) = decode_node_devices(A100_MIG)
    assert device == DeviceInfo(
        id="GPU-a100",
        index=2,
        count=3,
        devmem=40960,
        devcore=100,
        type="NVIDIA A100-SXM4-40GB",
        numa=1,
        mode="mig",
        health=True,
        mig_profiles=(MIG_PROFILE,),
    )
    assert encode_node_devices([device]) == A100_MIG


def test_registration_any_key_order_and_absent_keys() -> None:
    shuffled = (
        '[{"health":true,"type":"T4","devcore":100,"mode":"hami-core","devmem":15360,'
        '"numa":1,"count":4,"index":3,"id":"GPU-t4"}]'
    )
    assert decode_node_devices(shuffled) == (
        DeviceInfo(
            id="GPU-t4",
            index=3,
            count=4,
            devmem=15360,
            devcore=100,
            type="T4",
            numa=1,
            mode="hami-core",
            health=True,
        ),
    )
    (bare,) = decode_node_devices('[{"id":"GPU-bare"}]')
    assert bare == DeviceInfo(id="GPU-bare", count=0, devmem=0, devcore=0, type="")
    assert (bare.index, bare.numa, bare.mode, bare.health, bare.mig_profiles) == (
        0,
        0,
        "",
        False,
        (),
    )
    assert encode_node_devices([bare]) == '[{"id":"GPU-bare"}]'


def test_registration_nulls_are_zero_values() -> None:
    (device,) = decode_node_devices(
        '[{"id":"GPU-n","index":null,"count":null,"health":null,"migProfiles":null,'
        '"custominfo":null,"type":null}]'
    )
    assert device == DeviceInfo(id="GPU-n", count=0, devmem=0, devcore=0, type="")


def test_registration_keys_are_case_insensitive_like_go() -> None:
    text = (
        '[{"ID":"GPU-c","Index":1,"COUNT":10,"DevMem":1024,"DEVCORE":100,"Type":"A10",'
        '"Numa":1,"Mode":"mig","Health":true,"DeviceVendor":"NVIDIA",'
        '"MigProfiles":[{"Name":"1g.5gb","MEMORYMB":4864,"Core":14,"SLICECOUNT":1,'
        '"Placements":[{"Start":6,"SIZE":1}]}]}]'
    )
    (device,) = decode_node_devices(text)
    assert device == DeviceInfo(
        id="GPU-c",
        index=1,
        count=10,
        devmem=1024,
        devcore=100,
        type="A10",
        numa=1,
        mode="mig",
        health=True,
        devicevendor="NVIDIA",
        mig_profiles=(MigProfile("1g.5gb", 4864, 14, 1, (MigPlacement(6, 1),)),),
    )


def test_registration_ignores_unknown_and_deprecated_fields() -> None:
    text = '[{"id":"GPU-u","migtemplate":[{"name":"x"}],"future":{"a":1},"count":2}]'
    assert decode_node_devices(text) == (
        DeviceInfo(id="GPU-u", count=2, devmem=0, devcore=0, type=""),
    )


def test_registration_custominfo_and_vendor_roundtrip_sorted_like_go_maps() -> None:
    device = DeviceInfo(
        id="npu-1",
        count=1,
        devmem=65536,
        devcore=100,
        type="Ascend910B",
        devicevendor="Ascend910B",
        custominfo={"NetworkID": 3, "B": {"z": 1, "a": [2, {"y": 0, "x": 1}]}},
    )
    text = encode_node_devices([device])
    assert text == (
        '[{"id":"npu-1","count":1,"devmem":65536,"devcore":100,"type":"Ascend910B",'
        '"devicevendor":"Ascend910B","custominfo":{"B":{"a":[2,{"x":1,"y":0}],"z":1},"NetworkID":3}}]'
    )
    assert decode_node_devices(text) == (device,)


def test_go_json_escapes_html_characters() -> None:
    assert go_json({"type": "A<B>&C\u2028"}) == '{"type":"A\\u003cB\\u003e\\u0026C\\u2028"}'
    device = DeviceInfo(id="GPU-<x>", count=1, devmem=1, devcore=1, type="a&b")
    assert decode_node_devices(encode_node_devices([device])) == (device,)


def test_empty_registration_array_decodes_to_no_devices() -> None:
    assert decode_node_devices("[]") == ()
    assert decode_node_devices("  [] ") == ()


R = keys.NVIDIA_REGISTER


@pytest.mark.parametrize(
    ("value", "piece", "why"),
    [
        ("", "", "empty registration"),
        ("   ", "", "empty registration"),
        ('[{"id":', "[{", "not valid JSON"),
        ('{"id":"GPU-1","count":1}', '{"id"', "expected a JSON array of devices"),
        ("[1]", "device #0", "expected a JSON object"),
        ('[{"count":1}]', "device #0", "device has no id"),
        ('[{"id":5}]', "device #0", "id 5 is not a string"),
        ('[{"id":"GPU-1","count":"abc"}]', "GPU-1", "count 'abc' is not an integer"),
        ('[{"id":"GPU-1","count":1.5}]', "GPU-1", "count 1.5 is not an integer"),
        ('[{"id":"GPU-1","count":true}]', "GPU-1", "count True is not an integer"),
        (
            '[{"id":"GPU-1","devmem":2147483648}]',
            "GPU-1",
            "devmem 2147483648 does not fit in int32",
        ),
        ('[{"id":"GPU-1","devcore":-2147483649}]', "GPU-1", "does not fit in int32"),
        ('[{"id":"GPU-1","health":"yes"}]', "GPU-1", "health 'yes' is not a boolean"),
        ('[{"id":"GPU-1","index":-1}]', "GPU-1", "index -1 is negative"),
        ('[{"id":"GPU-1","type":7}]', "GPU-1", "type 7 is not a string"),
        ('[{"id":"GPU-1","custominfo":[1]}]', "GPU-1", "custominfo is not a JSON object"),
        ('[{"id":"GPU-1","migProfiles":{}}]', "GPU-1", "migProfiles is not a JSON array"),
        ('[{"id":"GPU-1","migProfiles":[{"core":1}]}]', "GPU-1", "a MIG profile has no name"),
        ('[{"id":"GPU-1","migProfiles":[5]}]', "GPU-1", "expected a JSON object"),
        (
            '[{"id":"GPU-1","migProfiles":[{"name":"1g","placements":5}]}]',
            "GPU-1 1g",
            "placements is not a JSON array",
        ),
        (
            '[{"id":"GPU-1","migProfiles":[{"name":"1g","placements":[{"start":"x"}]}]}]',
            "1g",
            "placement start 'x' is not an integer",
        ),
        (
            '[{"id":"GPU-1","migProfiles":[{"name":"1g","memoryMB":"lots"}]}]',
            "1g",
            "memoryMB 'lots' is not an integer",
        ),
        ("[" * 100_000, "[[[", "not valid JSON"),
        ('[{"id":"GPU-1","count":' + "1" * 5000 + "}]", '[{"id"', "not valid JSON"),
    ],
)
def test_registration_malformed(value: str, piece: str, why: str) -> None:
    expect_error(decode_node_devices, value, R, piece, why)


def test_registration_error_uses_the_given_key() -> None:
    expect_error(
        lambda v: decode_node_devices(v, key="hami.io/node-register-xpu"),
        "[1]",
        "hami.io/node-register-xpu",
        "device #0",
        "expected a JSON object",
    )


# ------------------------------------------------------------------------------------------------
# §2.6 node registration — legacy comma form

LEGACY_7 = "GPU-ebe7c3f7-303d-558d-435e-99a160631fe4,10,7680,100,NVIDIA-Tesla P4,0,true:"
LEGACY_9 = (
    "GPU-ebe7c3f7-303d-558d-435e-99a160631fe4,10,7680,100,NVIDIA-Tesla P4,0,true,1,hami-core:"
)
P4 = DeviceInfo(
    id=UUID_P4,
    count=10,
    devmem=7680,
    devcore=100,
    type="NVIDIA-Tesla P4",
    numa=0,
    health=True,
    index=0,
    mode="hami-core",
)


def test_legacy_7_field_golden() -> None:
    assert decode_node_devices(LEGACY_7) == (P4,)
    assert decode_legacy_node_devices(LEGACY_7) == (P4,)
    # The encoder always writes 9 fields; 7 fields mean index 0 and mode hami-core.
    assert encode_legacy_node_devices([P4]) == LEGACY_7[:-1] + ",0,hami-core:"


def test_legacy_9_field_golden_reencodes_byte_for_byte() -> None:
    expected = DeviceInfo(
        id=UUID_P4,
        count=10,
        devmem=7680,
        devcore=100,
        type="NVIDIA-Tesla P4",
        numa=0,
        health=True,
        index=1,
        mode="hami-core",
    )
    assert decode_node_devices(LEGACY_9) == (expected,)
    assert encode_legacy_node_devices(decode_node_devices(LEGACY_9)) == LEGACY_9


def test_legacy_several_devices_and_go_bools() -> None:
    value = "d1,4,1000,100,DCU,1,false,0,hami-core:d2,4,1000,100,DCU,1,T:d3,4,1000,100,DCU,0,1:"
    devices = decode_legacy_node_devices(value, key="hami.io/node-dcu-register")
    assert [d.id for d in devices] == ["d1", "d2", "d3"]
    assert [d.health for d in devices] == [False, True, True]
    assert [d.numa for d in devices] == [1, 1, 0]
    assert all(d.mode == "hami-core" for d in devices)


def test_legacy_without_trailing_colon_is_accepted_when_another_colon_exists() -> None:
    value = "d1,4,1000,100,DCU,0,true:d2,4,1000,100,DCU,0,true"
    assert [d.id for d in decode_legacy_node_devices(value)] == ["d1", "d2"]


@pytest.mark.parametrize(
    ("value", "piece", "why"),
    [
        (
            "GPU-1,10,7680,100,P4,0,true,1:",
            "GPU-1,10,7680,100,P4,0,true,1",
            "expected 7 or 9 comma-separated fields, got 8",
        ),
        ("GPU-1,10,7680,100,P4,0:", "GPU-1,10,7680,100,P4,0", "got 6"),
        ("GPU-1,10,7680,100,P4,0,true", "GPU-1,10,7680,100,P4,0,true", "must contain ':'"),
        ("GPU-1,ten,7680,100,P4,0,true:", "GPU-1,ten", "count 'ten' is not an integer"),
        ("GPU-1,10,2147483648,100,P4,0,true:", "GPU-1,10,2147483648", "does not fit in int32"),
        ("GPU-1,10,7680,100,P4,x,true:", "GPU-1,10", "numa 'x' is not an integer"),
        ("GPU-1,10,7680,100,P4,0,yes:", "yes", "not a boolean"),
        ("GPU-1,10,7680,100,P4,0,true,-1,hami-core:", "GPU-1,10", "index -1 is negative"),
        ("GPU-1,10,7680,100,P4,0,true,one,hami-core:", "GPU-1,10", "index 'one' is not an integer"),
        ("GPU-1,1_0,7680,100,P4,0,true:", "GPU-1", "count '1_0' is not an integer"),
    ],
)
def test_legacy_malformed(value: str, piece: str, why: str) -> None:
    expect_error(decode_node_devices, value, R, piece, why)


# ------------------------------------------------------------------------------------------------
# §2.5 pod device lists

ALLOC = keys.NVIDIA_ALLOCATED


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"{UUID_B},NVIDIA,3000,30:;", ((dev(UUID_B, 3000, 30),),)),
        (
            f"{UUID_B},NVIDIA,3000,0:;{UUID_B},NVIDIA,5000,0:;",
            ((dev(UUID_B, 3000, 0),), (dev(UUID_B, 5000, 0),)),
        ),
        (
            f"{UUID_8D},NVIDIA,500,3:{UUID_P4},NVIDIA,500,3:;",
            ((dev(UUID_8D, 500, 3), dev(UUID_P4, 500, 3)),),
        ),
        (f";{UUID_B},NVIDIA,1000,30:;", ((), (dev(UUID_B, 1000, 30),))),
        # AMD / Metax-SGPU put the registered product type in the TYPE field.
        (
            "GPU-amd,AMD Instinct MI300X,8192,20:;",
            ((dev("GPU-amd", 8192, 20, "AMD Instinct MI300X"),),),
        ),
    ],
)
def test_pod_devices_golden(value: str, expected: tuple[tuple[ContainerDevice, ...], ...]) -> None:
    assert decode_pod_devices(value) == expected
    assert encode_pod_devices(expected) == value


def test_worked_example_pod_devices() -> None:
    value = "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448,NVIDIA,3000,30:;"
    assert decode_pod_devices(value, key=keys.NVIDIA_TO_ALLOCATE) == ((dev(UUID_B, 3000, 30),),)


def test_pod_devices_empty_value_is_no_containers() -> None:
    assert decode_pod_devices("") == ()
    assert encode_pod_devices([]) == ""


def test_pod_devices_trailing_semicolon_does_not_add_a_container() -> None:
    assert len(decode_pod_devices("A,NVIDIA,1,2:;")) == 1
    assert len(decode_pod_devices(";")) == 1
    assert decode_pod_devices(";") == ((),)
    assert encode_pod_devices([()]) == ";"
    # Without the final ';' the last entry still counts once.
    assert decode_pod_devices("A,NVIDIA,1,2:") == ((dev("A", 1, 2),),)


@pytest.mark.parametrize(
    ("value", "containers"),
    [(";;", 2), (";B:;;", 3), ("A:;B:;", 2), (";;;;", 4), (";;;", 3)],
)
def test_device_plugin_growing_strings_decode_to_empty_entries(value: str, containers: int) -> None:
    # HAMi parses only the pieces containing a comma; `B` alone is skipped (§2.5, §9.15).
    assert decode_pod_devices(value) == ((),) * containers


def test_device_plugin_rewrite_sequence() -> None:
    a, b = dev("GPU-a", 1000, 10), dev("GPU-b", 2000, 20)
    first = "GPU-a,NVIDIA,1000,10:;GPU-b,NVIDIA,2000,20:;"
    assert decode_pod_devices(first) == ((a,), (b,))
    second = ";GPU-b,NVIDIA,2000,20:;;"
    assert decode_pod_devices(second) == ((), (b,), ())
    assert encode_pod_devices(decode_pod_devices(second)) == second
    assert decode_pod_devices(";;;;") == ((), (), (), ())


def test_pod_devices_extra_fields_are_ignored_and_empty_pieces_skipped() -> None:
    assert decode_pod_devices("GPU-1,NVIDIA,1000,30,extra,more:;") == ((dev("GPU-1", 1000, 30),),)
    assert decode_pod_devices("GPU-1,NVIDIA,1,2::GPU-2,NVIDIA,3,4:;") == (
        (dev("GPU-1", 1, 2), dev("GPU-2", 3, 4)),
    )


def test_pod_devices_int32_bounds() -> None:
    value = "GPU-1,NVIDIA,2147483647,-2147483648:;"
    assert decode_pod_devices(value) == ((dev("GPU-1", 2**31 - 1, -(2**31)),),)
    assert encode_pod_devices(decode_pod_devices(value)) == value


@pytest.mark.parametrize(
    ("value", "piece", "why"),
    [
        ("uuid,type,100:;", "uuid,type,100", "a device needs 4 comma-separated fields, got 3"),
        ("uuid,type:;", "uuid,type", "got 2"),
        ("GPU-1,NVIDIA,abc,30:;", "GPU-1,NVIDIA,abc,30", "memory 'abc' is not an integer"),
        ("GPU-1,NVIDIA,1000,3x:;", "GPU-1,NVIDIA,1000,3x", "cores '3x' is not an integer"),
        ("GPU-1,NVIDIA,,30:;", "GPU-1,NVIDIA,,30", "memory '' is not an integer"),
        ("GPU-1,NVIDIA,1.5,30:;", "GPU-1,NVIDIA,1.5,30", "memory '1.5' is not an integer"),
        ("GPU-1,NVIDIA,1_000,30:;", "GPU-1,NVIDIA,1_000,30", "memory '1_000' is not an integer"),
        ("GPU-1,NVIDIA,\u0661,30:;", "GPU-1,NVIDIA,\u0661,30", "is not an integer"),
        (
            "GPU-1,NVIDIA,2147483648,30:;",
            "GPU-1,NVIDIA,2147483648,30",
            "memory 2147483648 does not fit in int32",
        ),
        (
            "GPU-1,NVIDIA,1,-2147483649:;",
            "GPU-1,NVIDIA,1,-2147483649",
            "cores -2147483649 does not fit in int32",
        ),
        # A bad device in a later container is still found.
        ("GPU-1,NVIDIA,1,2:;;GPU-2,NVIDIA,x,2:;", "GPU-2,NVIDIA,x,2", "memory 'x'"),
    ],
)
def test_pod_devices_malformed(value: str, piece: str, why: str) -> None:
    expect_error(decode_pod_devices, value, ALLOC, piece, why)


def test_pod_devices_error_names_the_to_allocate_key() -> None:
    expect_error(
        lambda v: decode_pod_devices(v, key=keys.NVIDIA_TO_ALLOCATE),
        "uuid,type,100:;",
        "hami.io/vgpu-devices-to-allocate",
        "uuid,type,100",
        "fields",
    )


def test_vendor_device_list_keys() -> None:
    assert to_allocate_key("vgpu") == keys.NVIDIA_TO_ALLOCATE
    assert allocated_key("vgpu") == keys.NVIDIA_ALLOCATED
    assert to_allocate_key("dcu") == "hami.io/dcu-devices-to-allocate"
    assert allocated_key("Biren") == "hami.io/Biren-devices-allocated"


# ------------------------------------------------------------------------------------------------
# §2.2 / §3.13 / §10 node lock

LOCK = keys.NODE_LOCK


def test_node_lock_golden_utc() -> None:
    value = "2026-08-21T06:20:39Z,default,gpu-pod"
    lock = decode_node_lock(value)
    assert lock == NodeLock(
        time=datetime(2026, 8, 21, 6, 20, 39, tzinfo=UTC), namespace="default", name="gpu-pod"
    )
    assert lock.time.utcoffset() == timedelta(0)
    assert encode_node_lock(lock) == value


def test_node_lock_worked_example() -> None:
    value = "2026-08-21T06:20:40Z,default,gpu-pod"
    assert encode_node_lock(decode_node_lock(value)) == value


def test_node_lock_golden_offset() -> None:
    value = "2026-08-21T14:20:39+08:00,default,gpu-pod"
    lock = decode_node_lock(value)
    assert lock.time == datetime(2026, 8, 21, 6, 20, 39, tzinfo=UTC)
    assert lock.time.utcoffset() == timedelta(hours=8)
    assert (lock.namespace, lock.name) == ("default", "gpu-pod")
    assert encode_node_lock(lock) == value
    minus = "2026-08-21T01:50:39-04:30,kube-system,p"
    assert encode_node_lock(decode_node_lock(minus)) == minus


def test_node_lock_legacy_bare_time() -> None:
    lock = decode_node_lock("2026-08-21T06:20:39Z")
    assert lock == NodeLock(time=datetime(2026, 8, 21, 6, 20, 39, tzinfo=UTC))
    assert lock.namespace is None and lock.name is None
    assert encode_node_lock(lock) == "2026-08-21T06:20:39Z"
    offset = decode_node_lock("2026-08-21T14:20:39+08:00")
    assert encode_node_lock(offset) == "2026-08-21T14:20:39+08:00"


def test_node_lock_encodes_at_second_precision() -> None:
    moment = datetime(2026, 8, 21, 6, 20, 39, 987654, tzinfo=timezone(timedelta(hours=8)))
    assert encode_node_lock(NodeLock(moment, "ns", "p")) == "2026-08-21T06:20:39+08:00,ns,p"
    # RFC3339 with fractional seconds is still read.
    assert decode_node_lock("2026-08-21T06:20:39.5Z,ns,p").time.microsecond == 500000


def test_node_lock_rejects_naive_time_on_encode() -> None:
    with pytest.raises(ValueError):
        encode_node_lock(NodeLock(datetime(2026, 8, 21, 6, 20, 39), "ns", "p"))


@pytest.mark.parametrize(
    ("value", "piece", "why"),
    [
        ("2026-08-21T06:20:39,default,gpu-pod", "2026-08-21T06:20:39", "needs a zone offset or Z"),
        ("2026-08-21T06:20:39", "2026-08-21T06:20:39", "needs a zone offset or Z"),
        ("yesterday,default,gpu-pod", "yesterday", "not an RFC3339 time"),
        ("", "", "not an RFC3339 time"),
        ("2026-08-21T06:20:39Z,default", "2026-08-21T06:20:39Z,default", "expected '<RFC3339>"),
        ("2026-08-21T06:20:39Z,a,b,c", "2026-08-21T06:20:39Z,a,b,c", "expected '<RFC3339>"),
        ("2026-08-21T06:20:39Z,,gpu-pod", "2026-08-21T06:20:39Z,,gpu-pod", "must be non-empty"),
        ("2026-08-21T06:20:39Z,default,", "2026-08-21T06:20:39Z,default,", "must be non-empty"),
    ],
)
def test_node_lock_malformed(value: str, piece: str, why: str) -> None:
    expect_error(decode_node_lock, value, LOCK, piece, why)


# ------------------------------------------------------------------------------------------------
# §2.7 handshake


def test_handshake_requesting_golden() -> None:
    value = "Requesting_2026-08-21 06:20:39"
    moment = datetime(2026, 8, 21, 6, 20, 39, tzinfo=UTC)
    assert decode_handshake(value) == Handshake(state=keys.HANDSHAKE_REQUESTING, time=moment)
    assert encode_handshake_requesting(moment) == value
    # Parsed in the scheduler's local zone.
    cst = timezone(timedelta(hours=8))
    local = decode_handshake(value, zone=cst)
    assert local.time == datetime(2026, 8, 21, 6, 20, 39, tzinfo=cst)


def test_handshake_deleted_golden() -> None:
    value = "Deleted_2026-08-21 06:20:39"
    moment = datetime(2026, 8, 21, 6, 20, 39, tzinfo=UTC)
    assert decode_handshake(value) == Handshake(state=keys.HANDSHAKE_DELETED, time=moment)
    assert encode_handshake_deleted(moment) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "Reported 2024-01-23 04:30:04.434037031 +0000 UTC m=+1104711.777756895",
            Handshake(state="Reported"),
        ),
        ("Requesting", Handshake(state="Requesting")),  # no '_' → healthy, no time
        ("Requesting_garbage", Handshake(state="Requesting")),
        ("Requesting_2026-08-21T06:20:39Z", Handshake(state="Requesting")),
        ("", Handshake(state="")),
        ("something else", Handshake(state="")),
    ],
)
def test_handshake_tolerance(value: str, expected: Handshake) -> None:
    assert decode_handshake(value) == expected


def test_handshake_requesting_anywhere_in_value() -> None:
    # HAMi checks `strings.Contains(value, "Requesting")` and parses after the first '_'.
    decoded = decode_handshake("xRequesting_2026-08-21 06:20:39")
    assert decoded.state == "Requesting"
    assert decoded.time == datetime(2026, 8, 21, 6, 20, 39, tzinfo=UTC)


# ------------------------------------------------------------------------------------------------
# §2.1 device scoring weights

W = keys.DEVICE_SCORING_WEIGHTS


def test_scoring_weights_golden() -> None:
    weights = decode_scoring_weights("slot=1,core=1,memory=3")
    assert weights == ScoringWeights(slot=1, core=1, memory=3)
    assert encode_scoring_weights(weights) == "slot=1,core=1,memory=3"


@pytest.mark.parametrize(
    "value",
    ["memory=3,slot=1,core=1", "core=1,memory=3,slot=1", " slot=1 , core=1 , memory=3 "],
)
def test_scoring_weights_any_order(value: str) -> None:
    assert decode_scoring_weights(value) == ScoringWeights(1, 1, 3)


def test_scoring_weights_absent_and_zeros() -> None:
    assert decode_scoring_weights(None) == ScoringWeights(1, 1, 1)
    assert decode_scoring_weights("slot=0,core=0,memory=1") == ScoringWeights(0, 0, 1)


@pytest.mark.parametrize(
    ("value", "piece", "why"),
    [
        ("slot=1,core=-1,memory=3", "core=-1", '"core" weight must not be negative'),
        ("slot=1,slot=2,memory=3", "slot=2", '"slot" weight given twice'),
        ("slot=1,core=1", "slot=1,core=1", "expected exactly slot=N,core=N,memory=N"),
        ("slot=1,core=1,memory=1,slot=1", "slot=1,core=1,memory=1,slot=1", "expected exactly"),
        ("", "", "expected exactly"),
        ("slot=1,core=1,gpu=1", "gpu=1", "items must be slot=N, core=N or memory=N"),
        ("slot=1,core=1,memory", "memory", "items must be"),
        ("slot=1,core=x,memory=1", "core=x", "\"core\" weight 'x' is not an integer"),
        ("slot=1,core=,memory=1", "core=", "is not an integer"),
        ("slot=1,core=1,memory=2147483648", "memory=2147483648", "does not fit in int32"),
        (
            "slot=0,core=0,memory=0",
            "slot=0,core=0,memory=0",
            "at least one weight must be positive",
        ),
    ],
)
def test_scoring_weights_malformed(value: str, piece: str, why: str) -> None:
    expect_error(decode_scoring_weights, value, W, piece, why)


# ------------------------------------------------------------------------------------------------
# §2.8 MIG allocations

MIG = keys.MIG_ALLOCATIONS
MIG_REALISED = (
    '[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"GPU-xxxxxxxx","profile":"2g.10gb",'
    '"placement":{"start":2,"size":2},"migUUID":"MIG-xxxxxxxx","gpuInstanceID":4,'
    '"computeInstanceID":0}]'
)
MIG_RESERVED = (
    '[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"GPU-xxxxxxxx","profile":"2g.10gb",'
    '"placement":{"start":2,"size":2}}]'
)


def test_mig_allocation_realised_golden() -> None:
    allocations = decode_mig_allocations(MIG_REALISED)
    assert allocations == (
        MigAllocation(
            container_index=0,
            device_index=0,
            gpu_uuid="GPU-xxxxxxxx",
            profile="2g.10gb",
            placement=MigPlacement(start=2, size=2),
            mig_uuid="MIG-xxxxxxxx",
            gpu_instance_id=4,
            compute_instance_id=0,
        ),
    )
    assert encode_mig_allocations(allocations) == MIG_REALISED


def test_mig_allocation_reservation_golden() -> None:
    allocations = decode_mig_allocations(MIG_RESERVED)
    assert allocations == (MigAllocation(0, 0, "GPU-xxxxxxxx", "2g.10gb", MigPlacement(2, 2)),)
    assert allocations[0].mig_uuid is None and allocations[0].gpu_instance_id is None
    assert encode_mig_allocations(allocations) == MIG_RESERVED
    assert decode_mig_allocations("[]") == ()
    assert encode_mig_allocations([]) == "[]"


def test_mig_allocation_tolerance() -> None:
    text = (
        '[{"Placement":{"SIZE":1,"Start":6},"PROFILE":"1g.5gb","GPUUUID":"GPU-y",'
        '"DeviceIndex":1,"ContainerIndex":2},'
        '{"gpuUUID":"GPU-y","profile":"1g.5gb","placement":{"size":1}}]'
    )
    assert decode_mig_allocations(text) == (
        MigAllocation(2, 1, "GPU-y", "1g.5gb", MigPlacement(6, 1)),
        MigAllocation(0, 0, "GPU-y", "1g.5gb", MigPlacement(0, 1)),
    )


def _mig(extra: str = "", ci: int = 0, di: int = 0, size: int = 2) -> str:
    return (
        f'{{"containerIndex":{ci},"deviceIndex":{di},"gpuUUID":"GPU-x","profile":"2g.10gb",'
        f'"placement":{{"start":0,"size":{size}}}{extra}}}'
    )


@pytest.mark.parametrize(
    ("value", "piece", "why"),
    [
        ("[", "[", "not valid JSON"),
        ('{"containerIndex":0}', '{"containerIndex":0}', "expected a JSON array"),
        ("null", "null", "expected a JSON array"),
        ("[7]", "entry #0", "expected a JSON object"),
        (
            "[" + _mig(',"migUUID":"MIG-1"') + "]",
            "entry #0",
            "migUUID, gpuInstanceID and computeInstanceID must be all set or all absent",
        ),
        (
            "[" + _mig(',"gpuInstanceID":1,"computeInstanceID":0') + "]",
            "entry #0",
            "all set or all absent",
        ),
        (
            "[" + _mig(',"migUUID":"MIG-1","gpuInstanceID":1') + "]",
            "entry #0",
            "all set or all absent",
        ),
        (
            "[" + _mig() + "," + _mig(ci=1) + "," + _mig() + "]",
            "entry #2",
            "duplicate (containerIndex, deviceIndex) (0, 0)",
        ),
        ("[" + _mig(size=0) + "]", "entry #0", "placement.size must not be 0"),
        ('[{"gpuUUID":"GPU-x","profile":"2g.10gb"}]', "entry #0", "placement.size must not be 0"),
        ("[" + _mig(ci=-1) + "]", "entry #0", "indexes must be non-negative"),
        ("[" + _mig(di=-3) + "]", "entry #0", "indexes must be non-negative"),
        ('[{"profile":"2g.10gb","placement":{"size":1}}]', "entry #0", "gpuUUID and profile"),
        ('[{"gpuUUID":"GPU-x","placement":{"size":1}}]', "entry #0", "must be non-empty"),
        (
            '[{"gpuUUID":1,"profile":"p","placement":{"size":1}}]',
            "entry #0",
            "gpuuuid 1 is not a string",
        ),
        (
            '[{"gpuUUID":"g","profile":"p","placement":{"size":"2"},"containerIndex":"a"}]',
            "entry #0",
            "containerIndex 'a' is not an integer",
        ),
        ('[{"gpuUUID":"g","profile":"p","placement":[1]}]', "entry #0", "expected a JSON object"),
        (
            '[{"gpuUUID":"g","profile":"p","placement":{"size":4294967296}}]',
            "entry #0",
            "placement.size 4294967296 does not fit in int32",
        ),
    ],
)
def test_mig_allocations_malformed(value: str, piece: str, why: str) -> None:
    expect_error(decode_mig_allocations, value, MIG, piece, why)


# ------------------------------------------------------------------------------------------------
# §2.3 / §3.9 pair scores

SCORE = keys.NVIDIA_SCORE
PAIR_EXAMPLE = '[{"uuid":"GPU-a","score":{"GPU-b":200,"GPU-c":20}}]'


def test_pair_scores_golden() -> None:
    pairs = decode_pair_scores(PAIR_EXAMPLE)
    assert pairs == (PairScores(uuid="GPU-a", scores={"GPU-b": 200, "GPU-c": 20}),)
    assert encode_pair_scores(pairs) == PAIR_EXAMPLE


def test_pair_scores_encode_sorts_map_keys_like_go() -> None:
    pairs = [PairScores("GPU-a", {"GPU-c": 20, "GPU-b": 200})]
    assert encode_pair_scores(pairs) == PAIR_EXAMPLE


def test_pair_scores_tolerance() -> None:
    text = (
        '[{"SCORE":{"GPU-b":1800},"UUID":"GPU-a"},{"uuid":"GPU-b"},{"uuid":"GPU-c","score":null}]'
    )
    assert decode_pair_scores(text) == (
        PairScores("GPU-a", {"GPU-b": 1800}),
        PairScores("GPU-b", {}),
        PairScores("GPU-c", {}),
    )
    assert decode_pair_scores("[]") == ()


@pytest.mark.parametrize(
    ("value", "piece", "why"),
    [
        ("[{", "[{", "not valid JSON"),
        ('{"uuid":"GPU-a"}', '{"uuid":"GPU-a"}', "expected a JSON array"),
        ('["GPU-a"]', "entry #0", "expected a JSON object"),
        ('[{"score":{}}]', "entry #0", "uuid must be non-empty"),
        ('[{"uuid":"GPU-a","score":[1]}]', "GPU-a", "score must be a JSON object"),
        (
            '[{"uuid":"GPU-a","score":{"GPU-b":"high"}}]',
            "GPU-a",
            "score of GPU-b 'high' is not an integer",
        ),
        ('[{"uuid":"GPU-a","score":{"GPU-b":2.5}}]', "GPU-a", "is not an integer"),
    ],
)
def test_pair_scores_malformed(value: str, piece: str, why: str) -> None:
    expect_error(decode_pair_scores, value, SCORE, piece, why)


# ------------------------------------------------------------------------------------------------
# small helpers: comma lists, Go bools, unix seconds


def test_comma_lists() -> None:
    cordon = "GPU-03f69c50-207a-2038-9b45-23cac89cb67d, GPU-b ,,"
    assert decode_comma_list(cordon) == ("GPU-03f69c50-207a-2038-9b45-23cac89cb67d", "GPU-b")
    assert decode_comma_list("A100,V100") == ("A100", "V100")
    assert decode_comma_list("  ") == ()
    assert decode_comma_list(None) == ()
    assert encode_comma_list(["A100", "V100"]) == "A100,V100"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[(text, True) for text in ("true", "1", "t", "TRUE", "True", "T")],
        *[(text, False) for text in ("false", "0", "f", "FALSE", "False", "F")],
    ],
)
def test_go_bool(value: str, expected: bool) -> None:
    assert parse_go_bool(keys.NUMA_BIND, value) is expected


@pytest.mark.parametrize("value", ["yes", "tRUE", "", "2"])
def test_go_bool_malformed(value: str) -> None:
    expect_error(
        lambda v: parse_go_bool(keys.NUMA_BIND, v), value, keys.NUMA_BIND, value, "not a boolean"
    )


def test_unix_seconds() -> None:
    assert unix_seconds(datetime(2025, 8, 21, 6, 20, 39, tzinfo=UTC)) == "1755757239"
