"""Enflame whole GCUs (wire-format.md §4.10)."""

from __future__ import annotations

from hami.config import parse_config
from hami.core.model import ContainerRequest, DeviceUsage
from hami.core.status import Reason, Unfit
from hami.vendors import registry
from hami.vendors.enflame import EnflameGcuVendor
from tests.vendors.helpers import container, fit

V = EnflameGcuVendor()


def test_whole_gcu() -> None:
    devices = V.capacity_devices("n", {"enflame.com/gcu": "2"}, {}, {})
    assert [(d.uuid, d.count, d.memory, d.cores) for d in devices] == [
        ("n-GCU-0", 1, 100, 100),
        ("n-GCU-1", 1, 100, 100),
    ]
    req = V.parse_container(container(enflame_com__gcu=1), "c")
    assert req == ContainerRequest("GCU", 1, memreq=100, mem_pct=100, coresreq=100)
    picks = fit(
        V, devices, req, usage=[DeviceUsage(used=1, usedmem=100, usedcores=100), DeviceUsage()]
    )
    assert isinstance(picks, tuple) and picks[0].device.uuid == "n-GCU-1"
    dev = picks[0].device
    assert V.pod_annotations(((dev,),), [list(picks)]) == {
        "hami.io/enflame-gcu-devices-to-allocate": "n-GCU-1,GCU,100,100:;",
        "hami.io/enflame-gcu-devices-allocated": "n-GCU-1,GCU,100,100:;",
    }
    full = [DeviceUsage(used=1, usedmem=100, usedcores=100)] * 2
    unfit = fit(V, devices, req, usage=full)
    assert isinstance(unfit, Unfit) and unfit.counts == {Reason.CARD_TIME_SLICING_EXHAUSTED: 2}


def test_enflame_section_uses_hami_keys() -> None:
    cfg = parse_config(
        {"enflame": {"resourceNameGCU": "enflame.com/gcu", "resourceNameDRSGCU": "x"}}
    )
    assert "GCU" in registry.build(cfg)
