"""MetaX (wire-format.md §4.9): whole GPUs with topology scores, sGPU slices with QoS."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hami.api import keys
from hami.api.types import ContainerDevice
from hami.core import accounting
from hami.core.accounting import placed_pod
from hami.core.cluster import ClusterView, NodeState
from hami.core.decide import commit, decide
from hami.core.errors import RequestInvalid
from hami.core.fit import NodeFit, fit_pod
from hami.core.model import (
    EMPTY_USAGE,
    ContainerRequest,
    DeviceUsage,
    Node,
    PodOptions,
    PodRequest,
)
from hami.core.status import Unfit
from hami.core.vendor import Pick
from hami.vendors.config import MetaxConfig
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


# --- sGPU app classes (online / offline) -----------------------------------------------------------

SHARE = ContainerRequest("Metax-SGPU", 1, memreq=1024, mem_pct=0, coresreq=10)


def tasks(online: int = 0, offline: int = 0, plain: int = 0, cores: int = 10) -> DeviceUsage:
    """A device's usage with that many online, offline and unclassed tasks."""
    n = online + offline + plain
    classes = (("offline", offline), ("online", online))
    return DeviceUsage(
        used=n, usedmem=1024 * n, usedcores=cores * n, tasks=tuple(c for c in classes if c[1])
    )


def classed(app_class: str) -> dict[str, str]:
    return {keys.METAX_APP_CLASS: app_class} if app_class else {}


MIXED = {
    "idle": DeviceUsage(),
    "plain": tasks(plain=1),
    "online": tasks(online=1),
    "offline": tasks(offline=2),
    "both": tasks(online=1, offline=1),
    "online+plain": tasks(online=1, plain=1),
}


@pytest.mark.parametrize(
    ("app_class", "allowed", "text"),
    [
        ("", {"idle", "plain"}, "2/6 AllocatedCardsInsufficientRequest, 4/6 CardAppClassMismatch"),
        (
            "offline",
            {"idle", "offline"},
            "2/6 AllocatedCardsInsufficientRequest, 4/6 CardAppClassMismatch",
        ),
        (
            "online",
            {"idle", "online", "offline", "both"},
            "2/6 CardAppClassMismatch, 4/6 AllocatedCardsInsufficientRequest",
        ),
    ],
)
def test_sgpu_app_class_compatibility(app_class: str, allowed: set[str], text: str) -> None:
    """Classed pods never share with unclassed ones; offline pods keep off online devices."""
    devices = SGPU.node_devices({keys.METAX_SGPU_REGISTER: sgpu_register(*[0] * len(MIXED))})
    notes = classed(app_class)
    fits = {
        name
        for dev, (name, usage) in zip(devices, MIXED.items(), strict=True)
        if isinstance(fit(SGPU, [dev], SHARE, usage=[usage], annotations=notes), tuple)
    }
    assert fits == allowed
    every = dataclasses.replace(SHARE, nums=len(MIXED))
    unfit = fit(SGPU, devices, every, usage=list(MIXED.values()), annotations=notes)
    assert isinstance(unfit, Unfit) and unfit.text() == text


def test_sgpu_picks_carry_the_app_class() -> None:
    devices = SGPU.node_devices({keys.METAX_SGPU_REGISTER: sgpu_register(0)})
    for app_class in ("", "online", "offline"):
        picks = fit(SGPU, devices, SHARE, annotations=classed(app_class))
        assert isinstance(picks, tuple) and picks[0].task_class == app_class
    assert SGPU.task_class({keys.METAX_APP_CLASS: "batch"}) == ""  # admission rejects it
    assert SGPU.task_class({keys.METAX_APP_CLASS: "offline"}) == "offline"


def test_sgpu_online_pods_skip_core_and_qos_checks() -> None:
    devices = SGPU.node_devices({keys.METAX_SGPU_REGISTER: sgpu_register(0, qos="fixed-share")})
    full = [tasks(offline=1, cores=100)]
    exclusive = dataclasses.replace(SHARE, coresreq=100)
    online = fit(SGPU, devices, exclusive, usage=full, annotations=classed("online"))
    assert isinstance(online, tuple) and online[0].device.usedcores == 0
    offline = fit(SGPU, devices, SHARE, usage=full, annotations=classed("offline"))
    assert isinstance(offline, Unfit) and offline.counts == {"CardQosPolicyMismatch": 1}
    fixed = {**classed("offline"), keys.METAX_QOS_POLICY: "fixed-share"}
    offline = fit(SGPU, devices, SHARE, usage=full, annotations=fixed)
    assert isinstance(offline, Unfit) and offline.counts == {"CardInsufficientCore": 1}


