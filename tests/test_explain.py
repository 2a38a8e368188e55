"""`hami.core.explain`: one test per fit reason of the core, each checking the group and its hint."""

from __future__ import annotations

from dataclasses import replace

from hami.api import keys
from hami.api.types import MigPlacement, MigProfile
from hami.core.cluster import ClusterView
from hami.core.explain import Explanation, explain, main_reason
from hami.core.model import ContainerRequest, DeviceUsage, MigReservation, Node, PodRequest
from hami.core.status import NODE_UNREGISTERED, Reason, Unfit
from hami.core.vendor import QuotaRoom, Vendor
from hami.vendors.cambricon import CambriconVendor
from tests.core.builders import container, dev, node, pod, state, used, vendors, view


def run(p: PodRequest, v: ClusterView, **kw: object) -> Explanation:
    return explain(p, v, vendors(), **kw)  # type: ignore[arg-type]


def only_group(e: Explanation, reason: str) -> str:
    assert not e.fits
    assert [g.reason for g in e.groups] == [reason], e.lines()
    return e.groups[0].hint


def test_memory_names_the_largest_free_slice_and_the_shortfall() -> None:
    n3 = node("node-3", dev("GPU-0", memory=8192), dev("GPU-1", 1, memory=8192))
    v = view(state(n3, used(1, 8000), used(1, 4096)))
    e = run(pod(container(mem=6000)), v)
    hint = only_group(e, Reason.CARD_INSUFFICIENT_MEMORY)
    assert hint == (
        "needs 6000 MiB on one card; the largest free slice is 4096 MiB on node-3/GPU-1 — "
        "free 1904 MiB there or ask for less"
    )
    assert e.summary() == "0/1 nodes fit default/p: 1 × CardInsufficientMemory"
    assert e.nodes[0].text == "2/2 CardInsufficientMemory"


def test_memory_percentage() -> None:
    v = view(state(node("n", dev("g", memory=10000)), used(1, 6000)))
    hint = only_group(run(pod(container(gpumem_percentage=50)), v), "CardInsufficientMemory")
    assert "needs 50% of the card's memory" in hint and "free 1000 MiB" in hint


def test_cores() -> None:
    v = view(state(node("n", dev("g")), used(1, 0, 70)))
    hint = only_group(run(pod(container(mem=100, cores=50)), v), "CardInsufficientCore")
    assert hint.startswith("needs 50% of a card's cores; the most free is 30% on n/g")
    assert "free 20% there" in hint


def test_slots() -> None:
    v = view(state(node("n", dev("g", count=2)), used(2, 100, 10)))
    hint = only_group(run(pod(container(mem=100)), v), "CardTimeSlicingExhausted")
    assert "every task slot is taken on 1 card (2 tasks per card)" in hint


def test_compute_units_exhausted() -> None:
    v = view(state(node("n", dev("g")), used(1, 100, 100)))
    hint = only_group(run(pod(container(mem=100, cores=0)), v), "CardComputeUnitsExhausted")
    assert "gpucores" in hint


def test_exclusive_whole_card_on_a_shared_card() -> None:
    v = view(state(node("n", dev("g")), used(1, 100, 0)))
    hint = only_group(run(pod(container(mem=100, cores=100)), v), "ExclusiveDeviceAllocateConflict")
    assert "a whole card (gpucores 100)" in hint and "0 idle cards" in hint


def test_type_filter() -> None:
    v = view(state(node("n", dev("g", type="NVIDIA Tesla T4"))))
    p = pod(container(mem=100), annotations={keys.USE_GPUTYPE: "A100"})
    hint = only_group(run(p, v), "CardTypeMismatch")
    assert hint == (
        "use-gputype=A100 matches no card here; these nodes have 1× NVIDIA Tesla T4 (default)"
        " — change the filter"
    )


def test_uuid_filter_says_where_the_card_is() -> None:
    v = view(state(node("a", dev("GPU-a"))), state(node("b", dev("GPU-b"))))
    p = pod(container(mem=100), annotations={keys.USE_GPUUUID: "GPU-x"})
    hint = only_group(run(p, v), "CardUuidMismatch")
    assert hint == "use-gpuuuid=GPU-x excludes every card here; no node registers them"


