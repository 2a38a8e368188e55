"""The scheduler's picture of the cluster, kept current by Node and Pod watch events.

* Nodes: each vendor's registration decoded once per change; a node whose registration is
  malformed is left out (one log line and one `RegistrationInvalid` action per bad value); a
  vendor whose handshake says its plugin is gone loses its devices.
* Pods: usage is rebuilt from the `…-devices-allocated` annotations of every pod that carries
  `hami.io/vgpu-node`, so a restarted scheduler loses nothing.
* Filter decisions are *assumed* before their annotation patch is sent, so a concurrent filter
  sees the capacity as taken; watch events older than the patch do not undo the assumption,
  and a failed patch is forgotten (the pod's earlier decision, if any, counts again).

The rule for allocations (docs/scheduler.md, "Stale allocations"): a pod that is not finished
and carries `hami.io/vgpu-node` counts exactly what its allocation annotations say, bound or
not — a live cache and a freshly started one count the same pods — unless it was never bound
and its decision (`hami.io/vgpu-time`) is older than ``decision_ttl``: kube-scheduler retries an
unbound pod long before, so such a decision is abandoned (or was never kube-scheduler's) and
`/bind` refuses it; `expire` applies that without waiting for a watch event. The only differences are in
flight and bounded by one API write: a new decision counts from the moment it is made until its
patch lands (or fails: then the old one counts again); a decision the scheduler drops (the pod
fits nowhere any more) stops counting at once and its `hami.io/vgpu-node` is removed from the
pod by the filter (`drop` / `dropped` / `undrop`). Watch events never move a pod backwards: an
event older than the last one applied to that pod is ignored. `audit` compares the cache with
a fresh list of pods and repairs what differs (`hami.scheduler.selfcheck`).

Everything here is synchronous and single-threaded (one asyncio loop): a decision and its
assumption happen with no await in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hami.api import keys
from hami.api.errors import WireFormatError
from hami.core import accounting
from hami.core.accounting import PlacedPod, placed_pod
from hami.core.cluster import ClusterView, NodeState
from hami.core.dra.names import is_dra_node
from hami.core.model import Node
from hami.core.nodes import node_from_manifest
from hami.core.vendor import Vendor, lock_specs
from hami.k8s import objects
from hami.k8s.api import Manifest
from hami.k8s.objects import TERMINAL_PHASES
from hami.scheduler import registration
from hami.scheduler.registration import HandshakeSpec

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class HandshakeWrite:
    """Set (or, with ``value`` None, remove) a handshake annotation on a node."""

    node: str
    key: str
    value: str | None


@dataclass(frozen=True, slots=True)
class BadRegistration:
    """A node's registration annotation cannot be decoded."""

    node: str
    key: str
    message: str


NodeAction = HandshakeWrite | BadRegistration


@dataclass(slots=True)
class _NodeEntry:
    manifest: Manifest
    node: Node | None = None  # every vendor's devices as registered
    signature: tuple[tuple[str, str], ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    healthy: dict[str, bool] = field(default_factory=dict)
    cleaned: set[str] = field(default_factory=set)
    bad: str = ""


@dataclass(slots=True)
class _PodEntry:
    key: str
    placed: PlacedPod
    assumed: bool = False
    confirm_rv: int | None = None  # watch events older than our own patch are stale
    done: bool = False  # bind-phase success/failed: the device plugin is through with it
    bound: bool = False  # spec.nodeName is set: the decision never expires
    decided_at: datetime | None = None  # hami.io/vgpu-time (or the assumption's own time)


@dataclass(frozen=True, slots=True)
class Drift:
    """What one `ClusterCache.audit` found differing from the pods' annotations (and repaired).

    ``missing``: pods whose annotations allocate devices the cache did not count; ``extra``:
    pods the cache counted that allocate nothing (or no longer exist); ``different``: both,
    but not the same devices. Each is a list of ``namespace/name``.
    """

    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    different: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.different)


def bind_done(annotations: Mapping[str, str]) -> bool:
    """The device plugin is through with the pod (bind-phase ``success`` or ``failed``)."""
    return annotations.get(keys.BIND_PHASE) in (keys.BIND_PHASE_SUCCESS, keys.BIND_PHASE_FAILED)


