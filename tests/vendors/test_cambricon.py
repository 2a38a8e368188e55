"""Cambricon MLU (wire-format.md §4.4): capacity inventory, 256 MiB units, profile annotation."""

from __future__ import annotations

from hami.api import keys
from hami.api.types import ContainerDevice
from hami.core.model import EMPTY_USAGE, ContainerRequest
from hami.core.status import Reason, Unfit
from hami.core.vendor import Candidate, FitContext, Pick, QuotaRoom
from hami.vendors.cambricon import CambriconVendor
from tests.vendors.helpers import container, fit

V = CambriconVendor()
CAPACITY = {"cambricon.com/mlu.smlu.vcore": "200", "cambricon.com/mlu.smlu.vmemory": "128"}


def test_capacity_devices() -> None:
    devices = V.capacity_devices("n1", CAPACITY, {}, {})
    assert [(d.uuid, d.vendor, d.type, d.count, d.memory, d.cores, d.index) for d in devices] == [
        ("n1-cambricon-mlu-0", "MLU", "MLU", 100, 16384, 100, 0),
        ("n1-cambricon-mlu-1", "MLU", "MLU", 100, 16384, 100, 1),
    ]
    assert V.capacity_devices("n1", {}, {}, {}) == ()
    assert V.node_devices({}) == ()


def test_requests_in_256_mib_units() -> None:
    req = V.parse_container(
        container(cambricon_com__vmlu=1, **{"cambricon_com__mlu.smlu.vmemory": 8}), "c"
    )
    assert req == ContainerRequest(vendor="MLU", nums=1, memreq=2048, mem_pct=0, coresreq=100)
    bare = V.parse_container(container(cambricon_com__vmlu=1), "c")
    assert bare == ContainerRequest(vendor="MLU", nums=1, memreq=0, mem_pct=100, coresreq=100)
    assert V.admit_container(container(cambricon_com__vmlu=1), "c").uses_vendor


def test_fit_with_uuid_filter_and_quota() -> None:
    devices = V.capacity_devices("n1", CAPACITY, {}, {})
    req = ContainerRequest(vendor="MLU", nums=1, memreq=2048, mem_pct=0, coresreq=50)
    picks = fit(V, devices, req, annotations={keys.CAMBRICON_NOUSE_UUID: "n1-cambricon-mlu-0"})
    assert isinstance(picks, tuple)
    assert picks[0].device == ContainerDevice("n1-cambricon-mlu-1", "MLU", 2048, 50)
    ctx = FitContext(quota_room=QuotaRoom(memory=1024))
    unfit = V.fit([Candidate(0, devices[0], EMPTY_USAGE)], req, ctx)
    assert isinstance(unfit, Unfit)
    assert unfit.counts == {Reason.RESOURCE_QUOTA_NOT_FIT: 1}


def test_pod_annotations_profile_from_first_device() -> None:
    dev = ContainerDevice("n1-cambricon-mlu-1", "MLU", 2048, 50)
    notes = V.pod_annotations(((), (dev,)), [[], [Pick(1, dev, index=1)]])
    assert notes == {
        "hami.io/cambricon-mlu-devices-to-allocate": ";n1-cambricon-mlu-1,MLU,2048,50:;",
        "hami.io/cambricon-mlu-devices-allocated": ";n1-cambricon-mlu-1,MLU,2048,50:;",
        "CAMBRICON_DSMLU_ASSIGNED": "false",
        "CAMBRICON_DSMLU_PROFILE": "1_50_8",
    }
