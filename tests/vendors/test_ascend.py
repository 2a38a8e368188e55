"""Ascend NPU (wire-format.md §1.5, §4.7): templates, hami-core, NetworkID, 910C pairs."""

from __future__ import annotations

import json

import pytest

from hami.api import keys
from hami.api.types import ContainerDevice
from hami.core.errors import RequestInvalid
from hami.core.model import ContainerRequest, DeviceUsage, Node
from hami.core.status import Reason, Unfit
from hami.core.vendor import Pick
from hami.vendors.ascend import AscendDevice, AscendVendor
from hami.vendors.config import DEFAULT_VNPUS
from tests.vendors.helpers import container, fit

CONFIGS = {c.common_word: c for c in DEFAULT_VNPUS}
B2 = AscendVendor(CONFIGS["Ascend910B2"])
C = AscendVendor(CONFIGS["Ascend910C"])
P310 = AscendVendor(CONFIGS["Ascend310P"])


def register(n: int, *, nets: list[int] | None = None, cw: str = "Ascend910B2") -> str:
    items = []
    for i in range(n):
        item: dict[str, object] = {
            "id": f"npu-{i}",
            "index": i,
            "count": 4,
            "devmem": 65536,
            "devcore": 24,
            "type": cw,
            "health": True,
        }
        if nets is not None:
            item["custominfo"] = {"NetworkID": nets[i]}
        items.append(item)
    return json.dumps(items)


def limits(
    cw: str, count: int, memory: int | None = None, core: int | None = None
) -> dict[str, object]:
    values: dict[str, object] = {f"huawei.com/{cw}": count}
    if memory is not None:
        values[f"huawei.com/{cw}-memory"] = memory
    if core is not None:
        values[f"huawei.com/{cw}-core"] = core
    return {"name": "c", "resources": {"limits": values, "requests": dict(values)}}


def _limits(admitted: object) -> dict[str, object]:
    return admitted.container["resources"]["limits"]  # type: ignore[attr-defined, no-any-return]


# --- admission -----------------------------------------------------------------------------------


def test_memory_rounds_up_to_a_template() -> None:
    admitted = B2.admit_container(limits("Ascend910B2", 1, 10000), "c", {})
    assert _limits(admitted)["huawei.com/Ascend910B2-memory"] == 16384
    whole = B2.admit_container(limits("Ascend910B2", 1), "c", {})
    assert _limits(whole)["huawei.com/Ascend910B2-memory"] == 65536
    big = B2.admit_container(limits("Ascend910B2", 1, 40000), "c", {})
    assert _limits(big)["huawei.com/Ascend910B2-memory"] == 65536


def test_admission_errors() -> None:
    with pytest.raises(RequestInvalid, match="is invalid"):
        B2.admit_container(limits("Ascend910B2", 1, 70000), "c", {})
    with pytest.raises(RequestInvalid, match="vNPU not supported for multiple devices"):
        B2.admit_container(limits("Ascend910B2", 2, 8192), "c", {})
    with pytest.raises(RequestInvalid, match="hami-core"):
        B2.admit_container(limits("Ascend910B2", 1, core=4), "c", {})
    with pytest.raises(RequestInvalid, match="Ascend910C device request must be 1 or 2\\*n, got 3"):
        C.admit_container(limits("Ascend910C", 3), "c", {})


def test_hami_core_mode_keeps_memory_and_cores() -> None:
    mode = {keys.ASCEND_VNPU_MODE: "hami-core"}
    admitted = B2.admit_container(limits("Ascend910B2", 1, 3000, 30), "c", mode)
    assert _limits(admitted)["huawei.com/Ascend910B2-memory"] == 3000
    req = B2.parse_container(admitted.container, "c")
    assert req == ContainerRequest("Ascend910B2", 1, memreq=3000, mem_pct=0, coresreq=30)


def test_910c_single_request_becomes_a_pair() -> None:
    admitted = C.admit_container(limits("Ascend910C", 1), "c", {})
    assert _limits(admitted)["huawei.com/Ascend910C"] == 2
    assert admitted.container["resources"]["requests"]["huawei.com/Ascend910C"] == 2  # type: ignore[index]


def test_overwrite_env_for_containers_without_npu() -> None:
    from dataclasses import replace

    vendor = AscendVendor(replace(CONFIGS["Ascend910B2"], overwrite_env=True))
    admitted = vendor.admit_container(container(nvidia_com__gpu=1), "c")
    assert not admitted.uses_vendor
    assert admitted.env == {"ASCEND_VISIBLE_DEVICES": ""}


# --- inventory and fit -----------------------------------------------------------------------------