def decided_at(annotations: Mapping[str, str]) -> datetime | None:
    """When the decision on a pod was made (`hami.io/vgpu-time`, Unix seconds), else None."""
    value = annotations.get(keys.VGPU_TIME, "")
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def is_bound(pod: Manifest) -> bool:
    return bool(objects.spec(pod).get("nodeName"))


def lock_keys(vendors: Mapping[str, Vendor]) -> set[str]:
    """Every node-lock key the vendors use (never part of a node's registration)."""
    return {keys.NODE_LOCK, *(s.key for s in lock_specs(vendors, vendors))}


def _app_vendors(placed: PlacedPod) -> frozenset[str]:
    return frozenset(
        vendor
        for vendor, per in placed.devices.items()
        if any(any(container) for container in per[placed.init_count :])
    )


def _init_done(pod: Manifest) -> bool:
    inits = objects.spec(pod).get("initContainers")
    if not isinstance(inits, list) or not inits:
        return False
    statuses = objects.status(pod).get("initContainerStatuses")
    if not isinstance(statuses, list) or len(statuses) < len(inits):
        return False
    for item in statuses:
        state = objects.section(item, "state") if isinstance(item, Mapping) else {}
        if objects.section(state, "terminated").get("exitCode") != 0:
            return False
    return True


def _init_count(pod: Manifest) -> int:
    inits = objects.spec(pod).get("initContainers")
    return len(inits) if isinstance(inits, list) else 0


