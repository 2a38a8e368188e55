"""Multi-slot picks and earlier picks: the two core hooks (`Pick.slots` + `Vendor.slots`,
`FitContext.earlier`).

A toy vendor ``SLOT`` takes ``memreq // 1000`` slots per pick and records ``1000 × slots`` MiB,
so its `Vendor.slots` can recover the count from an annotation entry, as Enflame DRS does
from its profile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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
)
from hami.core.status import Reason, Unfit
from hami.core.vendor import Admission, Candidate, FitContext, Pick, Vendor

KEY = "SLOT"
UNIT = 1000  # MiB recorded per slot


@dataclass
class SlotToy(Vendor):
    """A vendor whose pick takes ``request.memreq // UNIT`` slots of one device."""

    seen: list[tuple[Pick, ...]] = field(default_factory=list)  # ctx.earlier of each fit

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
        self.seen.append(ctx.earlier)
        k = request.memreq // UNIT
        for cand in candidates:
            if cand.device.count - cand.usage.used >= k:
                used = ContainerDevice(cand.device.uuid, KEY, k * UNIT, 0)
                return (Pick(cand.position, used, slots=k),)
        return Unfit(counts={Reason.CARD_TIME_SLICING_EXHAUSTED: len(candidates)}, total=1)

    def slots(self, device: Device, used: ContainerDevice) -> int:
        return used.usedmem // UNIT

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        return {}

    def allocated_devices(self, annotations: Mapping[str, str]) -> PodDevices | None:
        return None


def _device(uuid: str, count: int, index: int = 0) -> Device:
    return Device(
        uuid=uuid, vendor=KEY, type=KEY, count=count, memory=10**6, cores=100, index=index
    )


def _ask(slots: int) -> tuple[ContainerRequest, ...]:
    return (ContainerRequest(KEY, 1, memreq=slots * UNIT, mem_pct=0),)


def _pod(*slots: int, init_count: int = 0, policy: str = "binpack") -> PodRequest:
    return PodRequest(
        namespace="ns",
        name="p",
        containers=tuple(_ask(k) if k else () for k in slots),
        init_count=init_count,
        options=PodOptions(gpu_policy=(policy,)),
    )


def _vendors(toy: SlotToy | None = None) -> dict[str, Vendor]:
    return {KEY: toy or SlotToy()}


def test_the_toy_is_a_slot_vendor() -> None:
    assert SlotToy.slotted and not Vendor.slotted


def test_app_slots_add_and_init_slots_peak() -> None:
    node = Node("n", (_device("d0", 8),))
    fit = fit_pod(node, [EMPTY_USAGE], _pod(3, 2, 2, init_count=1), _vendors())
    assert isinstance(fit, NodeFit)
    assert fit.delta == {"d0": DeviceUsage(used=4, usedmem=4 * UNIT)}
    peak = fit_pod(node, [EMPTY_USAGE], _pod(5, 1, init_count=1), _vendors())
    assert isinstance(peak, NodeFit) and peak.delta["d0"].used == 5


def test_a_later_app_container_sees_the_slots_taken_before_it() -> None:
    node = Node("n", (_device("d0", 4),))
    unfit = fit_pod(node, [EMPTY_USAGE], _pod(3, 2), _vendors())
    assert isinstance(unfit, Unfit)
    # an init container does not add to the app containers' usage
    fits = fit_pod(node, [EMPTY_USAGE], _pod(3, 2, 2, init_count=1), _vendors())
    assert isinstance(fits, NodeFit) and fits.delta["d0"].used == 4


def test_earlier_holds_this_vendors_picks_of_earlier_containers_init_included() -> None:
    toy = SlotToy()
    node = Node("n", (_device("d0", 8), _device("d1", 8, 1)))
    fit = fit_pod(node, [EMPTY_USAGE] * 2, _pod(1, 0, 2, 3, init_count=2), _vendors(toy))
    assert isinstance(fit, NodeFit)
    first, third, _ = (c[0] for c in fit.picks[KEY] if c)
    assert toy.seen == [(), (first,), (first, third)]


def test_usage_rebuilt_without_the_hook_takes_one_slot_per_entry() -> None:
    node = Node("n", (_device("d0", 8),))
    entry = ContainerDevice("d0", KEY, 3 * UNIT, 0)
    placed = PlacedPod(key="ns/p", node="n", devices={KEY: ((entry,),)})
    assert accounting.node_usage(node, [placed])[0][0].used == 1
    assert accounting.node_usage(node, [placed], _vendors())[0][0].used == 3
    # vendors without the hook, or entries on unknown devices, take one slot
    assert accounting.node_usage(node, [placed], {"OTHER": SlotToy()})[0][0].used == 1


@st.composite
def _pods(draw: st.DrawFn, name: str) -> PodRequest:
    sizes = draw(st.lists(st.integers(0, 5), min_size=1, max_size=4))
    pod = _pod(
        *sizes,
        init_count=draw(st.integers(0, len(sizes) - 1)),
        policy=draw(st.sampled_from(["binpack", "spread"])),
    )
    return PodRequest(
        namespace=pod.namespace,
        name=name,
        containers=pod.containers,
        init_count=pod.init_count,
        options=pod.options,
    )


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_fit_and_rebuild_agree_and_never_overcommit(data: st.DataObject) -> None:
    """Whatever the pods: the usage committed by decisions equals the usage rebuilt from their
    allocations through the hook, and no device's count is exceeded."""
    nodes = [
        Node(
            f"n{n}",
            tuple(
                _device(f"n{n}-d{i}", data.draw(st.integers(1, 8)), i)
                for i in range(data.draw(st.integers(1, 3)))
            ),
        )
        for n in range(data.draw(st.integers(1, 3)))
    ]
    view = ClusterView.of(NodeState.of(n) for n in nodes)
    vendors = _vendors()
    placed: list[PlacedPod] = []
    for i in range(data.draw(st.integers(1, 8))):
        pod = data.draw(_pods(f"p{i}"))
        decision = decide(pod, view, vendors)
        view = commit(view, decision)
        if decision.fit is not None and decision.node is not None:
            devices = {KEY: decision.fit.devices(KEY)}
            placed.append(PlacedPod(pod.key, decision.node, devices, pod.init_count))
    for node in nodes:
        state = view.get(node.name)
        assert state is not None
        rebuilt, unknown = accounting.node_usage(
            node, [p for p in placed if p.node == node.name], vendors
        )
        assert unknown == ()
        assert rebuilt == state.usage
        for device, usage in zip(node.devices, state.usage, strict=True):
            assert usage.used <= device.count
