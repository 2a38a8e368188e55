"""wire-format.md §8: HAMi's own scheduler test scenarios, and the §3.18 policy stories."""

from __future__ import annotations

import pytest

from hami.api import keys
from hami.api.types import MigPlacement, MigProfile
from hami.core.cluster import ClusterView
from hami.core.decide import commit
from hami.core.errors import RequestInvalid
from hami.core.fit import fit_container, fit_pod
from hami.core.model import ContainerRequest, DeviceUsage
from hami.core.status import Unfit
from hami.core.vendor import FitContext, QuotaRoom
from tests.core.builders import (
    chosen,
    config,
    container,
    dev,
    node,
    pod,
    schedule,
    state,
    used,
    vendors,
    view,
)

REQ: dict[str, int] = {"gpu": 1, "mem": 1000, "cores": 30}


def test_1_single_fresh_device() -> None:
    d = schedule(pod(container(**REQ)), view(state(node("n1", dev("uuid1")))))
    assert chosen(d) == [["uuid1"]]
    assert d.fit is not None and d.fit.delta["uuid1"].usedmem == 1000
    assert d.score == 0
    assert d.annotations[keys.NVIDIA_ALLOCATED] == "uuid1,NVIDIA,1000,30:;"


def test_2_single_half_used_device() -> None:
    d = schedule(pod(container(**REQ)), view(state(node("n1", dev("uuid1")), used(5, 4000, 50))))
    assert chosen(d) == [["uuid1"]]
    assert d.score == pytest.approx(15)


def test_3_two_idle_devices_spread_takes_the_last() -> None:
    n = node("n1", dev("uuid1", 0), dev("uuid2", 1))
    d = schedule(pod(container(**REQ)), view(state(n)))
    assert chosen(d) == [["uuid2"]]
    assert d.score == 0


def test_4_spread_prefers_the_idle_device() -> None:
    n = node("n1", dev("uuid1", 0), dev("uuid2", 1))
    d = schedule(pod(container(**REQ)), view(state(n, used(), used(5, 4000, 50))))
    assert chosen(d) == [["uuid1"]]
    assert d.score == pytest.approx(7.5)


@pytest.mark.parametrize(
    ("usage", "score"), [((used(), used()), 0.0), ((used(5, 4000, 50),) * 2, 15.0)]
)
def test_5_two_gpus_in_one_container(usage: tuple[DeviceUsage, ...], score: float) -> None:
    n = node("n1", dev("uuid1", 0), dev("uuid2", 1))
    d = schedule(pod(container(gpu=2, mem=1000, cores=30)), view(state(n, *usage)))
    assert chosen(d) == [["uuid2", "uuid1"]]
    assert d.score == pytest.approx(score)


@pytest.mark.parametrize(("policy", "winner"), [("binpack", "node1"), ("spread", "node2")])
def test_6_node_policy_between_busy_and_idle_node(policy: str, winner: str) -> None:
    busy = state(node("node1", dev("uuid1")), used(5, 4000, 50))
    idle = state(node("node2", dev("uuid2")))
    cfg = config(node_policy=policy)
    d = schedule(pod(container(**REQ), cfg=cfg), view(busy, idle), cfg)
    assert d.node == winner
    assert busy.score == pytest.approx(15)
    assert idle.score == 0


def test_7_spread_across_containers() -> None:
    n = node("n1", dev("uuid1", 0), dev("uuid2", 1))
    p = pod(container("a", mem=8000), container("b", mem=1000))
    assert chosen(schedule(p, view(state(n)))) == [["uuid2"], ["uuid1"]]


def test_8_insufficient_memory_on_every_node() -> None:
    nodes = [state(node(f"n{i}", dev(f"u{i}", memory=50))) for i in (1, 2)]
    d = schedule(pod(container(**REQ)), view(*nodes))
    assert not d.placed
    assert d.failed_nodes() == {
        "n1": "1/1 CardInsufficientMemory",
        "n2": "1/1 CardInsufficientMemory",
    }


