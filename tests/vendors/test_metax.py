"""MetaX (wire-format.md §4.9): whole GPUs with topology scores, sGPU slices with QoS."""

from __future__ import annotations

import json

import pytest

from hami.api import keys
from hami.api.types import ContainerDevice
from hami.core.errors import RequestInvalid
from hami.core.fit import NodeFit, fit_pod
from hami.core.model import EMPTY_USAGE, ContainerRequest, DeviceUsage, Node, PodRequest
from hami.core.vendor import Pick
from hami.vendors.metax import MetaxGpuVendor, MetaxSgpuDevice, MetaxSgpuVendor
from tests.vendors.helpers import container, fit

GPU = MetaxGpuVendor()
SGPU = MetaxSgpuVendor()


def sgpu_register(*zones: int, qos: str = "best-effort") -> str:
    return json.dumps(
        [
            {
                "uuid": f"GPU-{i}",
                "bdf": f"0000:0{i}:00.0",
                "model": "C500",
                "totalDevCount": 16,
                "totalCompute": 100,
                "totalVRam": 65536,
                "availableDevCount": 16,
                "availableCompute": 100,
                "availableVRam": 65536,
                "numa": 0,
                "healthy": True,
                "qosPolicy": qos,
                "linkZone": zone,
            }
            for i, zone in enumerate(zones)
        ]
    )


# --- whole GPU -------------------------------------------------------------------------------------


def test_whole_gpu_capacity_request_and_annotations() -> None:
    devices = GPU.capacity_devices("n", {"metax-tech.com/gpu": "2"}, {}, {})
    assert [(d.uuid, d.count, d.memory, d.cores) for d in devices] == [
        ("n-metax-0", 1, 65536, 100),
        ("n-metax-1", 1, 65536, 100),
    ]
    req = GPU.parse_container(container(**{"metax-tech_com__gpu": 1}), "c")
    assert req == ContainerRequest("Metax-GPU", 1, mem_pct=100, coresreq=100)
    picks = fit(GPU, devices, ContainerRequest("Metax-GPU", 1, mem_pct=100, coresreq=100))
    assert isinstance(picks, tuple)
    dev = picks[0].device
    assert GPU.pod_annotations(((dev,),), [list(picks)]) == {
        "hami.io/metax-gpu-devices-to-allocate": f"{dev.uuid},Metax-GPU,65536,100:;",
        "hami.io/metax-gpu-devices-allocated": f"{dev.uuid},Metax-GPU,65536,100:;",
    }


def test_whole_gpu_score_from_topology_tables() -> None:
    notes = {keys.METAX_TOPOLOGY_LOSSES: '{"1":0,"2":100}', keys.METAX_TOPOLOGY_SCORES: '{"2":50}'}
    devices = GPU.capacity_devices("n", {"metax-tech.com/gpu": "2"}, {}, notes)
    node = Node("n", devices)
    two = [
        [
            Pick(0, ContainerDevice("n-metax-0", "x", 0, 0)),
            Pick(1, ContainerDevice("n-metax-1", "x", 0, 0)),
        ]
    ]
    assert GPU.score_node(node, [], two, "binpack") == 1900.0
    assert GPU.score_node(node, [], two, "spread") == 1950.0
    assert GPU.score_node(node, [], [[]], "binpack") == 0.0


WHOLE = ContainerRequest("Metax-GPU", 1, mem_pct=100, coresreq=100)


def _pod(*containers: ContainerRequest | None, init_count: int = 0) -> PodRequest:
    return PodRequest(
        namespace="ns",
        name="p",
        containers=tuple((c,) if c else () for c in containers),
        init_count=init_count,
    )


def test_whole_gpu_two_containers_take_one_card_each() -> None:
    """HAMi's same-card rule (§4.9) is not reproduced: with one slot per card it made two GPU
    containers unschedulable everywhere (HAMi later dropped it, #2837)."""
    node = Node("n", GPU.capacity_devices("n", {"metax-tech.com/gpu": "2"}, {}, {}))
    placed = fit_pod(node, [EMPTY_USAGE] * 2, _pod(WHOLE, WHOLE), {GPU.key: GPU})
    assert isinstance(placed, NodeFit)
    first, second = ([p.device.uuid for p in c] for c in placed.picks["Metax-GPU"])
    assert len(first) == len(second) == 1 and first != second


def test_whole_gpu_init_and_app_container_share_the_card() -> None:
    node = Node("n", GPU.capacity_devices("n", {"metax-tech.com/gpu": "2"}, {}, {}))
    placed = fit_pod(
        node, [EMPTY_USAGE] * 2, _pod(WHOLE, None, WHOLE, init_count=1), {GPU.key: GPU}
    )
    assert isinstance(placed, NodeFit)
    chosen = [[p.device.uuid for p in c] for c in placed.picks["Metax-GPU"]]
    assert chosen[1] == [] and chosen[0] == chosen[2] and len(chosen[0]) == 1
    assert placed.delta == {chosen[0][0]: DeviceUsage(used=1, usedmem=65536, usedcores=100)}


