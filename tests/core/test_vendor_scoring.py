"""Vendor node scores (HAMi's non-zero ScoreNode) and decision-time stamps in `decide`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from hami.core.cluster import ClusterView, NodeState
from hami.core.decide import decide
from hami.core.model import ContainerRequest, Device, DeviceUsage, Node, PodOptions, PodRequest
from hami.core.vendor import Pick, Stamp, Vendor
from hami.vendors.hygon import HygonVendor
from hami.vendors.nvidia import NvidiaVendor


@dataclass(frozen=True, slots=True)
class Favouring(HygonVendor):
    """A DCU vendor that adds a fixed score per node name and stamps the time and node."""

    bonus: Mapping[str, float] = None  # type: ignore[assignment]

    def score_node(
        self,
        node: Node,
        before: Sequence[DeviceUsage],
        picks: Sequence[Sequence[Pick]],
        policy: str,
    ) -> float:
        assert picks and all(p for p in picks)
        return self.bonus.get(node.name, 0.0)

    def stamps(self) -> Mapping[str, Stamp]:
        return {"x/seconds": "unix-seconds", "x/nanos": "unix-nanos", "x/node": "node-name"}


def dcu_node(name: str, used: int = 0) -> NodeState:
    device = Device(uuid=f"{name}-dcu", vendor="DCU", type="DCU", count=4, memory=1000, cores=100)
    return NodeState.of(Node(name, (device,)), [DeviceUsage(used=used, usedmem=used * 100)])


def dcu_pod(policy: str = "binpack") -> PodRequest:
    request = ContainerRequest("DCU", 1, memreq=100, mem_pct=0, coresreq=0)
    return PodRequest("default", "p", ((request,),), options=PodOptions(node_policy=policy))


def vendors(bonus: Mapping[str, float]) -> dict[str, Vendor]:
    return {"DCU": Favouring(bonus=bonus), "NVIDIA": NvidiaVendor()}


def test_overridden_hooks_are_detected() -> None:
    assert Favouring.scoring and Favouring(bonus={}).stamps()
    assert not NvidiaVendor.scoring and not HygonVendor.scoring
    assert not NvidiaVendor().stamps()


def test_vendor_score_overrides_the_default_ranking_under_binpack() -> None:
    view = ClusterView.of([dcu_node("busy", used=2), dcu_node("idle")])
    plain = decide(dcu_pod(), view, {"DCU": HygonVendor()})
    assert plain.node == "busy"  # binpack: the most used node
    scored = decide(dcu_pod(), view, vendors({"idle": 1000.0}))
    assert scored.node == "idle"
    assert scored.score == 1000.0


def test_spread_prefers_the_lowest_total() -> None:
    view = ClusterView.of([dcu_node("a"), dcu_node("b")])
    decision = decide(dcu_pod("spread"), view, vendors({"a": 5.0}))
    assert decision.node == "b"


def test_unfit_nodes_are_reported_on_the_scored_path() -> None:
    full = Device(uuid="f-dcu", vendor="DCU", type="DCU", count=1, memory=1000, cores=100)
    view = ClusterView.of([NodeState.of(Node("full", (full,)), [DeviceUsage(used=1)])])
    decision = decide(dcu_pod(), view, vendors({}))
    assert not decision.placed
    assert "full" in decision.failed_nodes()


def test_stamps_are_written_when_recorded() -> None:
    view = ClusterView.of([dcu_node("a")])
    decision = decide(dcu_pod(), view, vendors({}))
    notes = decision.annotations_at(datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC))
    assert notes["x/seconds"] == "1767323045"
    assert notes["x/nanos"] == "1767323045123456000"
    assert notes["x/node"] == "a"
    assert "x/seconds" not in decision.annotations
