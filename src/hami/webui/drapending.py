"""Pending DRA pods on the web UI (docs/dra.md): a pod whose ResourceClaims kube-scheduler has
not allocated yet asks for no extender resource, so the extender's explanation says nothing of
it. It is explained from the snapshot's claims and slices as `hami explain` explains it
(:func:`hami.core.dra.explain.explain_pod`), and given a cause for the Pending page's groups from
the same pure pieces: the claim that does not exist yet, the devices its annotations allow
(:func:`~hami.core.dra.explain.eligible`), the capacity it lacks
(:func:`~hami.core.dra.records.why_unallocatable`) and kube-scheduler's reason
(:func:`~hami.core.dra.records.pending_reason`). Pure; no API call: the live source lists the
claims and slices with each snapshot already."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hami.core.dra import explain, records
from hami.k8s import objects
from hami.k8s.api import Manifest
from hami.webui.dradecode import mappings
from hami.webui.snapshot import DraState

NO_CLAIM = "DRA: claim not created yet"
NO_DEVICE = "DRA: no device matches"
NO_CAPACITY = "DRA: not enough free capacity"
SCHEDULER = "DRA: waiting for kube-scheduler"

HINTS = {
    NO_CLAIM: (
        "kube-controller-manager's resource-claim controller creates it from the pod's "
        "ResourceClaimTemplate: check that it runs with DRA on and that the template exists"
    ),
    NO_DEVICE: (
        "no DRA device is published that the pod's use-/nouse- annotations allow: check "
        "`hami dra-plugin` on the nodes labelled hami.io/dra=true, or relax the annotations"
    ),
    NO_CAPACITY: (
        "free memory or cores on a DRA device (pods holding claims there), or ask for less"
    ),
    SCHEDULER: (
        "capacity allows it: kube-scheduler's selectors and constraints decide (use-gputype, "
        "numa-bind, topology-aware); see the pod's events"
    ),
}


@dataclass(frozen=True, slots=True)
class DraWhy:
    """Why a DRA pod is Pending: its cause (the Pending page's group), a one-line summary, a
    hint, and, for one pod's explanation, `hami explain`'s lines (empty on the Pending list)."""

    cause: str
    summary: str
    lines: tuple[str, ...] = ()

    @property
    def hint(self) -> str:
        return HINTS[self.cause]

    def to_dict(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "mode": "dra",
            "cause": self.cause,
            "summary": self.summary,
            "hint": self.hint,
        }
        if self.lines:
            doc["lines"] = list(self.lines)
        return doc


class DraExplainer:
    """What every Pending DRA pod's explanation shares, computed once per page: the devices'
    capacities, what the allocated claims consume of them, the claims by name, and (pods of a
    Job or a burst share them) the devices a set of annotations allows and the reasons a
    request shape cannot be allocated — so a Pending list of many DRA pods parses each
    quantity once, not once per pod."""

    def __init__(self, dra: DraState | None) -> None:
        state = dra if dra is not None else DraState()
        self.slices = state.slices
        self.claims = state.claims
        self.capacity = records.capacities(self.slices)
        self.used = records.usage(records.allocations(self.claims))
        self._named = {(objects.namespace(c), objects.name(c)): c for c in self.claims}
        self._allowed: dict[frozenset[tuple[str, str]], dict[records.DeviceKey, records.Usage]]
        self._allowed = {}
        self._reasons: dict[tuple[object, ...], list[str]] = {}

    def explain(self, pod: Manifest, lines: bool = True) -> DraWhy:
        """The pod's cause and summary; with ``lines``, `hami explain`'s lines for it
        (:func:`hami.core.dra.explain.explain_pod` over every claim and slice)."""
        cause, summary = self._cause(pod)
        if not lines:
            return DraWhy(cause, summary)
        return DraWhy(cause, summary, tuple(explain.explain_pod(pod, self.claims, self.slices)))

    def _capacity(self, annotations: Mapping[str, str]) -> dict[records.DeviceKey, records.Usage]:
        """The capacity of the devices the pod's annotations allow (`explain.eligible`)."""
        key = frozenset(annotations.items())
        found = self._allowed.get(key)
        if found is None:
            allowed = explain.eligible(annotations, self.slices)
            found = {k: v for k, v in self.capacity.items() if k in allowed}
            self._allowed[key] = found
        return found

    def _cause(self, pod: Manifest) -> tuple[str, str]:
        namespace = objects.namespace(pod) or "default"
        made = records.claim_names(pod)
        entries = mappings(objects.spec(pod).get("resourceClaims"))
        found = {
            str(e.get("name")): self._named.get((namespace, made.get(str(e.get("name")), "")))
            for e in entries
        }
        missing = [name for name, claim in found.items() if claim is None]
        if missing:
            return NO_CLAIM, f"claim {', '.join(missing)}: not created yet"
        annotations = objects.annotations(pod)
        capacity = self._capacity(annotations)
        if not capacity:
            return NO_DEVICE, "no published device matches the pod's use-/nouse- annotations"
        reasons = [
            f"{name}: {reason}"
            for name, claim in found.items()
            if claim is not None and not objects.status(claim).get("allocation")
            for reason in self._why(claim, annotations, capacity)
        ]
        if reasons:
            return NO_CAPACITY, "; ".join(reasons)
        said = records.pending_reason(pod)
        if said:
            return SCHEDULER, f"kube-scheduler: {said}"
        return SCHEDULER, "the devices' free capacity allows it; kube-scheduler has not said why"

    def _why(
        self,
        claim: Manifest,
        annotations: Mapping[str, str],
        capacity: Mapping[records.DeviceKey, records.Usage],
    ) -> list[str]:
        """`records.why_unallocatable`, once per request shape and set of allowed devices."""
        key = (frozenset(annotations.items()), tuple(records.claim_requests(claim)))
        found = self._reasons.get(key)
        if found is None:
            found = self._reasons[key] = records.why_unallocatable(claim, capacity, self.used)
        return found
