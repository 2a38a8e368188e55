"""Kunlun XPU (wire-format.md §4.11, §8 scenario 13): wings, cross-wing picks, node score."""

from __future__ import annotations

import json

import pytest

from hami.api import keys
from hami.core.cluster import ClusterView, NodeState
from hami.core.decide import decide
from hami.core.errors import RequestInvalid
from hami.core.model import ContainerRequest, DeviceUsage, Node, PodOptions, PodRequest
from hami.core.status import Reason, Unfit
from hami.vendors.kunlun import KunlunVendor, KunlunVxpuVendor, bubbles, wing_score, wing_select
from tests.vendors.helpers import container, fit

V = KunlunVendor()
EIGHT = {"kunlunxin.com/xpu": "8"}


@pytest.mark.parametrize(
    ("free", "nums", "chosen"),
    [
        (range(8), 1, (0,)),
        ([0, 1, 2], 1, (0,)),
        ([0, 1, 2, 4], 1, (4,)),  # a lone free XPU on a wing is used first
        ([0, 1, 4, 5, 6], 2, (0, 1)),
        ([0, 4], 2, (0, 4)),  # cross-wing pair
        ([0, 1, 4, 5], 4, (0, 1, 4, 5)),  # quad
        ([0, 2, 4, 6, 7], 4, (0, 2, 4, 6)),
        (range(8), 8, tuple(range(8))),
        (range(7), 8, ()),
        (range(8), 3, ()),
    ],
)
def test_wing_select(free: range | list[int], nums: int, chosen: tuple[int, ...]) -> None:
    assert wing_select(list(free), nums) == chosen


def test_bubbles_and_score() -> None:
    assert bubbles([]) == 1
    assert bubbles([0]) == 3
    assert bubbles([3, 4, 5, 6, 7]) == 2
    assert wing_score([], [0]) == 0.0
    assert wing_score([3, 4, 5, 6, 7], [0]) == 1000.0


def test_capacity_devices_and_request() -> None:
    devices = V.capacity_devices("n", EIGHT, {}, {})
    assert [(d.uuid, d.numa) for d in devices][3:5] == [("n-kunlun-3", 0), ("n-kunlun-4", 1)]
    assert V.parse_container(container(kunlunxin_com__xpu=2), "c") == ContainerRequest(
        "kunlun", 2, mem_pct=100
    )
    assert V.admit_container(container(kunlunxin_com__xpu=1), "c").uses_vendor


def test_fit_uuid_filter_and_failure_reason() -> None:
    devices = V.capacity_devices("n", EIGHT, {}, {})
    picks = fit(V, devices, ContainerRequest("kunlun", 1, mem_pct=100))
    assert isinstance(picks, tuple) and picks[0].device.usedmem == 98304
    unfit = fit(
        V,
        devices,
        ContainerRequest("kunlun", 2, mem_pct=100),
        annotations={keys.KUNLUN_USE_UUID: "n-kunlun-0"},
    )
    assert isinstance(unfit, Unfit)
    assert unfit.counts == {Reason.CARD_UUID_MISMATCH: 7, Reason.NUMA_NOT_FIT: 1}


def test_scenario_13_topology_score_decides() -> None:
    node1 = Node("node1", V.capacity_devices("node1", EIGHT, {}, {}))
    node2 = Node("node2", V.capacity_devices("node2", EIGHT, {}, {}))
    busy = [DeviceUsage() if i < 3 else DeviceUsage(used=1) for i in range(8)]
    view = ClusterView.of([NodeState.of(node1), NodeState.of(node2, busy)])
    pod = PodRequest("default", "p", ((ContainerRequest("kunlun", 1, mem_pct=100),),))
    decision = decide(pod, view, {"kunlun": V})
    assert decision.node == "node2"
    state = view.get("node2")
    assert state is not None and decision.score == state.score + 1000
    assert decision.annotations == {
        "hami.io/vgpu-node": "node2",
        "hami.io/kunlun-allocated": "node2-kunlun-0,kunlun,98304,100:;",
        "BAIDU_COM_DEVICE_IDX": "0",
    }
    spread = PodRequest(
        "default",
        "p",
        ((ContainerRequest("kunlun", 1, mem_pct=100),),),
        options=PodOptions(node_policy="spread"),
    )
    assert decide(spread, view, {"kunlun": V}).node == "node1"


# --- vXPU ------------------------------------------------------------------------------------------

X = KunlunVxpuVendor()
XPU_REGISTER = json.dumps(
    [
        {
            "id": f"xpu-{i}",
            "index": i,
            "count": 4,
            "devmem": 98304,
            "devcore": 100,
            "type": "P800",
            "health": True,
        }
        for i in range(8)
    ]
)


def _vx(memory: int | None = None, count: int = 1) -> dict[str, object]:
    values: dict[str, object] = {"kunlunxin.com/vxpu": count}
    if memory is not None:
        values["kunlunxin.com/vxpu-memory"] = memory
    return {"name": "c", "resources": {"limits": values, "requests": dict(values)}}


def test_vxpu_admission_rounds_memory_to_a_slice() -> None:
    admitted = X.admit_container(_vx(30000), "c")
    resources_ = admitted.container["resources"]
    assert resources_["limits"]["kunlunxin.com/vxpu-memory"] == 49152  # type: ignore[index]
    assert resources_["requests"]["kunlunxin.com/vxpu-memory"] == 49152  # type: ignore[index]
    assert X.parse_container(admitted.container, "c") == ContainerRequest(
        "XPU", 1, memreq=49152, mem_pct=0, coresreq=50
    )
    assert X.parse_container(_vx(), "c") == ContainerRequest(
        "XPU", 1, memreq=98304, mem_pct=100, coresreq=100
    )
    with pytest.raises(RequestInvalid, match="more than a whole XPU"):
        X.admit_container(_vx(100000), "c")


def test_vxpu_same_size_slices_only() -> None:
    devices = X.node_devices({keys.KUNLUN_VXPU_REGISTER: XPU_REGISTER})
    usage = [DeviceUsage(used=1, usedmem=24576, usedcores=25)] + [DeviceUsage(used=4)] * 7
    half = ContainerRequest("XPU", 1, memreq=49152, mem_pct=0, coresreq=50)
    unfit = fit(X, devices, half, usage=usage)
    assert isinstance(unfit, Unfit)
    assert unfit.counts[Reason.EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT] == 1
    quarter = ContainerRequest("XPU", 1, memreq=24576, mem_pct=0, coresreq=25)
    picks = fit(X, devices, quarter, usage=usage)
    assert isinstance(picks, tuple) and picks[0].device.uuid == "xpu-0"
    dev = picks[0].device
    assert X.pod_annotations(((dev,),), [list(picks)]) == {
        "hami.io/xpu-devices-to-allocate": "xpu-0,XPU,24576,25:;",
        "hami.io/xpu-devices-allocated": "xpu-0,XPU,24576,25:;",
    }