def test_9_init_container_is_checked_on_its_own() -> None:
    n = node("n1", dev("uuid1", 0), dev("uuid2", 1))
    usage = (used(1, 7500, 0),) * 2
    p = pod(container("app", mem=100), init=[container("init", mem=4000)])
    d = schedule(p, view(state(n, *usage)))
    assert d.failed_nodes() == {"n1": "2/2 CardInsufficientMemory"}


def test_10_init_and_app_share_a_card_without_adding_up() -> None:
    cfg = config(gpu_policy="binpack")
    n = node("n1", dev("uuid1", 0), dev("uuid2", 1))
    p = pod(container("app", **REQ), init=[container("init", **REQ)], cfg=cfg)
    d = schedule(p, view(state(n)), cfg)
    assert chosen(d) == [["uuid2"], ["uuid2"]]
    assert d.fit is not None
    assert d.fit.delta["uuid2"] == used(1, 1000, 30)


def test_11_slot_alignment_keeps_one_entry_per_container() -> None:
    n = node("n1", dev("uuid1"))
    p = pod(container("app", **REQ), init=[container("i0", gpu=None), container("i1", **REQ)])
    d = schedule(p, view(state(n)))
    assert chosen(d) == [[], ["uuid1"], ["uuid1"]]
    assert d.annotations[keys.NVIDIA_TO_ALLOCATE] == (
        ";uuid1,NVIDIA,1000,30:;uuid1,NVIDIA,1000,30:;"
    )


def test_12_init_cores_too_big() -> None:
    n = node("n1", dev("uuid1", 0), dev("uuid2", 1))
    p = pod(container("app", mem=100, cores=10), init=[container("init", mem=100, cores=30)])
    d = schedule(p, view(state(n, used(1, 0, 80), used(1, 0, 80))))
    assert d.failed_nodes() == {"n1": "2/2 CardInsufficientCore"}


def test_14_fit_reason_matrix() -> None:
    listed = [f"u{i}" for i in range(7)]
    devices = [dev(f"u{i}", i) for i in range(10)]
    usage = [used(10)] * 4 + [used(1, 7500)] * 2 + [used(1, 0, 90)] + [used()] * 3
    annotations = {keys.USE_GPUUUID: ",".join(listed)}
    p = pod(container(gpu=2, mem=1024, cores=20), annotations=annotations)
    d = schedule(p, view(state(node("n1", *devices), *usage)))
    assert d.failed_nodes() == {
        "n1": "1/10 CardInsufficientCore, 2/10 CardInsufficientMemory, "
        "3/10 CardUuidMismatch, 4/10 CardTimeSlicingExhausted"
    }


def test_15_exclusive_conflict() -> None:
    d = schedule(
        pod(container(cores=100, mem=10)), view(state(node("n1", dev("u")), used(1, 100, 0)))
    )
    assert d.failed_nodes() == {"n1": "1/1 ExclusiveDeviceAllocateConflict"}


def test_15_compute_units_exhausted() -> None:
    d = schedule(
        pod(container(cores=0, mem=10)), view(state(node("n1", dev("u")), used(1, 100, 100)))
    )
    assert d.failed_nodes() == {"n1": "1/1 CardComputeUnitsExhausted"}


def test_15_cores_over_100_are_clamped_in_fit() -> None:
    n = node("n1", dev("u", cores=4))
    request = ContainerRequest(vendor="NVIDIA", nums=1, memreq=10, coresreq=200)
    result = fit_container(n, (used(),), (request,), pod(container()), vendors(), _contexts())
    assert isinstance(result, Unfit) and result.text() == "1/1 CardInsufficientCore"


def test_15_cores_over_100_are_refused_at_parse_time() -> None:
    with pytest.raises(RequestInvalid, match=r"container c: hami.io/gpucores: 150 is out of range"):
        pod(container(cores=150))