def test_node_devices_carry_network_id_and_soft_split_flag() -> None:
    devices = B2.node_devices(
        {B2.spec.register: register(2, nets=[7, 8]), "hami-vnpu-core": "true"}
    )
    assert all(isinstance(d, AscendDevice) for d in devices)
    assert [(d.uuid, d.network_id, d.hami_core) for d in devices] == [  # type: ignore[attr-defined]
        ("npu-0", 7, True),
        ("npu-1", 8, True),
    ]
    assert B2.spec.register == "hami.io/node-register-Ascend910B2"


def test_hami_core_pod_needs_a_supporting_node() -> None:
    devices = B2.node_devices({B2.spec.register: register(2)})
    req = ContainerRequest("Ascend910B2", 1, memreq=3000, mem_pct=0, coresreq=30)
    unfit = fit(B2, devices, req, annotations={keys.ASCEND_VNPU_MODE: "hami-core"})
    assert isinstance(unfit, Unfit)
    assert unfit.counts == {Reason.MODE_NOT_FIT: 2}
    soft = B2.node_devices({B2.spec.register: register(2), "hami-vnpu-core": "true"})
    picks = fit(B2, soft, req, annotations={keys.ASCEND_VNPU_MODE: "hami-core"})
    assert isinstance(picks, tuple)
    assert picks[0].note == "hami-core"
    assert picks[0].device.usedcores == 30  # cores count against 100, not the 24 AI cores


def test_network_groups_largest_first() -> None:
    devices = B2.node_devices({B2.spec.register: register(4, nets=[1, 2, 2, 3])})
    req = ContainerRequest("Ascend910B2", 2, memreq=65536, mem_pct=0)
    picks = fit(B2, devices, req)
    assert isinstance(picks, tuple)
    assert sorted(p.device.uuid for p in picks) == ["npu-1", "npu-2"]


def test_910c_takes_whole_cards_only() -> None:
    devices = C.node_devices({C.spec.register: register(4, cw="Ascend910C")})
    req = ContainerRequest("Ascend910C", 2, memreq=65536, mem_pct=0)
    busy = [DeviceUsage(used=1, usedmem=16384), DeviceUsage(), DeviceUsage(), DeviceUsage()]
    picks = fit(C, devices, req, usage=busy)
    assert isinstance(picks, tuple)
    assert sorted(p.device.uuid for p in picks) == ["npu-2", "npu-3"]
    req4 = ContainerRequest("Ascend910C", 4, memreq=65536, mem_pct=0)
    unfit = fit(C, devices, req4, usage=busy)
    assert isinstance(unfit, Unfit)
    assert unfit.counts[Reason.ALLOCATED_CARDS_INSUFFICIENT_REQUEST] == 2


def test_score_rewards_one_network() -> None:
    devices = B2.node_devices({B2.spec.register: register(4, nets=[1, 1, 2, 2])})
    node = Node("n", devices)
    same = [
        [Pick(0, ContainerDevice("npu-0", "x", 0, 0)), Pick(1, ContainerDevice("npu-1", "x", 0, 0))]
    ]
    split = [
        [Pick(1, ContainerDevice("npu-1", "x", 0, 0)), Pick(2, ContainerDevice("npu-2", "x", 0, 0))]
    ]
    assert B2.score_node(node, [], same, "binpack") == 10.0
    assert B2.score_node(node, [], split, "binpack") == 5.0
    bare = Node("n", B2.node_devices({B2.spec.register: register(2)}))
    assert B2.score_node(bare, [], same, "binpack") == 0.0
    assert P310.score_node(node, [], same, "binpack") == 0.0


# --- annotations ---------------------------------------------------------------------------------


def test_pod_annotations_hard_split_template() -> None:
    dev = ContainerDevice("npu-0", "Ascend910B2", 16384, 0)
    notes = B2.pod_annotations(((dev,),), [[Pick(0, dev)]])
    assert notes == {
        "hami.io/Ascend910B2-devices-to-allocate": "npu-0,Ascend910B2,16384,0:;",
        "hami.io/Ascend910B2-devices-allocated": "npu-0,Ascend910B2,16384,0:;",
        "huawei.com/Ascend910B2": '[{"UUID":"npu-0","temp":"vir06_1c_16g","memory":16384}]',
    }
    assert B2.stamps() == {"predicate-time": "unix-seconds"}


def test_pod_annotations_hami_core_and_whole_card() -> None:
    soft = ContainerDevice("npu-0", "Ascend910B2", 3000, 30)
    whole = ContainerDevice("npu-1", "Ascend910B2", 65536, 0)
    notes = B2.pod_annotations(
        ((soft,), (whole,)), [[Pick(0, soft, note="hami-core")], [Pick(1, whole)]]
    )
    assert notes["huawei.com/Ascend910B2"] == (
        '[{"UUID":"npu-0","memory":3000,"core":30},{"UUID":"npu-1","memory":65536}]'
    )
