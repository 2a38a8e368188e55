"""Codecs of the non-NVIDIA vendors (wire-format.md §2.6, §2.9)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hami.api import annotations as codec
from hami.api.errors import WireFormatError
from hami.api.types import DeviceInfo

KEY = "huawei.com/Ascend910B2"


def test_ascend_runtime_golden_values() -> None:
    items = [codec.AscendRuntime(uuid="npu-0", temp="vir06_1c_16g", memory=16384)]
    text = '[{"UUID":"npu-0","temp":"vir06_1c_16g","memory":16384}]'
    assert codec.encode_ascend_runtime(items) == text
    assert codec.decode_ascend_runtime(text, KEY) == tuple(items)
    soft = [codec.AscendRuntime(uuid="npu-1", memory=3000, core=30)]
    assert codec.encode_ascend_runtime(soft) == '[{"UUID":"npu-1","memory":3000,"core":30}]'


@given(
    st.lists(
        st.builds(
            codec.AscendRuntime,
            uuid=st.text(min_size=1, max_size=8),
            temp=st.text(max_size=8),
            memory=st.integers(0, 2**40),
            core=st.integers(0, 100),
        ),
        max_size=4,
    )
)
def test_ascend_runtime_round_trip(items: list[codec.AscendRuntime]) -> None:
    assert codec.decode_ascend_runtime(codec.encode_ascend_runtime(items), KEY) == tuple(items)


@pytest.mark.parametrize("bad", ["{", "{}", "[1]", '[{"UUID":1}]', '[{"UUID":"a","memory":"x"}]'])
def test_ascend_runtime_errors_name_the_key(bad: str) -> None:
    with pytest.raises(WireFormatError, match=KEY):
        codec.decode_ascend_runtime(bad, KEY)


def test_ascend_network_id_from_custominfo() -> None:
    (info,) = codec.decode_node_devices(
        '[{"id":"npu-0","type":"Ascend910B2","custominfo":{"NetworkID":3}}]',
        "hami.io/node-register-Ascend910B2",
    )
    assert codec.custom_int(info, "NetworkID") == 3
    assert codec.custom_int(info, "Other") is None
    assert codec.custom_int(DeviceInfo("x", 0, 0, 0, "", custominfo={"N": "12"}), "N") == 12
    assert codec.custom_int(DeviceInfo("x", 0, 0, 0, "", custominfo={"N": 2.0}), "N") == 2
    with pytest.raises(WireFormatError, match="N"):
        codec.custom_int(DeviceInfo("x", 0, 0, 0, "", custominfo={"N": "a"}), "N")


def test_hygon_comma_registration_round_trip() -> None:
    value = "DCU-0,4,16368,100,DCU-Z100L,0,true,0,hami-core:"
    devices = codec.decode_node_devices(value, "hami.io/node-dcu-register")
    assert codec.encode_legacy_node_devices(devices) == value


def test_unix_nanos() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert codec.unix_nanos(moment) == "1767323045000006000"


# --- Enflame DRS (§4.10) ---------------------------------------------------------------------------


def test_drs_capacity_golden_value() -> None:
    value = (
        '{"devices":[{"index":"0","minor":"0","capacity":6},{"index":"1","minor":"","capacity":"6"}],'
        '"profiles":{"6g.40gb":"2","1g.6gb":"0","3g.20gb":"1"}}'
    )
    decoded = codec.decode_drs_capacity(value)
    assert decoded.devices == (codec.DrsDevice(0, "0", 6), codec.DrsDevice(1, "1", 6))
    assert decoded.profiles == (
        codec.DrsProfile("1g.6gb", "0", 1, 6),
        codec.DrsProfile("3g.20gb", "1", 3, 20),
        codec.DrsProfile("6g.40gb", "2", 6, 40),
    )


def test_drs_capacity_errors_name_the_key_and_field() -> None:
    with pytest.raises(WireFormatError, match=r"enflame.com/gcu-drs-capacity: 'devices\[0\]"):
        codec.decode_drs_capacity('{"devices":[{"capacity":-1}],"profiles":{"1g.6gb":"0"}}')


def test_drs_assignments_golden_value() -> None:
    assigned = {"worker": codec.DrsAssignment(request=2, profile_id="3", profile_name="2g.16gb")}
    assert codec.encode_drs_assignments(assigned) == (
        '{"worker":{"allocated":false,"request":2,"profileID":"3","profileName":"2g.16gb"}}'
    )


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.builds(
            codec.DrsAssignment,
            request=st.integers(1, 64),
            profile_id=st.text(max_size=3),
            profile_name=st.text(max_size=8),
        ),
        max_size=4,
    )
)
def test_drs_assignments_are_json_sorted_by_container(
    assigned: dict[str, codec.DrsAssignment],
) -> None:
    value = codec.encode_drs_assignments(assigned)
    decoded = json.loads(value)
    assert list(decoded) == sorted(assigned)
    for name, item in assigned.items():
        entry = decoded[name]
        assert entry["allocated"] is False and entry["request"] == item.request
        assert entry.get("profileID", "") == item.profile_id
        assert entry.get("profileName", "") == item.profile_name
