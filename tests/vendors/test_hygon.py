"""Hygon DCU (wire-format.md §4.5): comma registration, requests, fit filters, annotations."""

from __future__ import annotations

import pytest

from hami.api import keys
from hami.api.errors import WireFormatError
from hami.api.types import ContainerDevice
from hami.core.errors import RequestInvalid
from hami.core.model import ContainerRequest, DeviceUsage
from hami.core.status import Reason, Unfit
from hami.core.vendor import Pick
from hami.vendors.config import HygonConfig
from hami.vendors.hygon import HygonVendor
from tests.vendors.helpers import container, fit

REGISTER = (
    "DCU-0,4,16368,100,DCU-Z100L,0,true,0,hami-core:DCU-1,4,16368,100,DCU-Z100L,1,true,1,hami-core:"
)
V = HygonVendor()


def test_node_devices_from_comma_registration() -> None:
    devices = V.node_devices({keys.HYGON_REGISTER: REGISTER})
    assert [(d.uuid, d.vendor, d.index, d.memory, d.count, d.numa) for d in devices] == [
        ("DCU-0", "DCU", 0, 16368, 4, 0),
        ("DCU-1", "DCU", 1, 16368, 4, 1),
    ]
    assert V.node_devices({}) == ()


def test_bad_registration_names_the_key() -> None:
    with pytest.raises(WireFormatError, match=keys.HYGON_REGISTER):
        V.node_devices({keys.HYGON_REGISTER: "DCU-0,4,x,100,DCU,0,true:"})


def test_request_defaults_whole_memory_and_all_cores() -> None:
    req = V.parse_container(container(hygon_com__dcunum=1), "c")
    assert req == ContainerRequest(vendor="DCU", nums=1, memreq=0, mem_pct=100, coresreq=100)


def test_request_memory_times_factor_and_cores() -> None:
    vendor = HygonVendor(HygonConfig(memory_factor=2))
    req = vendor.parse_container(
        container(hygon_com__dcunum=2, hygon_com__dcumem=1000, hygon_com__dcucores=30), "c"
    )
    assert req == ContainerRequest(vendor="DCU", nums=2, memreq=2000, mem_pct=0, coresreq=30)
    assert V.parse_container(container(nvidia_com__gpu=1), "c") is None


def test_request_limits_are_enforced() -> None:
    with pytest.raises(RequestInvalid, match=r"hygon\.com/dcucores"):
        V.parse_container(container(hygon_com__dcunum=1, hygon_com__dcucores=101), "c")
    with pytest.raises(RequestInvalid, match="too large"):
        V.parse_container(container(hygon_com__dcunum=1, hygon_com__dcumem=2**31), "c")


def test_admission_uses_vendor_only_with_count_in_limits() -> None:
    assert V.admit_container(container(hygon_com__dcunum=1), "c").uses_vendor
    assert not V.admit_container(container(hygon_com__dcumem=1), "c").uses_vendor
    with pytest.raises(RequestInvalid):
        V.admit_container(container(hygon_com__dcunum="x"), "c")


def test_fit_honours_hygon_uuid_and_type_filters() -> None:
    devices = V.node_devices({keys.HYGON_REGISTER: REGISTER})
    req = ContainerRequest(vendor="DCU", nums=1, memreq=1000, mem_pct=0, coresreq=10)
    picks = fit(V, devices, req, annotations={keys.HYGON_USE_UUID: "DCU-1"})
    assert isinstance(picks, tuple)
    assert [p.device for p in picks] == [ContainerDevice("DCU-1", "DCU", 1000, 10)]
    assert picks[0].index == 1
    unfit = fit(V, devices, req, annotations={keys.HYGON_NOUSE_TYPE: "z100"})
    assert isinstance(unfit, Unfit)
    assert unfit.counts == {Reason.CARD_TYPE_MISMATCH: 2}


def test_fit_counts_memory_shortage() -> None:
    devices = V.node_devices({keys.HYGON_REGISTER: REGISTER})
    req = ContainerRequest(vendor="DCU", nums=1, memreq=10000, mem_pct=0, coresreq=0)
    busy = [DeviceUsage(used=1, usedmem=8000), DeviceUsage(used=1, usedmem=8000)]
    unfit = fit(V, devices, req, usage=busy)
    assert isinstance(unfit, Unfit)
    assert unfit.counts == {Reason.CARD_INSUFFICIENT_MEMORY: 2}


def test_pod_annotations_byte_for_byte() -> None:
    dev = ContainerDevice("DCU-0", "DCU", 3000, 30)
    notes = V.pod_annotations(((), (dev,)), [[], [Pick(0, dev)]])
    assert notes == {
        "hami.io/dcu-devices-to-allocate": ";DCU-0,DCU,3000,30:;",
        "hami.io/dcu-devices-allocated": ";DCU-0,DCU,3000,30:;",
    }
    assert V.allocated_devices(notes) == ((), (dev,))
    assert V.allocated_devices({}) is None
