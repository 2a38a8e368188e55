"""Biren and Vastai (wire-format.md §4.14): count-only fit, Vastai die mode and score."""

from __future__ import annotations

import json

from hami.api import keys
from hami.api.types import ContainerDevice
from hami.core.model import ContainerRequest, DeviceUsage, Node
from hami.core.status import Reason, Unfit
from hami.core.vendor import Pick, Vendor
from hami.vendors.biren import BirenVendor
from hami.vendors.vastai import VastaiDevice, VastaiVendor
from tests.vendors.helpers import container, fit

BIREN = BirenVendor()
VASTAI = VastaiVendor()


def register(n: int, **custom: object) -> str:
    return json.dumps(
        [
            {
                "id": f"d{i}",
                "index": i,
                "count": 2,
                "devmem": 1000,
                "devcore": 7,
                "type": "X",
                "health": True,
            }
            | (
                {"custominfo": {k: (v[i] if isinstance(v, list) else v) for k, v in custom.items()}}
                if custom
                else {}
            )
            for i in range(n)
        ]
    )


def test_biren_request_inventory_fit_and_annotations() -> None:
    vendor: Vendor = BIREN  # CountVendor borrows WholeCardVendor's parse_container
    assert vendor.parse_container(container(birentech_com__gpu=1), "c") == ContainerRequest(
        "Biren", 1, mem_pct=100
    )
    devices = BIREN.node_devices({keys.BIREN_REGISTER: register(2)})
    assert [d.cores for d in devices] == [100, 100]
    busy = [DeviceUsage(used=1, usedmem=1000), DeviceUsage(used=2)]
    picks = fit(BIREN, devices, ContainerRequest("Biren", 1, mem_pct=100), usage=busy)
    assert isinstance(picks, tuple) and picks[0].device == ContainerDevice("d0", "Biren", 0, 0)
    unfit = fit(
        BIREN, devices, ContainerRequest("Biren", 1, mem_pct=100), usage=busy, policy=("mutex",)
    )
    assert isinstance(unfit, Unfit)
    assert unfit.counts == {
        Reason.EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT: 1,
        Reason.CARD_TIME_SLICING_EXHAUSTED: 1,
    }
    dev = picks[0].device
    assert BIREN.pod_annotations(((dev,),), [list(picks)]) == {
        "hami.io/Biren-devices-to-allocate": "d0,Biren,0,0:;",
        "hami.io/Biren-devices-allocated": "d0,Biren,0,0:;",
    }


def test_biren_uuid_filter() -> None:
    devices = BIREN.node_devices({keys.BIREN_REGISTER: register(2)})
    unfit = fit(
        BIREN, devices, ContainerRequest("Biren", 1), annotations={keys.BIREN_USE_UUID: "zz"}
    )
    assert isinstance(unfit, Unfit) and unfit.counts == {Reason.CARD_UUID_MISMATCH: 2}


def test_vastai_die_mode_prefers_fullest_card_and_scores() -> None:
    value = register(4, DeviceStrategy="die", AIC=["a", "b", "b", "c"])
    devices = VASTAI.node_devices({keys.VASTAI_REGISTER: value})
    assert all(isinstance(d, VastaiDevice) and d.die_mode for d in devices)
    picks = fit(VASTAI, devices, ContainerRequest("Vastai", 2, mem_pct=100))
    assert isinstance(picks, tuple)
    assert [p.device.uuid for p in picks] == ["d1", "d2"]
    node = Node("n", devices)
    assert VASTAI.score_node(node, [], [list(picks)], "binpack") == 1.0
    split = [
        [
            Pick(0, ContainerDevice("d0", "Vastai", 0, 0)),
            Pick(1, ContainerDevice("d1", "Vastai", 0, 0)),
        ]
    ]
    assert VASTAI.score_node(node, [], split, "binpack") == 0.5


def test_vastai_mutex_blocks_sibling_dies() -> None:
    value = register(3, DeviceStrategy="die", AIC=["a", "a", "b"])
    devices = VASTAI.node_devices({keys.VASTAI_REGISTER: value})
    busy = [DeviceUsage(used=1), DeviceUsage(), DeviceUsage()]
    picks = fit(VASTAI, devices, ContainerRequest("Vastai", 1), usage=busy, policy=("mutex",))
    assert isinstance(picks, tuple) and picks[0].device.uuid == "d2"


def test_vastai_plain_mode_has_no_score() -> None:
    devices = VASTAI.node_devices({keys.VASTAI_REGISTER: register(2)})
    picks = fit(VASTAI, devices, ContainerRequest("Vastai", 1))
    assert isinstance(picks, tuple)
    assert VASTAI.score_node(Node("n", devices), [], [list(picks)], "binpack") == 0.0
    assert VASTAI.pod_annotations(((picks[0].device,),), [list(picks)]) == {
        "hami.io/Vastai-devices-to-allocate": "d0,Vastai,0,0:;",
        "hami.io/Vastai-devices-allocated": "d0,Vastai,0,0:;",
    }
