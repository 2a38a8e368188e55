"""One scheduling decision: which node and which devices a pod gets (wire-format.md §3.3)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
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
from hami.core.vendor import QuotaRoom, Vendor


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
        return {**self.annotations, keys.VGPU_TIME: codec.unix_seconds(now)}


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


def _placed(
    pod: PodRequest,
    state: NodeState,
    fit: NodeFit,
    vendors: Mapping[str, Vendor],
    failed: Mapping[str, Unfit],
) -> Decision:
    annotations: dict[str, str] = {keys.VGPU_NODE: state.node.name}
    for vendor_key, picks in fit.picks.items():
        annotations.update(vendors[vendor_key].pod_annotations(fit.devices(vendor_key), picks))
    return Decision(
        pod=pod.key,
        node=state.node.name,
        fit=fit,
        score=state.score,
        failed=dict(failed),
        annotations=annotations,
    )


def commit(view: ClusterView, decision: Decision) -> ClusterView:
    """The view after the decided pod's usage is added to its node."""
    if decision.fit is None or decision.node is None:
        return view
    state = view.get(decision.node)
    assert state is not None
    usage = accounting.apply(state.node, state.usage, decision.fit.delta)
    return view.with_usage(decision.node, usage)