def test_whole_gpu_one_container_may_take_several_cards() -> None:
    node = Node("n", GPU.capacity_devices("n", {"metax-tech.com/gpu": "2"}, {}, {}))
    two = ContainerRequest("Metax-GPU", 2, mem_pct=100, coresreq=100)
    placed = fit_pod(node, [EMPTY_USAGE] * 2, _pod(two), {GPU.key: GPU})
    assert isinstance(placed, NodeFit) and len(placed.picks["Metax-GPU"][0]) == 2


# --- sGPU ------------------------------------------------------------------------------------------


def test_sgpu_registration() -> None:
    devices = SGPU.node_devices({keys.METAX_SGPU_REGISTER: sgpu_register(1, 0)})
    assert all(isinstance(d, MetaxSgpuDevice) for d in devices)
    assert [(d.uuid, d.count, d.memory, d.cores, d.link_zone) for d in devices] == [  # type: ignore[attr-defined]
        ("GPU-0", 16, 65536, 100, 1),
        ("GPU-1", 16, 65536, 100, 0),
    ]


@pytest.mark.parametrize(("raw", "mib"), [(4, 4096), ("4", 4096), ("4Gi", 4096), ("512Mi", 512)])
def test_sgpu_memory_units(raw: object, mib: int) -> None:
    limits = {"metax-tech.com/sgpu": 1, "metax-tech.com/vmemory": raw}
    req = SGPU.parse_container({"name": "c", "resources": {"limits": limits}}, "c")
    assert req == ContainerRequest("Metax-SGPU", 1, memreq=mib, mem_pct=0, coresreq=100)


def test_sgpu_pod_admission_rules() -> None:
    assert SGPU.admit_pod({}, [2], "p") == {keys.METAX_QOS_POLICY: "best-effort"}
    assert SGPU.admit_pod({keys.METAX_APP_CLASS: "online"}, [1], "p") == {}
    with pytest.raises(RequestInvalid, match="online or offline"):
        SGPU.admit_pod({keys.METAX_APP_CLASS: "batch"}, [1], "p")
    with pytest.raises(RequestInvalid, match="exactly 1"):
        SGPU.admit_pod({keys.METAX_APP_CLASS: "offline"}, [2], "p")
    with pytest.raises(RequestInvalid, match="best-effort, fixed-share, burst-share"):
        SGPU.admit_pod({keys.METAX_QOS_POLICY: "x"}, [1], "p")


def test_sgpu_qos_mismatch_on_shared_devices() -> None:
    devices = SGPU.node_devices({keys.METAX_SGPU_REGISTER: sgpu_register(0, 0, qos="fixed-share")})
    req = ContainerRequest("Metax-SGPU", 1, memreq=1024, mem_pct=0, coresreq=10)
    busy = [DeviceUsage(used=1, usedmem=1024, usedcores=10), DeviceUsage()]
    picks = fit(SGPU, devices, req, usage=busy)
    assert isinstance(picks, tuple) and picks[0].device.uuid == "GPU-1"
    unfit = fit(SGPU, devices, req, usage=[busy[0], busy[0]])
    assert unfit.counts == {"CardQosPolicyMismatch": 2}  # type: ignore[attr-defined]


def test_sgpu_online_pods_record_no_cores() -> None:
    devices = SGPU.node_devices({keys.METAX_SGPU_REGISTER: sgpu_register(0)})
    req = ContainerRequest("Metax-SGPU", 1, memreq=1024, mem_pct=0, coresreq=30)
    picks = fit(SGPU, devices, req, annotations={keys.METAX_APP_CLASS: "online"})
    assert isinstance(picks, tuple) and picks[0].device.usedcores == 0


def test_sgpu_exclusive_request_prefers_one_link_zone() -> None:
    devices = SGPU.node_devices({keys.METAX_SGPU_REGISTER: sgpu_register(1, 2, 2, 0)})
    req = ContainerRequest("Metax-SGPU", 2, memreq=1024, mem_pct=0, coresreq=100)
    picks = fit(SGPU, devices, req, annotations={"metax-tech.com/sgpu-topology-aware": "true"})
    assert isinstance(picks, tuple)
    assert sorted(p.device.uuid for p in picks) == ["GPU-1", "GPU-2"]


def test_sgpu_annotations_byte_for_byte() -> None:
    dev = ContainerDevice("GPU-0", "Metax-SGPU", 4096, 30)
    notes = SGPU.pod_annotations(((dev,), ()), [[Pick(0, dev)], []])
    assert notes == {
        "hami.io/metax-sgpu-devices-to-allocate": "GPU-0,Metax-SGPU,4096,30:;;",
        "hami.io/metax-sgpu-devices-allocated": "GPU-0,Metax-SGPU,4096,30:;;",
        "metax-tech.com/gpu-devices-allocated": '[[{"uuid":"GPU-0","compute":30,"vRam":4096}],[]]',
    }
    assert SGPU.stamps() == {"metax-tech.com/predicate-time": "unix-nanos"}