def test_numa() -> None:
    n = node("n", dev("g0", numa=0), dev("g1", 1, numa=1))
    p = pod(container(gpu=2, mem=100), annotations={keys.NUMA_BIND: "true"})
    hint = only_group(run(p, view(state(n))), "NumaNotFit")
    assert "numa-bind needs 2 cards on one NUMA node; the most is 1 on n" in hint


def test_unhealthy_and_cordoned() -> None:
    v = view(
        state(node("sick", dev("g", health=False))), state(node("c", dev("h"), cordoned=["h"]))
    )
    e = run(pod(container(mem=100)), v)
    reasons = {g.reason: g for g in e.groups}
    assert set(reasons) == {"CardNotHealth", "CardCordoned"}
    assert reasons["CardNotHealth"].hint.startswith("1 card reports unhealthy")
    assert "hami.io/device-cordon" in reasons["CardCordoned"].hint


def test_mig_every_placement_taken() -> None:
    small = MigProfile("1g.10gb", 9856, 14, 1, (MigPlacement(0, 1), MigPlacement(1, 1)))
    n = node("h", dev("g", count=7, memory=80000, mode=keys.MODE_MIG, mig_profiles=(small,)))
    taken = tuple(MigReservation("1g.10gb", MigPlacement(i, 1)) for i in (0, 1))
    v = view(state(n, DeviceUsage(used=2, usedmem=19712, usedcores=28, mig=taken)))
    hint = only_group(run(pod(container(mem=1000)), v), "CardMigTopologyInfeasible")
    assert hint == "no MIG instance can be placed on these GPUs — free an instance"


def test_mig_names_the_largest_free_instance() -> None:
    small = MigProfile("1g.10gb", 9856, 14, 1, (MigPlacement(0, 1),))
    big = MigProfile("3g.40gb", 40192, 42, 3, (MigPlacement(0, 4), MigPlacement(4, 4)))
    n = node("h", dev("g", count=7, memory=81559, mode=keys.MODE_MIG, mig_profiles=(small, big)))
    hint = only_group(run(pod(container(mem=50000)), view(state(n))), "CardMigTopologyInfeasible")
    assert hint == (
        "needs a MIG instance with 50000 MiB; the largest free one is 3g.40gb (40192 MiB) on "
        "h/g — free an instance there or ask for less memory"
    )


def test_device_count() -> None:
    v = view(state(node("n", dev("g0"), dev("g1", 1))))
    hint = only_group(run(pod(container(gpu=4, mem=100)), v), "NodeInsufficientDevice")
    assert hint == (
        "asks for 4 NVIDIA cards in one container; the most on one node is 2 (n) — "
        "ask for fewer cards"
    )


def test_partial_fit() -> None:
    v = view(state(node("n", dev("g0"), dev("g1", 1, memory=100))))
    e = run(pod(container(gpu=2, mem=1000)), v)
    assert e.nodes[0].text == "1/2 AllocatedCardsInsufficientRequest, 1/2 CardInsufficientMemory"
    # a tie: the earlier check (memory) is the main reason
    assert [g.reason for g in e.groups] == ["CardInsufficientMemory"]


def test_quota() -> None:
    v = view(state(node("n", dev("g"))))
    quota = {"NVIDIA": QuotaRoom(memory=500)}
    hint = only_group(run(pod(container(mem=1000)), v, quota=quota), "ResourceQuotaNotFit")
    assert hint.startswith("NVIDIA memory: 500 MiB left, the pod asks 1000 MiB")


def test_unregistered_candidates() -> None:
    v = view(state(node("n", dev("g"), cordoned=["g"])))
    e = run(pod(container(mem=100)), v, candidates=["n", "bare-1", "bare-2"])
    assert [(g.reason, g.count) for g in e.groups] == [(NODE_UNREGISTERED, 2), ("CardCordoned", 1)]
    assert "device plugin" in e.groups[0].hint
    assert e.summary() == "0/3 nodes fit default/p: 2 × node unregistered, 1 × CardCordoned"


