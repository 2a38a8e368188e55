"""Codec golden, tolerance and malformed-input tests — node registration values, JSON and legacy comma forms (wire-format.md §2.6, §5.7, §10)."""

from __future__ import annotations

import pytest

from hami.api import keys
from hami.api.annotations import (
    decode_legacy_node_devices,
    decode_node_devices,
    encode_legacy_node_devices,
    encode_node_devices,
    go_json,
)
from hami.api.types import (
    DeviceInfo,
    MigPlacement,
    MigProfile,
)
from tests.api.codec_helpers import UUID_A, UUID_B, UUID_P4, V100, expect_error

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