def test_16_mig_placement_infeasible_for_second_instance() -> None:
    profile = MigProfile("1g.test", 2048, 14, 1, (MigPlacement(0, 1),))
    n = node("n1", dev("g", count=7, mode=keys.MODE_MIG, mig_profiles=(profile,)))
    d = schedule(pod(container(gpu=2, mem=1024)), view(state(n)))
    assert d.failed_nodes() == {
        "n1": "1/1 AllocatedCardsInsufficientRequest, 1/1 CardMigTopologyInfeasible"
    }


def test_16_mig_instances_are_reserved_and_annotated() -> None:
    profiles = (
        MigProfile("1g.10gb", 9984, 14, 1, tuple(MigPlacement(i, 1) for i in range(7))),
        MigProfile("3g.40gb", 40000, 42, 3, (MigPlacement(0, 4), MigPlacement(4, 4))),
    )
    n = node("n1", dev("g", count=7, memory=80000, mode=keys.MODE_MIG, mig_profiles=profiles))
    d = schedule(
        pod(container(gpu=2, mem=9000), annotations={keys.VGPU_MODE: "mig"}), view(state(n))
    )
    assert chosen(d) == [["g", "g"]]
    assert d.annotations[keys.NVIDIA_ALLOCATED] == "g,NVIDIA,9984,14:g,NVIDIA,9984,14:;"
    assert d.annotations[keys.MIG_ALLOCATIONS] == (
        '[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"g","profile":"1g.10gb",'
        '"placement":{"start":6,"size":1}},{"containerIndex":0,"deviceIndex":1,"gpuUUID":"g",'
        '"profile":"1g.10gb","placement":{"start":5,"size":1}}]'
    )


def test_17_numa_bind_refuses_devices_on_two_numa_nodes() -> None:
    n = node("n1", dev("u0", 0, numa=0), dev("u1", 1, numa=1))
    annotations = {keys.NUMA_BIND: "true", keys.USE_GPUTYPE: "NVIDIA"}
    d = schedule(pod(container(gpu=2, mem=100), annotations=annotations), view(state(n)))
    assert d.failed_nodes() == {"n1": "1/2 AllocatedCardsInsufficientRequest, 1/2 NumaNotFit"}


def test_17_numa_bind_takes_devices_of_one_numa_node() -> None:
    n = node("n1", dev("u0", 0, numa=0), dev("u1", 1, numa=1), dev("u2", 2, numa=1))
    d = schedule(pod(container(gpu=2, mem=100), annotations={keys.NUMA_BIND: "1"}), view(state(n)))
    assert sorted(chosen(d)[0]) == ["u1", "u2"]


def test_18_node_with_too_few_devices() -> None:
    d = schedule(pod(container(gpu=2, mem=100)), view(state(node("n1", dev("u")))))
    assert d.failed_nodes() == {"n1": "NodeInsufficientDevice"}


def test_18_unknown_device_type() -> None:
    request = ContainerRequest(vendor="test", nums=1, memreq=10)
    result = fit_container(
        node("n1", dev("u")), (used(),), (request,), pod(container()), vendors(), {}
    )
    assert isinstance(result, Unfit) and result.text() == "Device type not found"


def _weights_node() -> object:
    a = dev("A", 0, memory=100)
    b = dev("B", 1, memory=100)
    return state(node("n1", a, b), used(1, 10, 90), used(7, 20, 10))


@pytest.mark.parametrize(
    ("policy", "weights", "winner"),
    [
        ("binpack", None, "A"),
        ("binpack", "slot=1,core=1,memory=3", "B"),
        ("topology-aware", None, "B"),
        ("topology-aware", "slot=1,core=1,memory=3", "A"),
    ],
)
@pytest.mark.parametrize("as_init", [False, True])
def test_19_scoring_weights(policy: str, weights: str | None, winner: str, as_init: bool) -> None:
    annotations = {keys.GPU_SCHEDULER_POLICY: policy}
    if weights:
        annotations[keys.DEVICE_SCORING_WEIGHTS] = weights
    c = container(gpu=1, gpumem_percentage=40)
    p = (
        pod(container("app", gpu=None), init=[c], annotations=annotations)
        if as_init
        else pod(c, annotations=annotations)
    )
    d = schedule(p, view(_weights_node()))  # type: ignore[arg-type]
    assert [u for entry in chosen(d) for u in entry] == [winner]