def test_sgpu_unhealthy_devices_say_card_unhealthy() -> None:
    (dev,) = SGPU.node_devices({keys.METAX_SGPU_REGISTER: sgpu_register(0)})
    unfit = fit(SGPU, [dataclasses.replace(dev, health=False)], SHARE)
    assert isinstance(unfit, Unfit) and unfit.text() == "1/1 CardUnhealthy"


def test_sgpu_online_pods_choose_fewest_online_tasks_and_shun_offline_only_devices() -> None:
    order = {
        "offline-2": tasks(offline=2),
        "both": tasks(online=1, offline=1),
        "online": tasks(online=1),
        "offline-1": tasks(offline=1),
        "online-2": tasks(online=2),
        "idle": DeviceUsage(),
        "idle-too": DeviceUsage(),
    }
    devices = SGPU.node_devices({keys.METAX_SGPU_REGISTER: sgpu_register(*[0] * len(order))})
    named = dict(zip(order, devices, strict=True))
    remaining = list(order)
    chosen = []
    while remaining:
        picks = fit(
            SGPU,
            [named[n] for n in remaining],
            SHARE,
            usage=[order[n] for n in remaining],
            annotations=classed("online"),
        )
        assert isinstance(picks, tuple)
        name = remaining[picks[0].position]
        chosen.append(name)
        remaining.remove(name)
    # ties keep the try order (HAMi's unstable sort does not promise that)
    assert chosen == ["idle", "idle-too", "online", "both", "online-2", "offline-1", "offline-2"]
    # offline and unclassed pods follow the policy order (the first candidate that fits)
    picks = fit(SGPU, devices, SHARE, usage=list(order.values()), annotations=classed("offline"))
    assert isinstance(picks, tuple) and picks[0].device.uuid == named["offline-2"].uuid


def _online_pick(position: int) -> Pick:
    return Pick(
        position, ContainerDevice(f"GPU-{position}", "Metax-SGPU", 1024, 0), task_class="online"
    )


def test_sgpu_score_for_online_pods() -> None:
    devices = SGPU.node_devices({keys.METAX_SGPU_REGISTER: sgpu_register(0, 0, 0)})
    node = Node("n", devices)
    before = [tasks(offline=2), tasks(online=1, offline=1), DeviceUsage()]
    one = [[_online_pick(0)]]
    assert SGPU.score_node(node, before, one, "binpack") == -100 * 2 * 10000
    assert SGPU.score_node(node, before, one, "spread") == 100 * 2 * 10000
    two = [[_online_pick(1)], [_online_pick(1), _online_pick(2)]]  # a device counts once
    assert SGPU.score_node(node, before, two, "binpack") == (-20 - 2) * 10000
    offline = [[dataclasses.replace(_online_pick(0), task_class="offline")]]
    assert SGPU.score_node(node, before, offline, "binpack") == 0.0
    assert SGPU.score_node(node, before, [[]], "spread") == 0.0


def test_sgpu_score_for_topology_aware_exclusive_pods() -> None:
    devices = SGPU.node_devices({keys.METAX_SGPU_REGISTER: sgpu_register(1, 1, 2, 2)})
    node = Node("n", devices)
    idle = [DeviceUsage()] * 4
    req = ContainerRequest("Metax-SGPU", 2, memreq=1024, mem_pct=0, coresreq=100)
    notes = {keys.METAX_TOPOLOGY_AWARE: "true"}
    picks = fit(SGPU, devices, req, usage=idle, annotations=notes)
    assert isinstance(picks, tuple) and all(p.note == "topology-aware" for p in picks)
    # one linked pair chosen (10), none broken among the idle devices: 10 × 10 − 0
    assert SGPU.score_node(node, idle, [picks], "binpack") == 100 * 10000
    split = [
        dataclasses.replace(picks[0], position=0, device=ContainerDevice("GPU-0", "x", 0, 100)),
        dataclasses.replace(picks[0], position=2, device=ContainerDevice("GPU-2", "x", 0, 100)),
    ]
    # no link inside the chosen set and both idle pairs broken: 0 − (20 − 0 − 0)
    assert SGPU.score_node(node, idle, [split], "spread") == 20 * 10000
    plain = fit(SGPU, devices, req, usage=idle)
    assert isinstance(plain, tuple) and SGPU.score_node(node, idle, [plain], "binpack") == 0.0


