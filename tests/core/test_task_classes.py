"""Per-device task classes: `Pick.task_class` while fitting, `Vendor.task_class` when rebuilding,
both landing in `DeviceUsage.tasks` (the core side of MetaX sGPU's online/offline pods).

A toy vendor ``CLASS`` takes the first device with a free slot and labels its pick with the
pod's ``toy/class`` annotation; its `task_class` hook answers the same from the annotations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from hami.api.types import ContainerDevice, PodDevices
from hami.core import accounting
from hami.core.accounting import PlacedPod
from hami.core.cluster import ClusterView, NodeState
from hami.core.decide import commit, decide
from hami.core.fit import NodeFit, fit_pod
from hami.core.model import (
    EMPTY_USAGE,
    ContainerRequest,
    Device,
    DeviceUsage,
    Node,
    PodOptions,
    PodRequest,
    merge_tasks,
)
from hami.core.status import Reason, Unfit
from hami.core.vendor import (
    Admission,
    Candidate,
    FitContext,
    Pick,
    Vendor,
)
from hami.vendors.nvidia import NvidiaVendor

KEY = "CLASS"
NOTE = "toy/class"


@dataclass
class ClassToy(Vendor):
    @property
    def key(self) -> str:
        return KEY

    def admit_container(self, container: Mapping[str, object], where: str) -> Admission:
        return Admission(uses_vendor=False, container=container)

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        return None

    def node_devices(self, annotations: Mapping[str, str]) -> tuple[Device, ...]:
        return ()

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        label = self.task_class(ctx.annotations)
        for cand in candidates:
            if cand.usage.used < cand.device.count:
                used = ContainerDevice(cand.device.uuid, KEY, request.memreq, 0)
                return (Pick(cand.position, used, task_class=label),)
        return Unfit(counts={Reason.CARD_TIME_SLICING_EXHAUSTED: len(candidates)}, total=1)

    def task_class(self, annotations: Mapping[str, str]) -> str:
        return annotations.get(NOTE, "")

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        return {}

    def allocated_devices(self, annotations: Mapping[str, str]) -> PodDevices | None:
        return None


def _device(uuid: str, count: int = 8, index: int = 0) -> Device:
    return Device(
        uuid=uuid, vendor=KEY, type=KEY, count=count, memory=10**6, cores=100, index=index
    )


def _pod(
    *containers: int, task_class: str = "", init_count: int = 0, name: str = "p"
) -> PodRequest:
    """One container per entry: 0 = no request, else that many MiB on one device."""
    return PodRequest(
        namespace="ns",
        name=name,
        containers=tuple(
            (ContainerRequest(KEY, 1, memreq=m, mem_pct=0),) if m else () for m in containers
        ),
        init_count=init_count,
        options=PodOptions(gpu_policy=("binpack",)),
        annotations={NOTE: task_class} if task_class else {},
    )


VENDORS: dict[str, Vendor] = {KEY: ClassToy()}


def test_the_toy_has_task_classes_and_others_not() -> None:
    assert ClassToy.classed and ClassToy().task_class({NOTE: "online"}) == "online"
    assert not NvidiaVendor.classed


def test_usage_without_classes_is_unchanged() -> None:
    assert DeviceUsage(used=1).plus(1, 10, 5) == DeviceUsage(used=2, usedmem=10, usedcores=5)
    assert EMPTY_USAGE.tasks == () and EMPTY_USAGE.tasks_of("online") == 0


def test_plus_and_minus_count_classes() -> None:
    usage = EMPTY_USAGE.plus(1, 0, 0, task_class="online").plus(2, 0, 0, task_class="offline")
    usage = usage.plus(1, 0, 0, task_class="online").plus(1, 0, 0)
    assert usage.used == 5
    assert usage.tasks == (("offline", 2), ("online", 2))  # sorted by class
    assert (usage.tasks_of("online"), usage.tasks_of("offline"), usage.tasks_of("x")) == (2, 2, 0)
    less = usage.minus(DeviceUsage(used=2, tasks=(("offline", 2),)))
    assert less == DeviceUsage(used=3, tasks=(("online", 2),))
    assert less.minus(DeviceUsage(used=9, tasks=(("online", 9),))) == EMPTY_USAGE


def test_merge_tasks() -> None:
    assert merge_tasks((), ()) == ()
    assert merge_tasks((("a", 1),), (("b", 2), ("a", 1))) == (("a", 2), ("b", 2))
    assert merge_tasks((("a", 1), ("b", 2)), (("a", 3),), -1) == (("b", 2),)


def test_collapse_counts_a_classed_pods_collapsed_slots() -> None:
    d0, d1 = ContainerDevice("d0", KEY, 10, 0), ContainerDevice("d1", KEY, 10, 0)
    # init container on d0 and d1, two app containers on d0
    containers = [(d0, d1), (d0,), (d0,)]
    usage = accounting.collapse(containers, 1, classes={"d0": "online", "d1": "online"})
    assert usage["d0"] == DeviceUsage(used=2, usedmem=20, tasks=(("online", 2),))
    assert usage["d1"] == DeviceUsage(used=1, usedmem=10, tasks=(("online", 1),))
    done = accounting.collapse(containers, 1, init_done=True, classes={"d0": "x", "d1": "x"})
    assert set(done) == {"d0"} and done["d0"].tasks == (("x", 2),)
    assert accounting.collapse(containers, 1)["d0"].tasks == ()


def test_fit_labels_usage_and_later_containers_see_it() -> None:
    node = Node("n", (_device("d0", count=3),))
    fit = fit_pod(node, [EMPTY_USAGE], _pod(10, 10, 10, task_class="online", init_count=1), VENDORS)
    assert isinstance(fit, NodeFit)
    assert fit.delta["d0"] == DeviceUsage(used=2, usedmem=20, tasks=(("online", 2),))
    assert fit.task_classes() == {KEY: "online"}
    plain = fit_pod(node, [EMPTY_USAGE], _pod(10), VENDORS)
    assert isinstance(plain, NodeFit) and plain.delta["d0"].tasks == () and not plain.task_classes()


def test_task_classes_from_annotations_only_for_hooked_vendors() -> None:
    vendors: dict[str, Vendor] = {KEY: ClassToy(), "OTHER": NvidiaVendor()}
    notes = {NOTE: "offline"}
    assert accounting.task_classes(notes, vendors, [KEY, "OTHER", "MISSING"]) == {KEY: "offline"}
    assert accounting.task_classes({}, vendors, [KEY]) == {}


def test_rebuilt_usage_takes_the_placed_pods_class_per_vendor() -> None:
    node = Node("n", (_device("d0"), Device("g0", "OTHER", "OTHER", 4, 100, 100)))
    entry, other = ContainerDevice("d0", KEY, 10, 0), ContainerDevice("g0", "OTHER", 10, 0)
    placed = PlacedPod(
        "ns/p", "n", {KEY: ((entry,),), "OTHER": ((other,),)}, task_classes={KEY: "offline"}
    )
    usage, unknown = accounting.node_usage(node, [placed, placed])
    assert unknown == ()
    assert usage[0].tasks == (("offline", 2),)
    assert usage[1].tasks == ()  # the class is per vendor
    released = accounting.release(node, usage, accounting.pod_usage(placed))
    assert released[0] == DeviceUsage(used=1, usedmem=10, tasks=(("offline", 1),))


@st.composite
def _pods(draw: st.DrawFn, name: str) -> PodRequest:
    sizes = draw(st.lists(st.sampled_from([0, 10, 20]), min_size=1, max_size=4))
    return _pod(
        *sizes,
        task_class=draw(st.sampled_from(["", "online", "offline"])),
        init_count=draw(st.integers(0, len(sizes) - 1)),
        name=name,
    )


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_fit_and_rebuild_agree_on_classes(data: st.DataObject) -> None:
    """The usage committed by decisions equals the usage rebuilt from their allocations and
    the pods' annotations through the hook, classes included."""
    nodes = [
        Node(
            f"n{n}", tuple(_device(f"n{n}-d{i}", data.draw(st.integers(1, 4)), i) for i in range(2))
        )
        for n in range(2)
    ]
    view = ClusterView.of(NodeState.of(n) for n in nodes)
    placed: list[PlacedPod] = []
    for i in range(data.draw(st.integers(1, 8))):
        pod = data.draw(_pods(f"p{i}"))
        decision = decide(pod, view, VENDORS)
        view = commit(view, decision)
        if decision.fit is not None and decision.node is not None:
            devices = {KEY: decision.fit.devices(KEY)}
            classes = accounting.task_classes(pod.annotations, VENDORS, devices)
            assert classes == decision.fit.task_classes()
            placed.append(
                PlacedPod(pod.key, decision.node, devices, pod.init_count, task_classes=classes)
            )
    for node in nodes:
        state = view.get(node.name)
        assert state is not None
        mine = [p for p in placed if p.node == node.name]
        rebuilt, _ = accounting.node_usage(node, mine, VENDORS)
        assert rebuilt == state.usage
        for usage in rebuilt:
            assert sum(n for _, n in usage.tasks) <= usage.used