def test_19_negative_weight_is_refused() -> None:
    annotations = {keys.DEVICE_SCORING_WEIGHTS: "slot=1,core=-1,memory=1"}
    with pytest.raises(RequestInvalid, match='"core" weight must not be negative'):
        pod(container(), annotations=annotations)


def _pairs(uuids: str, strong: dict[frozenset[str], int]) -> dict[str, dict[str, int]]:
    return {a: {b: strong.get(frozenset((a, b)), 1) for b in uuids if b != a} for a in uuids}


def test_20_topology_aware_picks_the_best_connected_set() -> None:
    pairs = _pairs("abcdef", {frozenset("af"): 100, frozenset("cf"): 100})
    devices = [dev(u, i, pair_scores=pairs[u]) for i, u in enumerate("abcdef")]
    p = pod(container(gpu=3, mem=100), annotations={keys.GPU_SCHEDULER_POLICY: "topology-aware"})
    assert sorted(chosen(schedule(p, view(state(node("n1", *devices)))))[0]) == ["a", "c", "f"]


def test_20_topology_aware_single_gpu_keeps_the_strong_group_free() -> None:
    strong = {frozenset((a, b)): 100 for a in "abcde" for b in "abcde" if a != b}
    pairs = _pairs("abcdef", strong)
    devices = [dev(u, i, pair_scores=pairs[u]) for i, u in enumerate("abcdef")]
    p = pod(container(gpu=1, mem=100), annotations={keys.GPU_SCHEDULER_POLICY: "topology-aware"})
    assert chosen(schedule(p, view(state(node("n1", *devices))))) == [["f"]]


def _filter_cluster() -> ClusterView:
    n1 = state(node("node1", dev("device1", 0), dev("device2", 1)), used(1, 2000, 25), used())
    n2 = state(node("node2", dev("device3", 0), dev("device4", 1)), used(), used(1, 6000, 75))
    return view(n1, n2)


@pytest.mark.parametrize(
    ("node_policy", "gpu_policy", "where"),
    [
        ("binpack", "binpack", ("node2", "device4")),
        ("binpack", "spread", ("node2", "device3")),
        ("spread", "binpack", ("node1", "device1")),
        ("spread", "spread", ("node1", "device2")),
    ],
)
def test_21_live_filter_policies(node_policy: str, gpu_policy: str, where: tuple[str, str]) -> None:
    annotations = {keys.NODE_SCHEDULER_POLICY: node_policy, keys.GPU_SCHEDULER_POLICY: gpu_policy}
    d = schedule(
        pod(container(gpu=1, mem=1000, cores=20), annotations=annotations), _filter_cluster()
    )
    assert (d.node, chosen(d)[0][0]) == where
    assert where[1] in d.annotations[keys.NVIDIA_ALLOCATED]


def test_21_init_container_needs_the_bigger_card() -> None:
    annotations = {keys.NODE_SCHEDULER_POLICY: "binpack", keys.GPU_SCHEDULER_POLICY: "binpack"}
    p = pod(container("app", mem=4000), init=[container("init", mem=5000)], annotations=annotations)
    d = schedule(p, _filter_cluster())
    assert (d.node, chosen(d)) == ("node2", [["device3"], ["device3"]])


def _quota_node() -> object:
    devices = [dev(f"q{i}", i, memory=m) for i, m in enumerate((2000, 8000, 4000, 6000))]
    return view(state(node("n1", *devices)))


def test_22_quota_allows_exactly_the_limit() -> None:
    quota = {"NVIDIA": QuotaRoom(memory=4000, cores=200)}
    d = schedule(pod(container(gpu=2, mem=2000, cores=100)), _quota_node(), quota=quota)  # type: ignore[arg-type]
    assert d.placed


