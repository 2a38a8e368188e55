"""AMD (wire-format.md §4.13): memory plus a percentage of compute units."""

from __future__ import annotations

import json

import pytest

from hami.api import keys
from hami.api.types import ContainerDevice
from hami.core.cluster import ClusterView, NodeState
from hami.core.decide import decide
from hami.core.errors import RequestInvalid
from hami.core.model import ContainerRequest, DeviceUsage, Node, PodRequest
from hami.core.status import Reason, Unfit
from hami.vendors.amd import AmdDevice, AmdVendor, compute_units
from tests.vendors.helpers import container, fit

V = AmdVendor()
REGISTER = json.dumps(
    [
        {
            "id": f"amd-{i}",
            "index": i,
            "count": 4,
            "devmem": 196608,
            "devcore": 60,
            "type": "AMD-MI300X",
            "health": True,
        }
        for i in range(2)
    ]
)


def test_requests_and_admission() -> None:
    req = V.parse_container(container(amd_com__gpumem=8192, amd_com__gpucores=50), "c")
    assert req == ContainerRequest("AMD", 1, memreq=8192, mem_pct=0, coresreq=50)
    bare = V.parse_container(container(amd_com__gpu=2), "c")
    assert bare == ContainerRequest("AMD", 2, memreq=0, mem_pct=100, coresreq=100)
    assert V.admit_container(container(amd_com__gpucores=10), "c").uses_vendor
    with pytest.raises(RequestInvalid, match="between 1 and 100"):
        V.admit_container(container(amd_com__gpu=1, amd_com__gpucores=0), "c")
    only_requests = {"name": "c", "resources": {"requests": {"amd.com/gpu": 1}}}
    assert V.parse_container(only_requests, "c") is None


def test_compute_units() -> None:
    assert compute_units(60, 50) == 30
    assert compute_units(60, 1) == 1
    assert compute_units(60, 100) == 60


def test_fit_takes_a_share_of_cus_and_writes_the_product_type() -> None:
    devices = V.node_devices({keys.AMD_REGISTER: REGISTER})
    assert all(isinstance(d, AmdDevice) for d in devices)
    req = ContainerRequest("AMD", 1, memreq=8192, mem_pct=0, coresreq=50)
    busy = [DeviceUsage(used=1, usedmem=8192, usedcores=40), DeviceUsage()]
    picks = fit(V, devices, req, usage=busy)
    assert isinstance(picks, tuple)
    assert picks[0].device == ContainerDevice("amd-1", "AMD-MI300X", 8192, 30)
    unfit = fit(V, devices, req, usage=[busy[0], busy[0]], annotations={keys.AMD_NOUSE_UUID: "zz"})
    assert isinstance(unfit, Unfit) and unfit.counts == {Reason.CARD_INSUFFICIENT_CORE: 2}
    unfit = fit(V, devices, req, annotations={keys.AMD_USE_TYPE: "MI250"})
    assert isinstance(unfit, Unfit) and unfit.counts == {Reason.CARD_TYPE_MISMATCH: 2}
    dev = picks[0].device
    assert V.pod_annotations(((dev,),), [list(picks)]) == {
        "hami.io/amd-devices-to-allocate": "amd-1,AMD-MI300X,8192,30:;",
        "hami.io/amd-devices-allocated": "amd-1,AMD-MI300X,8192,30:;",
    }


def test_cluster_summary_does_not_compare_percent_with_cus() -> None:
    devices = V.node_devices({keys.AMD_REGISTER: REGISTER})
    state = NodeState.of(Node("n", devices))
    pod = PodRequest("default", "p", ((ContainerRequest("AMD", 1, mem_pct=100, coresreq=100),),))
    assert state.may_fit(pod.containers)  # 60 CUs free < "100" must not reject the node
    assert decide(pod, ClusterView.of([state]), {"AMD": V}).node == "n"
