"""One scheduling decision: which node and which devices a pod gets (wire-format.md §3.3)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from hami.api import annotations as codec
from hami.api import keys
from hami.core import accounting
from hami.core.cluster import ClusterView, NodeState
from hami.core.fit import NodeFit, fit_pod
from hami.core.model import PodRequest
from hami.core.policy import node_preference
from hami.core.status import NODE_UNREGISTERED, Unfit
from hami.core.vendor import QuotaRoom, Stamp, Vendor


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a pod goes, or why it goes nowhere."""

    pod: str
    node: str | None = None
    fit: NodeFit | None = None
    score: float | None = None
    failed: Mapping[str, Unfit] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    wants_devices: bool = True  # False: the pod asks for no device; the scheduler leaves it be
    stamps: Mapping[str, Stamp] = field(default_factory=dict)  # written by annotations_at

    @property
    def placed(self) -> bool:
        return self.node is not None

    def failed_nodes(self) -> dict[str, str]:
        """HAMi's `failedNodes` map: node → reason text."""
        return {name: unfit.text() for name, unfit in sorted(self.failed.items())}

    def annotations_at(self, now: datetime) -> dict[str, str]:
        """Every annotation the scheduler writes for this decision, `hami.io/vgpu-time` included."""
        if not self.placed:
            return {}
        stamped = {key: _stamp(kind, now, self.node or "") for key, kind in self.stamps.items()}
        return {**self.annotations, **stamped, keys.VGPU_TIME: codec.unix_seconds(now)}


def _stamp(kind: Stamp, now: datetime, node: str) -> str:
    if kind == "unix-seconds":
        return codec.unix_seconds(now)
    if kind == "unix-nanos":
        return codec.unix_nanos(now)
    return node


def decide(
    pod: PodRequest,
    view: ClusterView,
    vendors: Mapping[str, Vendor],
    candidates: Collection[str] | None = None,
    quota: Mapping[str, QuotaRoom] | None = None,
) -> Decision:
    """Walk the nodes best first under the pod's node policy; the first that fits wins.

    Nodes a summary rules out are skipped without a full fit; their reasons are worked out only
    when no node fits at all, so a decision costs in proportion to the nodes it has to try.
    """
    if not pod.wants_devices:
        return Decision(pod=pod.key, wants_devices=False)
    failed: dict[str, Unfit] = {}
    among: frozenset[str] | None = None
    if candidates is not None:
        wanted = candidates if isinstance(candidates, frozenset) else frozenset(candidates)
        missing = view.missing(wanted)
        for name in sorted(missing):
            failed[name] = Unfit.because(NODE_UNREGISTERED)
        if len(wanted) - len(missing) < len(view):
            among = wanted  # a true subset: filter; otherwise every node is a candidate
    highest_first = node_preference(pod.options.node_policy) > 0
    scorers = _scorers(pod, vendors)
    if scorers:
        return _decide_scored(pod, view, vendors, scorers, among, failed, quota)
    skipped: list[NodeState] = []
    for state in view.ranked(highest_first, among):
        if not state.may_fit(pod.containers):
            skipped.append(state)
            continue
        result = fit_pod(state.node, state.usage, pod, vendors, quota)
        if isinstance(result, NodeFit):
            return _placed(pod, state, result, vendors, failed)
        failed[state.node.name] = result
    for state in skipped:
        result = fit_pod(state.node, state.usage, pod, vendors, quota)
        if isinstance(result, NodeFit):  # the summary is a necessary condition only
            return _placed(pod, state, result, vendors, failed)
        failed[state.node.name] = result
    return Decision(pod=pod.key, failed=failed)


def _scorers(pod: PodRequest, vendors: Mapping[str, Vendor]) -> dict[str, Vendor]:
    """The pod's vendors whose node score depends on the allocation."""
    found: dict[str, Vendor] = {}
    for key in pod.vendors():
        vendor = vendors.get(key)
        if vendor is not None and vendor.scoring and vendor.scores(pod):
            found[key] = vendor
    return found


def _decide_scored(
    pod: PodRequest,
    view: ClusterView,
    vendors: Mapping[str, Vendor],
    scorers: Mapping[str, Vendor],
    among: frozenset[str] | None,
    failed: dict[str, Unfit],
    quota: Mapping[str, QuotaRoom] | None,
) -> Decision:
    """Fit every node that may fit and keep the best total score (default + vendor scores):
    highest under binpack, lowest under spread; ties go to the node ranked first."""
    sign = node_preference(pod.options.node_policy)
    ranked = list(view.ranked(sign > 0, among))
    hopeful = [s for s in ranked if s.may_fit(pod.containers)]
    best = _best_scored(pod, hopeful, vendors, scorers, failed, quota, sign)
    if best is None:  # the summary is a necessary condition only
        others = [s for s in ranked if not s.may_fit(pod.containers)]
        best = _best_scored(pod, others, vendors, scorers, failed, quota, sign)
    if best is None:
        return Decision(pod=pod.key, failed=failed)
    total, state, result = best
    return _placed(pod, state, result, vendors, failed, total)


def _best_scored(
    pod: PodRequest,
    states: Sequence[NodeState],
    vendors: Mapping[str, Vendor],
    scorers: Mapping[str, Vendor],
    failed: dict[str, Unfit],
    quota: Mapping[str, QuotaRoom] | None,
    sign: int,
) -> tuple[float, NodeState, NodeFit] | None:
    best: tuple[float, NodeState, NodeFit] | None = None
    for state in states:
        result = fit_pod(state.node, state.usage, pod, vendors, quota)
        if isinstance(result, Unfit):
            failed[state.node.name] = result
            continue
        total = state.score + _vendor_score(state, result, scorers, pod.options.node_policy)
        if best is None or sign * total > sign * best[0]:
            best = (total, state, result)
    return best


def _vendor_score(
    state: NodeState, fit: NodeFit, scorers: Mapping[str, Vendor], policy: str
) -> float:
    return sum(
        vendor.score_node(state.node, state.usage, fit.picks.get(key, ()), policy)
        for key, vendor in scorers.items()
    )


def _placed(
    pod: PodRequest,
    state: NodeState,
    fit: NodeFit,
    vendors: Mapping[str, Vendor],
    failed: Mapping[str, Unfit],
    score: float | None = None,
) -> Decision:
    annotations: dict[str, str] = {keys.VGPU_NODE: state.node.name}
    stamps: dict[str, Stamp] = {}
    for vendor_key, picks in fit.picks.items():
        vendor = vendors[vendor_key]
        devices = fit.devices(vendor_key)
        annotations.update(vendor.named_pod_annotations(devices, picks, pod.container_names))
        stamps.update(vendor.stamps())
    return Decision(
        pod=pod.key,
        node=state.node.name,
        fit=fit,
        score=state.score if score is None else score,
        failed=dict(failed),
        annotations=annotations,
        stamps=stamps,
    )


def commit(view: ClusterView, decision: Decision) -> ClusterView:
    """The view after the decided pod's usage is added to its node."""
    if decision.fit is None or decision.node is None:
        return view
    state = view.get(decision.node)
    assert state is not None
    usage = accounting.apply(state.node, state.usage, decision.fit.delta)
    return view.with_usage(decision.node, usage)