class ClusterCache:
    """Nodes, placed pods and the ranked `ClusterView` derived from them."""

    def __init__(
        self,
        vendors: Mapping[str, Vendor],
        handshakes: Sequence[HandshakeSpec] = (),
        *,
        handshake_timeout: float = 60.0,
        clock: Clock = utcnow,
        decision_ttl: float = 0.0,
    ) -> None:
        self.vendors = vendors
        self.decision_ttl = decision_ttl  # 0: a decision on an unbound pod never expires
        self._handshakes = tuple(h for h in handshakes if h.vendor in vendors)
        self._volatile = frozenset(
            {*lock_keys(vendors), *(h.key for h in self._handshakes if h.key)}
        )
        self._timeout = handshake_timeout
        self._clock = clock
        self._nodes: dict[str, _NodeEntry] = {}
        self._dra: set[str] = set()  # nodes labelled for DRA mode (docs/dra.md)
        self._pods: dict[str, _PodEntry] = {}  # by pod UID
        self._by_node: dict[str, set[str]] = {}
        self._by_key: dict[str, str] = {}  # namespace/name -> UID
        self._init_done: set[str] = set()
        self._rv: dict[str, int] = {}  # by pod UID: the resourceVersion last applied
        self._aside: dict[str, _PodEntry] = {}  # a pod's last decision while it is re-decided
        self._dropping: dict[str, int | None] = {}  # UID -> rv of the patch that removed it
        self._view = ClusterView.of(())
        self._synced: set[str] = set()
        self._sync_event = asyncio.Event()
        self._node_events: dict[str, asyncio.Event] = {}
        self.actions: list[NodeAction] = []
        self.actions_ready = asyncio.Event()
        self.generation = 0  # bumped on every usage or inventory change

    # --- reading ------------------------------------------------------------------------------

    @property
    def view(self) -> ClusterView:
        return self._view

    @property
    def synced(self) -> bool:
        return {"nodes", "pods"} <= self._synced

    async def wait_synced(self, timeout: float) -> bool:
        if not self.synced:
            try:
                await asyncio.wait_for(self._sync_event.wait(), timeout)
            except TimeoutError:
                return False
        return True

    def dra_among(self, names: Iterable[str] | None) -> set[str]:
        """The nodes among ``names`` labelled for DRA mode (kept as nodes are applied, so a
        /filter pays one set lookup per candidate, and nothing while no node is a DRA node)."""
        if not self._dra or names is None:
            return set()
        return {name for name in names if name in self._dra}

    def node_manifest(self, name: str) -> Manifest | None:
        entry = self._nodes.get(name)
        return entry.manifest if entry else None

    def vendors_down(self, name: str) -> frozenset[str]:
        """The vendors whose devices the node registers but whose handshake says they are
        gone or going (a plugin's ``Deleted_`` notice, a cleaned-up node)."""
        entry = self._nodes.get(name)
        if entry is None:
            return frozenset()
        return frozenset(v for v, ok in entry.healthy.items() if not ok)

    def known_pod(self, namespace: str, name: str) -> str | None:
        """The UID of a pod the cache tracks (placed or assumed), else None."""
        return self._by_key.get(f"{namespace}/{name}")

    def app_vendors(self, uid: str) -> frozenset[str]:
        """The vendors whose devices the pod's regular containers hold (they lock at bind)."""
        entry = self._pods.get(uid)
        return _app_vendors(entry.placed) if entry else frozenset()

    def placed(self, uid: str) -> PlacedPod | None:
        entry = self._pods.get(uid)
        return entry.placed if entry else None

    def allocated(self, uid: str) -> bool:
        """The device plugin is through with this placed pod (bind-phase success or failed):
        it no longer needs a node lock."""
        entry = self._pods.get(uid)
        return entry.done if entry else False

    def locked_nodes(self, lock_keys: set[str]) -> dict[str, set[str]]:
        """Node name -> the given lock keys its cached annotations carry (nodes with none left
        out)."""
        found = {}
        for name, entry in self._nodes.items():
            held = lock_keys & objects.annotations(entry.manifest).keys()
            if held:
                found[name] = held
        return found

    def pods_on(self, node: str) -> list[PlacedPod]:
        return [self._pods[uid].placed for uid in self._by_node.get(node, ())]

    def pods_in(self, namespace: str) -> list[PlacedPod]:
        """Every placed (or assumed) pod of ``namespace`` (a scan: used for quota rooms)."""
        prefix = f"{namespace}/"
        return [
            self._pods[uid].placed for key, uid in self._by_key.items() if key.startswith(prefix)
        ]

    async def node_changed(self, name: str, timeout: float) -> None:
        """Wait until the node object changes (or ``timeout`` passes)."""
        event = self._node_events.setdefault(name, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    # --- sync bookkeeping ---------------------------------------------------------------------

    def mark_synced(self, what: str) -> None:
        self._synced.add(what)
        if self.synced:
            self._sync_event.set()

    # --- nodes --------------------------------------------------------------------------------

    def replace_nodes(self, items: Iterable[Manifest]) -> None:
        """A fresh list: forget nodes that are gone, apply the rest."""
        names = set()
        for item in items:
            names.add(objects.name(item))
            self.apply_node("ADDED", item)
        for gone in set(self._nodes) - names:
            self._drop_node(gone)
        self.mark_synced("nodes")

    def apply_node(self, event: str, manifest: Manifest) -> None:
        name = objects.name(manifest)
        if event == "DELETED":
            self._drop_node(name)
            return
        entry = self._nodes.get(name)
        if entry is None:
            entry = self._nodes[name] = _NodeEntry(manifest=manifest)
        entry.manifest = manifest
        if is_dra_node(objects.labels(manifest)):
            self._dra.add(name)
        else:
            self._dra.discard(name)
        self._decode(name, entry)
        self._assess(name, entry)
        self._refresh(name)
        self._wake(name)

    def reassess(self) -> None:
        """Time-based handshake checks over every node (run periodically)."""
        for name, entry in self._nodes.items():
            before = dict(entry.healthy)
            self._assess(name, entry, ask=True)
            if entry.healthy != before:
                self._refresh(name)

    def _decode(self, name: str, entry: _NodeEntry) -> None:
        annotations = objects.annotations(entry.manifest)
        capacity = objects.status(entry.manifest).get("capacity")
        signature = (
            *sorted((k, v) for k, v in annotations.items() if k not in self._volatile),
            (
                "status.capacity",
                repr(sorted(dict(capacity).items())) if isinstance(capacity, dict) else "",
            ),
        )
        if signature == entry.signature and (entry.node is not None or entry.bad):
            return
        entry.signature = signature
        try:
            entry.node = node_from_manifest(entry.manifest, self.vendors)
        except WireFormatError as exc:
            entry.node = None
            message = str(exc)
            if message != entry.bad:
                log.warning("node %s skipped: malformed registration %s", name, message)
                self._act(BadRegistration(name, exc.key, message))
            entry.bad = message
            return
        entry.bad = ""

    def _assess(self, name: str, entry: _NodeEntry, *, ask: bool = False) -> None:
        """``ask``: the periodic pass, which asks a node that answered ``Reported`` again;
        a node event leaves the answer standing (it stays visible until the next pass)."""
        annotations = objects.annotations(entry.manifest)
        now = self._clock()
        for spec in self._handshakes:
            has_devices = entry.node is not None and any(
                d.vendor == spec.vendor for d in entry.node.devices
            )
            if not has_devices:
                entry.healthy.pop(spec.vendor, None)
                continue
            count = registration.allocatable(entry.manifest, spec.count_resource)
            health = registration.assess(
                spec,
                annotations,
                count,
                entry.counts.get(spec.vendor),
                spec.vendor in entry.cleaned,
                now,
                self._timeout,
                ask=ask,
            )
            entry.counts[spec.vendor] = count
            entry.healthy[spec.vendor] = health.healthy
            if health.healthy:
                entry.cleaned.discard(spec.vendor)
            elif health.write == registration.REMOVE:
                entry.cleaned.add(spec.vendor)
            if health.write is None:
                continue
            if health.write == registration.REMOVE:
                if spec.cleanup in annotations:
                    self._act(HandshakeWrite(name, spec.cleanup, None))
            elif health.write != annotations.get(spec.key):
                self._act(HandshakeWrite(name, spec.key, health.write))

    def _usable(self, entry: _NodeEntry) -> Node | None:
        node = entry.node
        if node is None:
            return None
        down = {v for v, ok in entry.healthy.items() if not ok}
        if down:
            node = Node(
                name=node.name,
                devices=tuple(d for d in node.devices if d.vendor not in down),
                cordoned=node.cordoned,
            )
        return node if node.devices else None

    def _drop_node(self, name: str) -> None:
        self._dra.discard(name)
        if self._nodes.pop(name, None) is not None:
            self._refresh(name)
        self._wake(name)

    def _act(self, action: NodeAction) -> None:
        self.actions.append(action)
        self.actions_ready.set()

    def take_actions(self) -> list[NodeAction]:
        actions, self.actions = self.actions, []
        self.actions_ready.clear()
        return actions

    # --- pods ---------------------------------------------------------------------------------

    def replace_pods(self, items: Iterable[Manifest]) -> None:
        uids = set()
        for item in items:
            uids.add(objects.uid(item))
            self.apply_pod("ADDED", item)
        for gone in [u for u, e in self._pods.items() if u not in uids and not e.assumed]:
            self._remove_pod(gone)
        for gone in set(self._rv) - uids:
            if gone not in self._pods:
                self._rv.pop(gone, None)
                self._aside.pop(gone, None)
                self._dropping.pop(gone, None)
        self.mark_synced("pods")

    def apply_pod(self, event: str, pod: Manifest) -> None:
        uid = objects.uid(pod)
        entry = self._pods.get(uid)
        rv = objects.rv_number(objects.resource_version(pod))
        if event == "DELETED":
            self._remove_pod(uid)
            self._init_done.discard(uid)
            self._rv.pop(uid, None)
            self._aside.pop(uid, None)
            self._dropping.pop(uid, None)
            return
        if 0 <= rv < self._rv.get(uid, -1):
            return  # older than what this pod already showed: never move backwards
        self._rv[uid] = max(rv, self._rv.get(uid, -1))
        if (
            entry is not None
            and entry.assumed
            and (entry.confirm_rv is None or rv < entry.confirm_rv)
        ):
            return  # older than our own patch: the assumption stands
        if uid in self._dropping:
            dropped_at = self._dropping[uid]
            if dropped_at is None or rv < dropped_at:
                return  # older than the patch that removes the dropped decision
            del self._dropping[uid]
        self._aside.pop(uid, None)
        self._set_from(uid, pod, self._placed_from(uid, pod))

    def _set_from(self, uid: str, pod: Manifest, placed: PlacedPod | None) -> None:
        if placed is None:
            self._remove_pod(uid)
        else:
            annotations = objects.annotations(pod)
            entry = _PodEntry(
                objects.key(pod),
                placed,
                done=bind_done(annotations),
                bound=is_bound(pod),
                decided_at=decided_at(annotations),
            )
            self._set_pod(uid, entry)

    def expected(self, pod: Manifest) -> PlacedPod | None:
        """What the rule says ``pod`` counts (its allocation, or None), changing nothing."""
        return self._placed_from(objects.uid(pod), pod, remember=False, quiet=True)

    def _placed_from(
        self, uid: str, pod: Manifest, *, remember: bool = True, quiet: bool = False
    ) -> PlacedPod | None:
        annotations = objects.annotations(pod)
        node = annotations.get(keys.VGPU_NODE)
        if not node or objects.status(pod).get("phase") in TERMINAL_PHASES:
            return None
        if not is_bound(pod) and self._expired(decided_at(annotations)):
            return None  # filtered, never bound, and kube-scheduler did not come back for it
        init_done = uid in self._init_done or _init_done(pod)
        if remember and init_done:
            self._init_done.add(uid)  # one-shot: init usage is released once, for good
        key = objects.key(pod)
        try:
            return placed_pod(key, node, annotations, self.vendors, _init_count(pod), init_done)
        except WireFormatError as exc:
            if not quiet:
                log.warning("pod %s: ignoring its allocation: %s", key, exc)
            return None

    def assume(self, uid: str, placed: PlacedPod) -> None:
        """Count a decision before its patch is sent."""
        entry = _PodEntry(placed.key, placed, assumed=True)
        entry.decided_at = self._clock()
        self._set_pod(uid, entry)

    def _expired(self, at: datetime | None) -> bool:
        if self.decision_ttl <= 0 or at is None:
            return False
        return (self._clock() - at).total_seconds() > self.decision_ttl

    def expire(self) -> list[str]:
        """Stop counting decisions on pods that were never bound within ``decision_ttl`` (the
        rule of `_placed_from`, applied without waiting for a watch event); the pods'
        ``namespace/name``. Decisions in flight are left alone."""
        gone = [
            uid
            for uid, entry in self._pods.items()
            if not entry.bound and self._expired(entry.decided_at) and not self.in_flight(uid)
        ]
        keys_ = []
        for uid in gone:
            keys_.append(self._pods[uid].key)
            log.info(
                "pod %s: its decision was never bound within %gs; no longer counted",
                self._pods[uid].key,
                self.decision_ttl,
            )
            self._aside.pop(uid, None)
            self._remove_pod(uid)
        return keys_

    def confirm(self, uid: str, resource_version: str) -> None:
        """The patch landed at ``resource_version``: later watch events are authoritative."""
        self._aside.pop(uid, None)
        entry = self._pods.get(uid)
        if entry is not None and entry.assumed:
            entry.confirm_rv = objects.rv_number(resource_version)

    def forget(self, uid: str) -> None:
        """Undo an assumption whose patch failed: the pod's earlier decision (still on the
        pod, since the patch failed) counts again."""
        entry = self._pods.get(uid)
        if entry is not None and entry.assumed:
            self._remove_pod(uid)
        self._restore(uid)

    def release(self, uid: str) -> None:
        """Stop counting a pod's decision before it is decided again (it is being re-scheduled).

        Its entry is kept aside: `forget` (the new decision's patch failed) and `undrop` (the
        removal failed) count it again; `confirm` and `dropped` discard it.
        """
        entry = self._pods.get(uid)
        if entry is not None and not entry.assumed:
            self._aside[uid] = entry
        self._remove_pod(uid)

    def drop(self, uid: str, carried: bool) -> bool:
        """The pod fits nowhere now. True when its decision must be removed from the pod: the
        cache had counted one (released), or the pod carries one (``carried``: it has
        `hami.io/vgpu-node`). Then the decision stays uncounted and watch events are ignored
        until `dropped` (the removal landed) or `undrop` (it failed)."""
        if uid not in self._aside and not carried:
            return False
        self._dropping[uid] = None
        return True

    def dropped(self, uid: str, resource_version: str) -> None:
        """The patch removing the dropped decision landed at ``resource_version``."""
        self._aside.pop(uid, None)
        if uid in self._dropping:
            self._dropping[uid] = objects.rv_number(resource_version)

    def undrop(self, uid: str) -> None:
        """The removal failed: the decision is still on the pod, so it counts again."""
        self._dropping.pop(uid, None)
        self._restore(uid)

    def discard(self, uid: str) -> None:
        """Forget a pod that no longer exists (its DELETED event may still be on its way)."""
        self._aside.pop(uid, None)
        self._dropping.pop(uid, None)
        self._remove_pod(uid)

    def _restore(self, uid: str) -> None:
        previous = self._aside.pop(uid, None)
        if previous is not None and uid not in self._pods:
            self._set_pod(uid, previous)

    # --- the self-check -----------------------------------------------------------------------

    def in_flight(self, uid: str) -> bool:
        """A decision of this pod is being written (assumed, unconfirmed) or removed."""
        entry = self._pods.get(uid)
        return (entry is not None and entry.assumed and entry.confirm_rv is None) or (
            uid in self._dropping
        )

    def seen_rv(self, uid: str) -> int:
        """The resourceVersion last applied for this pod (-1: none)."""
        return self._rv.get(uid, -1)

    def counted(self) -> dict[str, str]:
        """Every pod the cache counts: UID -> namespace/name."""
        return {uid: entry.key for uid, entry in self._pods.items()}

    def audit(self, pods: Iterable[Manifest], list_rv: str, *, repair: bool = True) -> Drift:
        """Compare the cache with a fresh list of pods (taken at ``list_rv``); repair each
        difference (with ``repair``) and say what differed.

        Pods whose decision is in flight are skipped, and so is a pod the cache has seen a
        newer version of than the list (the watch is ahead). A listed pod the cache has an
        older version of is brought forward, as its next watch event would; a counted pod
        that is not in the list is dropped unless the cache saw it after the list was taken.
        """
        missing: list[str] = []
        extra: list[str] = []
        different: list[str] = []
        listed: set[str] = set()
        for pod in pods:
            uid = objects.uid(pod)
            listed.add(uid)
            rv = objects.rv_number(objects.resource_version(pod))
            if self.in_flight(uid) or self._rv.get(uid, -1) > rv:
                continue
            want = self.expected(pod)
            entry = self._pods.get(uid)
            have = entry.placed if entry is not None else None
            if want == have and (
                entry is None or entry.done == bind_done(objects.annotations(pod))
            ):
                continue
            key = objects.key(pod)
            if want is None:
                extra.append(key)
            elif have is None:
                missing.append(key)
            elif want != have:
                different.append(key)
            if repair:
                log.warning("cache differs from pod %s's annotations: repaired", key)
                self._rv[uid] = max(rv, self._rv.get(uid, -1))
                self._aside.pop(uid, None)
                self._set_from(uid, pod, self._placed_from(uid, pod))
        at = objects.rv_number(list_rv)
        for uid, entry in list(self._pods.items()):
            if uid in listed or self.in_flight(uid) or self._rv.get(uid, -1) > at:
                continue
            extra.append(entry.key)
            if repair:
                log.warning("cache counts pod %s, which no longer exists: repaired", entry.key)
                self._remove_pod(uid)
                self._rv.pop(uid, None)
        return Drift(tuple(missing), tuple(extra), tuple(different))

    def _set_pod(self, uid: str, entry: _PodEntry) -> None:
        old = self._pods.get(uid)
        self._pods[uid] = entry
        self._by_key[entry.key] = uid
        self._by_node.setdefault(entry.placed.node, set()).add(uid)
        if old is not None and old.placed.node != entry.placed.node:
            self._unlink(uid, old)
            self._refresh(old.placed.node)
        if old is None or old.placed != entry.placed:
            self._refresh(entry.placed.node)

    def _remove_pod(self, uid: str) -> None:
        entry = self._pods.pop(uid, None)
        if entry is None:
            return
        self._unlink(uid, entry)
        if self._by_key.get(entry.key) == uid:
            del self._by_key[entry.key]
        self._refresh(entry.placed.node)

    def _unlink(self, uid: str, entry: _PodEntry) -> None:
        on_node = self._by_node.get(entry.placed.node)
        if on_node is not None:
            on_node.discard(uid)
            if not on_node:
                del self._by_node[entry.placed.node]

    # --- the derived view ---------------------------------------------------------------------

    def _refresh(self, name: str) -> None:
        """Recompute one node's state in the view from its inventory and its pods."""
        self.generation += 1
        entry = self._nodes.get(name)
        node = self._usable(entry) if entry is not None else None
        if node is None:
            if name in self._view:
                self._view = ClusterView.of(s for s in self._view.states() if s.node.name != name)
            return
        usage, unknown = accounting.node_usage(node, self.pods_on(name), self.vendors)
        if unknown:
            log.debug("node %s: pods reference unknown devices %s", name, sorted(set(unknown)))
        self._view = self._view.with_state(NodeState.of(node, usage))

    def _wake(self, name: str) -> None:
        event = self._node_events.pop(name, None)
        if event is not None:
            event.set()