def test_fits_and_no_devices_and_empty_cluster() -> None:
    v = view(state(node("n", dev("g"))))
    assert run(pod(container(mem=100)), v).summary() == "default/p fits on node n"
    assert not run(pod(container(gpu=None)), v).wants_devices
    empty = run(pod(container(mem=100)), view())
    assert empty.summary().startswith("0/0 nodes: no node has registered devices")
    assert empty.to_dict()["groups"] == []


def test_groups_are_counted_and_sorted_by_size() -> None:
    v = view(
        state(node("a", dev("a0", memory=100))),
        state(node("b", dev("b0", memory=100))),
        state(node("c", dev("c0", count=1)), used(1)),
    )
    e = run(pod(container(mem=1000)), v)
    assert [(g.reason, g.nodes) for g in e.groups] == [
        ("CardInsufficientMemory", ("a", "b")),
        ("CardTimeSlicingExhausted", ("c",)),
    ]
    assert e.lines()[1] == "  2 × CardInsufficientMemory (a, b)"


def test_main_reason_tie_break_and_message() -> None:
    assert main_reason(Unfit.because(NODE_UNREGISTERED)) == NODE_UNREGISTERED
    tie = Unfit(counts={"CardInsufficientCore": 1, "CardCordoned": 1}, total=2)
    assert main_reason(tie) == "CardCordoned"


# --- hints against the whole cluster (issue #18) ------------------------------------------------


def _two_vendors() -> tuple[ClusterView, dict[str, Vendor]]:
    from hami.vendors.hygon import HygonVendor

    gpu = node("gpu-node", dev("g0", memory=40960), dev("g1", 1, memory=16384))
    dcu = node("dcu-node", dev("d0", type="DCU", memory=65536))
    dcu = Node(dcu.name, tuple(replace(d, vendor="DCU") for d in dcu.devices))
    return view(state(gpu), state(dcu)), {**vendors(), "DCU": HygonVendor()}


def test_memory_larger_than_any_card_is_said_so() -> None:
    v, vs = _two_vendors()
    e = explain(pod(container(mem=90000)), v, vs)
    hints = {g.reason: g.hint for g in e.groups}
    assert hints[Reason.CARD_INSUFFICIENT_MEMORY].startswith(
        "no NVIDIA card in the cluster has 90000 MiB; the largest is 40960 MiB"
    )
    assert hints[Reason.NODE_INSUFFICIENT_DEVICE] == (
        "1 node here has no NVIDIA device; NVIDIA is on gpu-node"
    )


def test_nodes_without_the_vendor_are_told_where_it_is() -> None:
    v, vs = _two_vendors()
    request = PodRequest("default", "p", ((ContainerRequest("DCU", 1, memreq=100),),))
    e = explain(request, v, vs)
    assert e.fits and e.node == "dcu-node"
    big = PodRequest("default", "p", ((ContainerRequest("DCU", 3, memreq=100),),))
    hints = " ".join(g.hint for g in explain(big, v, vs).groups)
    assert "asks for 3 DCU cards in one container; the most on one node is 1 (dcu-node)" in hints


def test_a_pod_of_two_vendors_no_node_has_both() -> None:
    v, vs = _two_vendors()
    mixed = PodRequest(
        "default",
        "p",
        ((ContainerRequest("NVIDIA", 1, memreq=100),), (ContainerRequest("DCU", 1, memreq=100),)),
    )
    e = explain(mixed, v, vs)
    assert not e.fits
    hints = " ".join(g.hint for g in e.groups)
    assert "no node has both DCU and NVIDIA (DCU on dcu-node; NVIDIA on gpu-node)" in hints


def test_a_vendor_no_node_has() -> None:
    v, vs = _two_vendors()
    request = PodRequest("default", "p", ((ContainerRequest("MLU", 1, memreq=100),),))
    e = explain(request, v, {**vs, "MLU": CambriconVendor()})
    assert "no node in the cluster has MLU devices" in " ".join(g.hint for g in e.groups)


def test_plurals() -> None:
    from hami.core.explain import plural

    assert (plural(1, "card"), plural(2, "card"), plural(0, "node")) == (
        "1 card",
        "2 cards",
        "0 nodes",
    )