def _sgpu_node(name: str, count: int = 1) -> Node:
    devices = SGPU.node_devices({keys.METAX_SGPU_REGISTER: sgpu_register(*[0] * count)})
    return Node(name, tuple(dataclasses.replace(d, uuid=f"{name}-{d.uuid}") for d in devices))


def _sgpu_pod(name: str, app_class: str, policy: str = "binpack") -> PodRequest:
    return PodRequest(
        namespace="ns",
        name=name,
        containers=((SHARE,),),
        options=PodOptions(node_policy=policy),
        annotations={**classed(app_class), keys.METAX_QOS_POLICY: "best-effort"},
    )


@pytest.mark.parametrize("policy", ["binpack", "spread"])
def test_sgpu_online_pod_node_choice_under_either_policy(policy: str) -> None:
    """n1 runs two offline tasks (the busier node: binpack alone would take it), n2 one online
    task: the online pod goes to n2 either way."""
    n1, n2 = _sgpu_node("n1"), _sgpu_node("n2")
    view = ClusterView.of(
        [NodeState.of(n1, [tasks(offline=2)]), NodeState.of(n2, [tasks(online=1)])]
    )
    decision = decide(_sgpu_pod("p", "online", policy), view, {SGPU.key: SGPU})
    assert decision.node == "n2"
    state = view.get("n2")
    assert (
        state is not None
        and decision.score == state.score + (-20 if policy == "binpack" else 20) * 10000
    )


def test_sgpu_usage_rebuilt_from_annotations_matches_the_fit() -> None:
    vendors = {SGPU.key: SGPU}
    nodes = [_sgpu_node("n1", 2), _sgpu_node("n2", 2)]
    view = ClusterView.of(NodeState.of(n) for n in nodes)
    placed = []
    classes = ["online", "offline", "", "online", "offline", "", "online", "offline", "online"]
    for i, app_class in enumerate(classes):
        pod = _sgpu_pod(f"p{i}", app_class, "spread" if i % 2 else "binpack")
        decision = decide(pod, view, vendors)
        assert decision.fit is not None and decision.node is not None, decision.failed_nodes()
        view = commit(view, decision)
        notes = {**pod.annotations, **decision.annotations}
        found = placed_pod(pod.key, decision.node, notes, vendors, 0)
        assert found is not None
        assert found.task_classes == ({SGPU.key: app_class} if app_class else {})
        placed.append(found)
    for node in nodes:
        state = view.get(node.name)
        assert state is not None
        rebuilt, unknown = accounting.node_usage(
            node, [p for p in placed if p.node == node.name], vendors
        )
        assert unknown == () and rebuilt == state.usage
        for usage in rebuilt:  # never classed and unclassed tasks together
            classed_tasks = sum(n for _, n in usage.tasks)
            assert classed_tasks in (0, usage.used)
    assert sum(u.tasks_of("online") for s in view.states() for u in s.usage) == 4


@pytest.mark.parametrize(
    ("annotations", "topology_config", "scores"),
    [
        ({}, False, False),
        ({keys.METAX_APP_CLASS: "offline"}, False, False),
        ({keys.METAX_APP_CLASS: "online"}, False, True),
        ({keys.METAX_TOPOLOGY_AWARE: "true"}, False, True),
        ({}, True, True),
    ],
)
def test_only_online_or_topology_aware_pods_take_the_scored_path(
    annotations: dict[str, str], topology_config: bool, scores: bool
) -> None:
    """Other sGPU pods score 0, so the core keeps its ranked walk for them."""
    vendor = MetaxSgpuVendor(MetaxConfig(sgpu_topology_aware=topology_config))
    request = ContainerRequest("Metax-SGPU", 1, memreq=1024, coresreq=30)
    pod = PodRequest(namespace="ns", name="p", containers=((request,),), annotations=annotations)
    assert vendor.scores(pod) is scores
