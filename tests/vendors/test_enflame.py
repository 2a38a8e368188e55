"""Enflame whole GCUs and DRS slices (wire-format.md §4.10)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest

from hami.api import annotations as codec
from hami.api import keys
from hami.api.errors import WireFormatError
from hami.api.types import ContainerDevice
from hami.config import parse_config
from hami.core import accounting
from hami.core.accounting import placed_pod
from hami.core.cluster import ClusterView, NodeState
from hami.core.decide import commit, decide
from hami.core.errors import RequestInvalid
from hami.core.model import ContainerRequest, Device, DeviceUsage
from hami.core.nodes import node_from_manifest
from hami.core.request import parse_pod
from hami.core.status import Reason, Unfit
from hami.core.vendor import Vendor
from hami.vendors import registry
from hami.vendors.enflame import (
    EnflameDrsDevice,
    EnflameDrsVendor,
    EnflameGcuVendor,
    choose_profile,
)
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


# --- DRS slices ------------------------------------------------------------------------------------


DRS = EnflameDrsVendor()
PROFILES = {"1g.8gb": "0", "2g.16gb": "1", "4g.32gb": "2", "8g.64gb": "3"}
CAPACITY = {
    "devices": [
        {"index": "0", "minor": "0", "capacity": 8},
        {"index": "1", "minor": "5", "capacity": "8"},
    ],
    "profiles": PROFILES,
}
DRS_NAME = "enflame.com/drs-gcu"
MEMORY_NAME = "enflame.com/gcu-memory"
CORE_NAME = "enflame.com/gcu-core"


def drs_devices(capacity: object = CAPACITY, node: str = "n") -> tuple[Device, ...]:
    notes = {keys.ENFLAME_DRS_CAPACITY: json.dumps(capacity)}
    return DRS.capacity_devices(node, {}, {}, notes)


def drs_container(name: str = "c", /, **resources: object) -> dict[str, object]:
    return {"name": name, "resources": {"limits": dict(resources)}}


def _resources(admitted: object) -> dict[str, object]:
    return admitted.container["resources"]  # type: ignore[attr-defined, no-any-return]


def test_drs_admission_mirrors_the_slice_count() -> None:
    admitted = DRS.admit_container(drs_container(**{DRS_NAME: 2}), "pod p container c")
    assert admitted.uses_vendor
    assert _resources(admitted) == {"limits": {DRS_NAME: 2}, "requests": {DRS_NAME: 2}}
    only_requests = {"name": "c", "resources": {"requests": {DRS_NAME: "3"}}}
    admitted = DRS.admit_container(only_requests, "c")
    assert _resources(admitted) == {"limits": {DRS_NAME: "3"}, "requests": {DRS_NAME: "3"}}
    assert not DRS.admit_container(drs_container(**{"enflame.com/gcu": 1}), "c").uses_vendor


def test_drs_admission_mirrors_memory_and_cores() -> None:
    both = DRS.admit_container(drs_container(**{MEMORY_NAME: 16, CORE_NAME: 30}), "c")
    assert _resources(both) == {
        "limits": {MEMORY_NAME: 16, CORE_NAME: 30},
        "requests": {MEMORY_NAME: 16, CORE_NAME: 30},
    }
    cores = DRS.admit_container(drs_container(**{CORE_NAME: 100}), "c")
    assert _resources(cores) == {"limits": {CORE_NAME: 100}, "requests": {CORE_NAME: 100}}


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({DRS_NAME: 0}, "pod p container c: enflame.com/drs-gcu: 0 must be > 0"),
        ({MEMORY_NAME: 0}, "pod p container c: enflame.com/gcu-memory: 0 must be > 0"),
        ({CORE_NAME: 0}, "pod p container c: enflame.com/gcu-core: 0 must be between 1 and 100"),
        ({CORE_NAME: 101}, "enflame.com/gcu-core: 101 must be between 1 and 100"),
        ({DRS_NAME: "two"}, "pod p container c: enflame.com/drs-gcu: 'two'"),
    ],
)
def test_drs_admission_errors_name_container_and_resource(
    resources: dict[str, object], message: str
) -> None:
    with pytest.raises(RequestInvalid) as caught:
        DRS.admit_container(drs_container(**resources), "pod p container c")
    assert message in str(caught.value)


def test_drs_requests_direct_and_by_spec() -> None:
    direct = DRS.parse_container(drs_container(**{DRS_NAME: 2}), "c")
    assert direct == ContainerRequest("Enflame", 1, memreq=2, mem_pct=0, coresreq=0)
    spec = DRS.parse_container(drs_container(**{MEMORY_NAME: 16, CORE_NAME: 30}), "c")
    assert spec == ContainerRequest("Enflame", 1, memreq=16, mem_pct=-1, coresreq=30)
    cores = DRS.parse_container(drs_container(**{CORE_NAME: 30}), "c")
    assert cores == ContainerRequest("Enflame", 1, memreq=0, mem_pct=-1, coresreq=30)
    assert DRS.parse_container(drs_container(**{"enflame.com/gcu": 1}), "c") is None


def test_drs_registration() -> None:
    devices = drs_devices()
    assert [(d.uuid, d.count, d.memory, d.cores, d.index, d.type) for d in devices] == [
        ("n-enflame-drs-0", 8, 65536, 100, 0, "Enflame"),
        ("n-enflame-drs-1", 8, 65536, 100, 1, "Enflame"),
    ]
    assert isinstance(devices[1], EnflameDrsDevice) and devices[1].minor == "5"
    assert isinstance(devices[0], EnflameDrsDevice)
    profiles = [(p.name, p.id, p.slices, p.memory_gb, p.core_pct) for p in devices[0].profiles]
    assert profiles == [
        ("1g.8gb", "0", 1, 8, 13),
        ("2g.16gb", "1", 2, 16, 25),
        ("4g.32gb", "2", 4, 32, 50),
        ("8g.64gb", "3", 8, 64, 100),
    ]
    assert DRS.capacity_devices("n", {}, {}, {}) == ()
    # the HAMi example: a 6-slice card, an index that is no number falls back to the position
    odd = {"devices": [{"index": "x", "capacity": 6}], "profiles": {"1g.6gb": "0", "junk": "9"}}
    (device,) = drs_devices(odd)
    assert (device.uuid, device.index, device.count, device.memory) == (
        "n-enflame-drs-0",
        0,
        6,
        6144,
    )
    assert isinstance(device, EnflameDrsDevice) and device.minor == "0"


@pytest.mark.parametrize(
    ("value", "piece"),
    [
        ("{not json", "{not json"),
        ("[]", "[]"),
        ('{"profiles":{"1g.8gb":"0"}}', "devices"),
        ('{"devices":[],"profiles":[]}', "profiles"),
        ('{"devices":[],"profiles":{"1g.8gb":0}}', "profiles.1g.8gb"),
        ('{"devices":[],"profiles":{"big":"0"}}', "profiles"),
        ('{"devices":[{"index":"0"}],"profiles":{"1g.8gb":"0"}}', "devices[0].capacity"),
        ('{"devices":[{"capacity":"x"}],"profiles":{"1g.8gb":"0"}}', "devices[0].capacity"),
        ('{"devices":[{"capacity":0}],"profiles":{"1g.8gb":"0"}}', "devices[0].capacity"),
        ('{"devices":[{"index":0,"capacity":8}],"profiles":{"1g.8gb":"0"}}', "devices[0].index"),
        ('{"devices":[7],"profiles":{"1g.8gb":"0"}}', "devices[0]"),
    ],
)
def test_drs_registration_malformed(value: str, piece: str) -> None:
    with pytest.raises(WireFormatError) as caught:
        DRS.capacity_devices("n", {}, {}, {keys.ENFLAME_DRS_CAPACITY: value})
    assert caught.value.key == "enflame.com/gcu-drs-capacity"
    assert caught.value.piece == piece


def test_drs_profile_parsing() -> None:
    assert codec.parse_drs_profile("2g.16gb") == (2, 16)
    assert codec.parse_drs_profile(" 3G.20GB ") == (3, 20)
    assert codec.parse_drs_profile("3.20") == (3, 20)
    assert codec.parse_drs_profile("0g.8gb") is None
    assert codec.parse_drs_profile("2g") is None
    assert codec.parse_drs_profile("xg.8gb") is None


@pytest.mark.parametrize(
    ("request_", "profile"),
    [
        (ContainerRequest("Enflame", 1, memreq=2, mem_pct=0), "2g.16gb"),
        (ContainerRequest("Enflame", 1, memreq=8, mem_pct=0), "8g.64gb"),
        (ContainerRequest("Enflame", 1, memreq=3, mem_pct=0), None),
        (ContainerRequest("Enflame", 1, memreq=16, mem_pct=-1), "2g.16gb"),
        (ContainerRequest("Enflame", 1, memreq=20, mem_pct=-1), "4g.32gb"),
        (ContainerRequest("Enflame", 1, memreq=20000, mem_pct=-1), "4g.32gb"),  # MiB → 20 GB
        (ContainerRequest("Enflame", 1, memreq=128, mem_pct=-1), None),  # 128 GB: none
        (ContainerRequest("Enflame", 1, memreq=129, mem_pct=-1), "1g.8gb"),  # MiB → 1 GB
        (ContainerRequest("Enflame", 1, mem_pct=-1, coresreq=13), "1g.8gb"),
        (ContainerRequest("Enflame", 1, mem_pct=-1, coresreq=30), "4g.32gb"),
        (ContainerRequest("Enflame", 1, memreq=8, mem_pct=-1, coresreq=100), "8g.64gb"),
    ],
)
def test_drs_profile_choice(request_: ContainerRequest, profile: str | None) -> None:
    device = drs_devices()[0]
    assert isinstance(device, EnflameDrsDevice)
    chosen = choose_profile(device.profiles, request_)
    assert (chosen.name if chosen else None) == profile


def test_drs_fit_no_profile_is_mode_not_fit() -> None:
    unfit = fit(DRS, drs_devices(), ContainerRequest("Enflame", 1, memreq=3, mem_pct=0))
    assert isinstance(unfit, Unfit) and unfit.text() == "1/2 ModeNotFit"


def test_drs_fit_takes_the_profile() -> None:
    devices = drs_devices()
    picks = fit(DRS, devices, ContainerRequest("Enflame", 1, memreq=2, mem_pct=0))
    assert isinstance(picks, tuple) and len(picks) == 1
    (pick,) = picks
    assert (pick.position, pick.slots, pick.index) == (0, 2, 0)
    assert pick.device == ContainerDevice("n-enflame-drs-0", "Enflame", 16384, 25)


def test_drs_fit_needs_every_slice_free() -> None:
    devices = drs_devices()
    request = ContainerRequest("Enflame", 1, memreq=4, mem_pct=0)
    three_left = DeviceUsage(used=5, usedmem=5 * 8192, usedcores=5 * 13)
    unfit = fit(DRS, devices, request, usage=[three_left, three_left])
    assert isinstance(unfit, Unfit)
    assert unfit.counts == {Reason.CARD_TIME_SLICING_EXHAUSTED: 2}
    picks = fit(DRS, devices, request, usage=[three_left, DeviceUsage()])
    assert isinstance(picks, tuple) and picks[0].position == 1


@pytest.mark.parametrize(
    ("usage", "annotations", "policy", "reason"),
    [
        (DeviceUsage(), {keys.ENFLAME_USE_UUID: "other"}, ("spread",), Reason.CARD_UUID_MISMATCH),
        (
            DeviceUsage(),
            {keys.ENFLAME_NOUSE_UUID: "n-enflame-drs-0, n-enflame-drs-1"},
            ("spread",),
            Reason.CARD_UUID_MISMATCH,
        ),
        (DeviceUsage(used=1, usedmem=8192, usedcores=13), {}, ("mutex",), None),
        (DeviceUsage(used=1, usedmem=60000), {}, ("spread",), Reason.CARD_INSUFFICIENT_MEMORY),
        (DeviceUsage(used=1, usedcores=90), {}, ("spread",), Reason.CARD_INSUFFICIENT_CORE),
    ],
)
def test_drs_fit_checks(
    usage: DeviceUsage,
    annotations: dict[str, str],
    policy: tuple[str, ...],
    reason: Reason | None,
) -> None:
    request = ContainerRequest("Enflame", 1, memreq=2, mem_pct=0)
    unfit = fit(DRS, drs_devices(), request, [usage, usage], annotations, policy)
    expected = reason or Reason.EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT
    assert isinstance(unfit, Unfit) and unfit.counts == {expected: 2}


def test_drs_fit_skips_unhealthy_devices() -> None:
    devices = [dataclasses.replace(d, health=False) for d in drs_devices()]
    unfit = fit(DRS, devices, ContainerRequest("Enflame", 1, memreq=1, mem_pct=0))
    assert isinstance(unfit, Unfit) and unfit.counts == {Reason.CARD_NOT_HEALTH: 2}


def test_drs_slots_from_a_recorded_entry() -> None:
    assert DRS.slotted and type(DRS).named_pod_annotations is not Vendor.named_pod_annotations
    device = drs_devices()[0]
    assert DRS.slots(device, ContainerDevice(device.uuid, "Enflame", 32768, 50)) == 4
    assert DRS.slots(device, ContainerDevice(device.uuid, "Enflame", 65536, 0)) == 8
    assert DRS.slots(device, ContainerDevice(device.uuid, "Enflame", 1000, 1)) == 1


def _drs_node() -> dict[str, object]:
    notes = {keys.ENFLAME_DRS_CAPACITY: json.dumps(CAPACITY)}
    return {"kind": "Node", "metadata": {"name": "n", "annotations": notes}}


def _drs_pod() -> dict[str, object]:
    return {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {
            "initContainers": [drs_container("init", **{DRS_NAME: 1})],
            "containers": [
                drs_container("worker", **{DRS_NAME: 2}),
                drs_container("plain"),
                drs_container("sidecar", **{MEMORY_NAME: 20, CORE_NAME: 10}),
            ],
        },
    }


def test_drs_decision_annotations_byte_for_byte() -> None:
    cfg = parse_config({"enflame": {}, "nvidia": {"enabled": False}})
    vendors = registry.build(cfg)
    node = node_from_manifest(_drs_node(), vendors)
    pod = parse_pod(_drs_pod(), vendors, cfg, admit=True)
    view = ClusterView.of([NodeState.of(node)])
    decision = decide(pod, view, vendors)
    assert decision.placed, decision.failed_nodes()
    notes = decision.annotations_at(datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=UTC))
    assert notes == {
        "hami.io/vgpu-node": "n",
        "hami.io/vgpu-time": "1704164645",
        "hami.io/enflame-vgpu-devices-allocated": (
            "n-enflame-drs-1,Enflame,8192,13:;"
            "n-enflame-drs-1,Enflame,16384,25:;"
            ";"
            "n-enflame-drs-0,Enflame,32768,50:;"
        ),
        "enflame.com/gcu-assigned": "false",
        "enflame.com/gcu-assigned-time": "1704164645006000000",
        "enflame.com/gcu-assigned-index": "1",
        "enflame.com/gcu-assigned-id": "1",
        "enflame.com/gcu-assigned-minor": "5",
        "enflame.com/gcu-request-size": "1",
        "assigned-containers": (
            '{"init":{"allocated":false,"request":1,"profileID":"0","profileName":"1g.8gb"},'
            '"sidecar":{"allocated":false,"request":4,"profileID":"2","profileName":"4g.32gb"},'
            '"worker":{"allocated":false,"request":2,"profileID":"1","profileName":"2g.16gb"}}'
        ),
    }
    # the usage the decision adds is the usage rebuilt from its annotations
    after = commit(view, decision).get("n")
    assert after is not None
    placed = placed_pod("default/p", "n", notes, vendors, init_count=1)
    assert placed is not None
    rebuilt, unknown = accounting.node_usage(node, [placed], vendors)
    assert unknown == () and rebuilt == after.usage
    assert [u.used for u in rebuilt] == [4, 2]
    # without the vendors every entry would take one slot
    assert [u.used for u in accounting.node_usage(node, [placed])[0]] == [1, 1]


def test_drs_assigned_containers_without_names() -> None:
    device = drs_devices()[0]
    picks = fit(DRS, [device], ContainerRequest("Enflame", 1, memreq=8, mem_pct=0))
    assert isinstance(picks, tuple)
    notes = DRS.pod_annotations(((), (picks[0].device,)), [[], list(picks)])
    assert notes[keys.ENFLAME_ASSIGNED_CONTAINERS] == (
        '{"container-1":{"allocated":false,"request":8,"profileID":"3","profileName":"8g.64gb"}}'
    )
    assert notes[keys.ENFLAME_DRS_ALLOCATED] == ";n-enflame-drs-0,Enflame,65536,100:;"
    assert DRS.stamps() == {"enflame.com/gcu-assigned-time": "unix-nanos"}
    assert DRS.node_lock is None


def test_drs_assignment_codec_omits_empty_profile_fields() -> None:
    value = codec.encode_drs_assignments({"b": codec.DrsAssignment(2), "a": codec.DrsAssignment(1)})
    assert value == '{"a":{"allocated":false,"request":1},"b":{"allocated":false,"request":2}}'


def test_drs_config_names_and_fallbacks() -> None:
    cfg = parse_config(
        {
            "enflame": {
                "resourceNameDRSGCU": "",
                "resourceNameVGCU": "enflame.com/vgcu",
                "resourceNameGCUMemory": "x/mem",
            }
        }
    )
    vendor = registry.build(cfg)["Enflame"]
    assert isinstance(vendor, EnflameDrsVendor)
    assert (
        vendor.count_name == "enflame.com/vgcu"
        and vendor.config.resource_name_gcu_memory == "x/mem"
    )
    assert "Enflame" not in registry.build(parse_config({"enflame": {"enabled": False}}))
    assert "Enflame" not in registry.build(parse_config({}))