def test_22_quota_refuses_the_second_device() -> None:
    quota = {"NVIDIA": QuotaRoom(memory=4000, cores=200)}
    d = schedule(pod(container(gpu=2, mem=3000, cores=60)), _quota_node(), quota=quota)  # type: ignore[arg-type]
    assert d.failed_nodes() == {
        "n1": "1/4 AllocatedCardsInsufficientRequest, 3/4 ResourceQuotaNotFit"
    }


@pytest.mark.parametrize(("room", "expect"), [(2000, "q0"), (1500, None)])
def test_22_quota_with_whole_card_memory(room: int, expect: str | None) -> None:
    quota = {"NVIDIA": QuotaRoom(memory=room, cores=200)}
    d = schedule(pod(container(gpu=1)), _quota_node(), quota=quota)  # type: ignore[arg-type]
    if expect:
        assert chosen(d) == [[expect]]
    else:
        assert d.failed_nodes() == {"n1": "4/4 ResourceQuotaNotFit"}


def test_bare_gpu_request_is_exclusive_after_admission() -> None:
    p = pod(container(gpu=1), admit=True)
    assert p.containers[0][0].coresreq == 100
    assert p.containers[0][0].mem_pct == 100
    shared = pod(container(gpu=1, mem=1000), admit=True)
    assert shared.containers[0][0].coresreq == 0


@pytest.mark.parametrize(("policy", "same"), [("binpack", True), ("spread", False)])
def test_story_node_policy(policy: str, same: bool) -> None:
    cfg = config(node_policy=policy)
    v = view(*(state(node(f"n{i}", *(dev(f"n{i}-g{j}", j) for j in range(4)))) for i in (1, 2)))
    placed = []
    for name in ("a", "b"):
        d = schedule(pod(container(gpu=1, mem=1000, cores=10), name=name, cfg=cfg), v, cfg)
        placed.append(d.node)
        v = commit(v, d)
    assert (placed[0] == placed[1]) is same


@pytest.mark.parametrize(("policy", "same"), [("binpack", True), ("spread", False)])
def test_story_gpu_policy(policy: str, same: bool) -> None:
    cfg = config(gpu_policy=policy)
    v = view(state(node("n1", *(dev(f"g{j}", j) for j in range(4)))))
    cards = []
    for name in ("a", "b"):
        d = schedule(
            pod(container(gpu=1, gpumem_percentage=20, cores=20), name=name, cfg=cfg), v, cfg
        )
        cards.append(chosen(d)[0][0])
        v = commit(v, d)
    assert (cards[0] == cards[1]) is same


def test_fit_pod_reports_every_container_entry() -> None:
    n = node("n1", dev("u0", 0), dev("u1", 1))
    result = fit_pod(
        n, (used(), used()), pod(container("a", **REQ), container("b", gpu=None)), vendors()
    )
    assert not isinstance(result, Unfit)
    assert [len(c) for c in result.devices("NVIDIA")] == [1, 0]


def _contexts() -> dict[str, FitContext]:
    return {"NVIDIA": FitContext()}


def test_candidates_restrict_the_search_and_unknown_names_are_unregistered() -> None:
    from hami.core.decide import decide

    busy = state(node("node1", dev("uuid1")), used(5, 4000, 50))
    idle = state(node("node2", dev("uuid2")))
    d = decide(pod(container(**REQ)), view(busy, idle), vendors(), candidates=["node2", "ghost"])
    assert d.node == "node2"
    assert d.failed_nodes() == {"ghost": "node unregistered"}
    none = decide(pod(container(**REQ)), view(busy, idle), vendors(), candidates=["ghost"])
    assert not none.placed and none.failed_nodes() == {"ghost": "node unregistered"}


def test_pod_without_device_requests_is_left_alone() -> None:
    d = schedule(pod(container(gpu=None)), view(state(node("n1", dev("u")))))
    assert not d.wants_devices and not d.placed and not d.failed
