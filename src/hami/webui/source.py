"""Where the web UI and `hami explain` read the cluster from: a live API server or sim files.

Both build the same `Snapshot` from Node and Pod manifests with the decision core's own
decoders, so what the UI shows is what the scheduler sees. Nothing is dropped silently: a node
without a registration is shown without devices, a malformed registration or allocation
becomes a notice, and the rest keeps working.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, cast

from hami import devconfig, draview
from hami.api import annotations as codec
from hami.api import keys
from hami.api.errors import WireFormatError
from hami.api.types import ContainerDevice
from hami.core import accounting
from hami.core.accounting import PlacedPod, placed_pod
from hami.core.cluster import ClusterView, NodeState
from hami.core.config import SchedulerConfig
from hami.core.decide import commit, decide
from hami.core.dra import placement as dra_placement
from hami.core.dra import records as dra_records
from hami.core.dra.names import DEVICE_CLASS
from hami.core.dra.translate import TEMPLATE_PREFIX
from hami.core.errors import RequestInvalid
from hami.core.model import Node, PodOptions, PodRequest
from hami.core.nodes import node_from_manifest
from hami.core.quota import QuotaBook, quota_specs
from hami.core.request import parse_pod
from hami.core.vendor import Vendor
from hami.k8s import objects
from hami.k8s.api import (
    NODES,
    PODS,
    RESOURCE_QUOTAS,
    Kind,
    KubeAPI,
    Manifest,
    NotFound,
    ObjectList,
    Unavailable,
)
from hami.k8s.files import ManifestFileError, documents
from hami.k8s.objects import TERMINAL_PHASES
from hami.k8s.watch import Backoff, list_then_watch

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NodeEntry:
    """A node as the web UI shows it: its decoded devices (not hami.k8s.views.NodeInfo, the
    raw fields the device plugin reads)."""

    name: str
    node: Node  # devices as registered (none when unregistered or malformed)
    labels: Mapping[str, str] = field(default_factory=dict)
    address: str = ""  # InternalIP, for the node monitor
    problem: str = ""


@dataclass(frozen=True, slots=True)
class PodEntry:
    """A pod as the web UI shows it: where its slices are and what it asks for."""

    namespace: str
    name: str
    phase: str
    node: str | None  # the node holding its devices (hami.io/vgpu-node or the sim's choice)
    placed: PlacedPod | None  # its slices
    request: PodRequest | None  # its device requests (None when it cannot be parsed)
    problem: str = ""
    started: str = ""  # status.startTime, else metadata.creationTimestamp (RFC 3339)
    # A DRA pod whose claims are not allocated (or not created) yet: its manifest, explained
    # from the claims and slices as `hami explain` does (`hami.webui.drapending`, docs/dra.md)
    dra: Manifest | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def pending(self) -> bool:
        if self.placed is not None:
            return False
        if self.dra is not None:
            return True
        return self.request is not None and self.request.wants_devices


@dataclass(frozen=True, slots=True)
class Snapshot:
    nodes: tuple[NodeEntry, ...]
    pods: tuple[PodEntry, ...]
    view: ClusterView
    taken_at: float
    notices: tuple[str, ...] = ()
    stale_since: float | None = None  # set while the source shows its last good snapshot
    quotas: QuotaBook | None = None  # hami's namespace quotas (ResourceQuota limits.<resource>)
    dra_nodes: frozenset[str] = frozenset()  # nodes whose devices are DRA's (docs/dra.md)
    dra: DraState | None = None  # the claims and slices (None: not served, or not readable)

    def node(self, name: str) -> NodeEntry | None:
        return next((n for n in self.nodes if n.name == name), None)

    def pod(self, namespace: str, name: str) -> PodEntry | None:
        return next((p for p in self.pods if p.namespace == namespace and p.name == name), None)

    @property
    def node_names(self) -> frozenset[str]:
        """The nodes the extender may place on (DRA nodes are kube-scheduler's)."""
        return frozenset(n.name for n in self.nodes) - self.dra_nodes


class Source(Protocol):
    """What the UI reads: a consistent snapshot, and the vendors to decode and explain with."""

    vendors: Mapping[str, Vendor]
    config: SchedulerConfig

    async def start(self) -> None:
        """Called once before the UI serves (a live source lists here)."""

    async def stop(self) -> None:
        """Called once when the UI stops."""

    async def snapshot(self) -> Snapshot: ...


class SourceError(Exception):
    """The source cannot be read at all (API server unreachable, unreadable file)."""


# --- building a snapshot -----------------------------------------------------------------------


def _node_info(manifest: Manifest, vendors: Mapping[str, Vendor]) -> NodeEntry:
    name = objects.name(manifest)
    labels = objects.labels(manifest)
    address = _internal_ip(manifest)
    try:
        node = node_from_manifest(manifest, vendors)
    except WireFormatError as exc:
        problem = f"malformed registration: {exc}"
        return NodeEntry(name, Node(name, ()), labels, address, problem)
    left_out = devconfig.unenabled(manifest, vendors) if not node.devices else []
    if left_out:
        problem = f"registers {', '.join(left_out)} devices; the device config does not enable them"
        return NodeEntry(name, node, labels, address, problem)
    return NodeEntry(name, node, labels, address)


def _internal_ip(manifest: Manifest) -> str:
    items = objects.status(manifest).get("addresses")
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and item.get("type") == "InternalIP":
            return str(item.get("address") or "")
    return ""


def _pod_info(
    manifest: Manifest, vendors: Mapping[str, Vendor], config: SchedulerConfig, admit: bool
) -> PodEntry | None:
    namespace, name = objects.namespace(manifest) or "default", objects.name(manifest)
    phase = str(objects.status(manifest).get("phase") or "Pending")
    if phase in TERMINAL_PHASES:
        return None
    annotations = objects.annotations(manifest)
    node = annotations.get(keys.VGPU_NODE) or None
    problems = []
    placed = None
    if node:
        inits = objects.spec(manifest).get("initContainers")
        count = len(inits) if isinstance(inits, list) else 0
        try:
            placed = placed_pod(f"{namespace}/{name}", node, annotations, vendors, count)
        except WireFormatError as exc:
            problems.append(f"malformed allocation: {exc}")
    try:
        request: PodRequest | None = parse_pod(manifest, vendors, config, admit=admit)
    except RequestInvalid as exc:
        request = None
        problems.append(str(exc))
    if placed is None and not problems and (request is None or not request.wants_devices):
        return None  # not a GPU pod
    status, metadata = objects.status(manifest), manifest.get("metadata")
    started = status.get("startTime") or (
        metadata.get("creationTimestamp") if isinstance(metadata, Mapping) else ""
    )
    problem = "; ".join(problems)
    return PodEntry(namespace, name, phase, node, placed, request, problem, str(started or ""))


class DecodeMemo:
    """Decoded Nodes and Pods by (kind, namespace/name) and resourceVersion: a live source decodes
    only what changed since its last list (objects without a resourceVersion: every time).

    When a list brings nothing new (every object a hit, none gone), `changed` is False and the
    core's view built from the previous list (`core`) is reused as it is."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], tuple[str, object]] = {}
        self._now: dict[tuple[str, str], tuple[str, object]] = {}
        self._missed = False
        self.changed = True
        self.core: _Core | None = None
        self.dra_key: object = None  # what the core's DRA state was built from

    def get(self, kind: str, manifest: Manifest, make: Callable[[], object]) -> object:
        meta = objects.meta(manifest)  # read once: this runs for every object of every page
        version = str(meta.get("resourceVersion") or "")
        if not version:
            self._missed = True
            return make()
        key = (kind, f"{meta.get('namespace') or ''}/{meta.get('name') or ''}")
        hit = self._seen.get(key)
        if hit is not None and hit[0] == version:
            value = hit[1]
        else:
            self._missed, value = True, make()
        self._now[key] = (version, value)
        return value

    def round_done(self) -> None:
        """Forget what the last list no longer had; say whether anything changed."""
        self.changed = self._missed or len(self._now) != len(self._seen)
        self._seen, self._now, self._missed = self._now, {}, False


@dataclass(frozen=True, slots=True)
class _Core:
    """What a snapshot derives from its decoded objects (reused while nothing changes)."""

    nodes: tuple[NodeEntry, ...]
    pods: tuple[PodEntry, ...]
    view: ClusterView
    problems: tuple[str, ...]
    per_node: Mapping[str, _NodeCore] = field(default_factory=dict)  # for the next rebuild
    dra_nodes: frozenset[str] = frozenset()


def build_snapshot(
    nodes: Iterable[Manifest],
    pods: Iterable[Manifest],
    vendors: Mapping[str, Vendor],
    config: SchedulerConfig,
    *,
    admit: bool = False,
    notices: Sequence[str] = (),
    quotas: Iterable[Manifest] | None = None,
    memo: DecodeMemo | None = None,
    same_objects: bool = False,
    dra: DraState | None = None,
) -> Snapshot:
    """Nodes, GPU pods and the core's view of them, with a notice for every problem;
    ``quotas`` (ResourceQuota manifests) give hami's namespace quotas, None: not known.
    ``same_objects``: the caller knows these are the objects of ``memo``'s last round (a watch
    saw no change), so its core is reused without looking at them. ``dra``: the cluster's
    ResourceClaims and ResourceSlices: DRA devices and allocations join the nodes and pods,
    and Pending DRA pods (claims unallocated or not created) join the pods."""
    dra_key = dra.key() if dra is not None else None
    dra_changed = memo is not None and memo.dra_key != dra_key
    if dra_changed:
        same_objects = False
    if dra_key is not None:
        pods = list(pods)
    decoded_nodes: list[NodeEntry] = []
    found: list[PodEntry | None] = []
    if memo is None:
        decoded_nodes = [_node_info(m, vendors) for m in nodes]
        found = [_pod_info(m, vendors, config, admit) for m in pods]
    elif same_objects and memo.core is not None:
        memo.changed = False
    else:
        decoded_nodes = [
            cast(NodeEntry, memo.get("node", m, functools.partial(_node_info, m, vendors)))
            for m in nodes
        ]
        found = [
            cast(
                "PodEntry | None",
                memo.get("pod", m, functools.partial(_pod_info, m, vendors, config, admit)),
            )
            for m in pods
        ]
        memo.round_done()
    if memo is not None and dra_changed:
        memo.changed, memo.dra_key = True, dra_key
    core = memo.core if memo is not None and not memo.changed else None
    if core is None:
        dra_nodes: frozenset[str] = frozenset()
        if dra is not None and dra_key is not None:
            decoded_nodes, found, dra_nodes = _with_dra(decoded_nodes, found, pods, dra)
        core = _core(decoded_nodes, found, vendors, memo.core if memo is not None else None)
        core = replace(core, dra_nodes=dra_nodes)
        if memo is not None:
            memo.core = core
    book = None
    if quotas is not None:
        book = QuotaBook(quota_specs(config))
        book.replace(quotas)
    said = (*notices, *core.problems)
    return Snapshot(
        core.nodes,
        core.pods,
        core.view,
        time.time(),
        said,
        quotas=book,
        dra_nodes=core.dra_nodes,
        dra=dra,
    )


@dataclass(frozen=True, slots=True)
class DraState:
    """The cluster's ResourceClaims and ResourceSlices (docs/dra.md)."""

    claims: Sequence[Manifest] = ()
    slices: Sequence[Manifest] = ()

    @property
    def empty(self) -> bool:
        return not self.claims and not self.slices

    def key(self) -> object:
        """Changes whenever an object does (by name and resourceVersion)."""
        return tuple(
            (objects.namespace(m), objects.name(m), objects.resource_version(m))
            for m in (*self.claims, *self.slices)
        )


def _with_dra(
    nodes: Sequence[NodeEntry],
    found: Sequence[PodEntry | None],
    pods: Iterable[Manifest],
    dra: DraState,
) -> tuple[list[NodeEntry], list[PodEntry | None], frozenset[str]]:
    """The nodes with their published DRA devices (a node registering none of its own), the
    pods with their allocated claims as placed pods (`hami.core.dra.placement`), and the
    Pending pods whose hami claims are not allocated yet (`_dra_waiting`)."""
    published = dra_placement.devices(dra.slices)
    out_nodes, dra_nodes = [], set()
    for info in nodes:
        devices = published.get(info.name)
        if devices and not info.node.devices:
            info = replace(info, node=Node(info.name, devices), problem="")
            dra_nodes.add(info.name)
        out_nodes.append(info)
    manifests = {
        f"{objects.namespace(m) or 'default'}/{objects.name(m)}": m
        for m in pods
        if objects.spec(m).get("resourceClaims")
    }
    placed = dra_placement.placed_pods(manifests.values(), dra.claims, dra.slices)
    out_pods = [p for p in found if p is None or p.key not in placed]
    for key, pod in placed.items():
        manifest = manifests[key]
        phase = str(objects.status(manifest).get("phase") or "Pending")
        if phase in TERMINAL_PHASES:
            continue
        namespace, name = key.split("/", 1)
        request = _dra_request(manifest, namespace, name)
        started = _started(manifest)
        out_pods.append(PodEntry(namespace, name, phase, pod.node, pod, request, "", started))
    listed = {p.key for p in out_pods if p is not None}
    claims = {(objects.namespace(c), objects.name(c)): c for c in dra.claims}
    for key, manifest in manifests.items():
        if key not in listed and _dra_waiting(manifest, claims):
            namespace, name = key.split("/", 1)
            node = str(objects.spec(manifest).get("nodeName") or "") or None
            request = _dra_request(manifest, namespace, name)
            started = _started(manifest)
            waiting = PodEntry(
                namespace, name, "Pending", node, None, request, "", started, manifest
            )
            out_pods.append(waiting)
    return out_nodes, out_pods, frozenset(dra_nodes)


def _dra_request(manifest: Manifest, namespace: str, name: str) -> PodRequest:
    """A DRA pod's request in the extender's terms: its containers, asking for nothing (its
    claims ask)."""
    containers = dra_placement.containers(manifest)
    inits = objects.spec(manifest).get("initContainers")
    return PodRequest(
        namespace,
        name,
        tuple(() for _ in containers),
        len(inits) if isinstance(inits, list) else 0,
        container_names=tuple(c for c, _ in containers),
        options=PodOptions(),
    )


def _started(manifest: Manifest) -> str:
    status, metadata = objects.status(manifest), objects.meta(manifest)
    return str(status.get("startTime") or metadata.get("creationTimestamp") or "")


def _dra_waiting(manifest: Manifest, claims: Mapping[tuple[str, str], Manifest]) -> bool:
    """A Pending pod (none of whose hami claims is allocated: the caller checked) with a claim
    of hami's: from a template the webhook names (``hami-gpu-…``), or a claim asking for hami's
    DeviceClass. Pods with other drivers' claims only are not GPU pods."""
    if str(objects.status(manifest).get("phase") or "Pending") != "Pending":
        return False
    namespace = objects.namespace(manifest) or "default"
    made = dra_records.claim_names(manifest)
    for entry in mappings(objects.spec(manifest).get("resourceClaims")):
        template = str(entry.get("resourceClaimTemplateName") or "")
        if template.startswith(TEMPLATE_PREFIX):
            return True
        claim = claims.get((namespace, made.get(str(entry.get("name")), "")))
        if claim is not None and _asks_hami(claim):
            return True
    return False


def _asks_hami(claim: Manifest) -> bool:
    requests = mappings(objects.section(objects.spec(claim), "devices").get("requests"))
    return any(
        (objects.section(r, "exactly").get("deviceClassName") or r.get("deviceClassName"))
        == DEVICE_CLASS
        for r in requests
    )


def mappings(value: object) -> list[Manifest]:
    """The objects of a list field (a missing or malformed field: none)."""
    if not isinstance(value, list):
        return []
    return [cast(Manifest, v) for v in value if isinstance(v, Mapping)]


def _core(
    nodes: Iterable[NodeEntry],
    found: Iterable[PodEntry | None],
    vendors: Mapping[str, Vendor],
    previous: _Core | None = None,
) -> _Core:
    node_infos = tuple(sorted(nodes, key=lambda n: n.name))
    pod_infos = tuple(sorted((p for p in found if p is not None), key=lambda p: p.key))
    per_node: dict[str, _NodeCore] = {}
    before = previous.per_node if previous is not None else None
    view, unknown = core_view(node_infos, pod_infos, vendors, before, per_node)
    said = [f"node {n.name}: {n.problem}" for n in node_infos if n.problem]
    said += [f"pod {p.key}: {p.problem}" for p in pod_infos if p.problem]
    said += [f"pods reference devices no node registers: {', '.join(unknown)}"] if unknown else []
    return _Core(node_infos, pod_infos, view, tuple(said), per_node)


@dataclass(frozen=True, slots=True)
class _NodeCore:
    """One node's state as the core computed it, and what it was computed from."""

    info: NodeEntry
    placed: tuple[PlacedPod, ...]
    state: NodeState
    missing: tuple[str, ...]


def core_view(
    nodes: Sequence[NodeEntry],
    pods: Sequence[PodEntry],
    vendors: Mapping[str, Vendor],
    previous: Mapping[str, _NodeCore] | None = None,
    keep: dict[str, _NodeCore] | None = None,
) -> tuple[ClusterView, list[str]]:
    """The core's view of ``nodes`` with the usage of ``pods``; device UUIDs no node has.

    ``previous`` (what ``keep`` collected last time): a node whose decoded object and placed
    pods are the very same objects as then keeps its state — decoded objects are reused by
    resourceVersion, so only nodes a change touched are accounted again."""
    by_node: dict[str, list[PlacedPod]] = {}
    for pod in pods:
        if pod.placed is not None:
            by_node.setdefault(pod.placed.node, []).append(pod.placed)
    states: list[NodeState] = []
    unknown: list[str] = []
    for info in nodes:
        if info.node.devices:
            placed = tuple(by_node.get(info.name, ()))
            hit = previous.get(info.name) if previous is not None else None
            if hit is not None and hit.info is info and _same(hit.placed, placed):
                state, missing = hit.state, hit.missing
            else:
                usage, found = accounting.node_usage(info.node, list(placed), vendors)
                state, missing = NodeState.of(info.node, usage), tuple(found)
            if keep is not None:
                keep[info.name] = _NodeCore(info, placed, state, missing)
            unknown.extend(missing)
            states.append(state)
    return ClusterView.of(states), sorted(set(unknown))


def _same(a: Sequence[object], b: Sequence[object]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


# --- sources -----------------------------------------------------------------------------------


class _Store:
    """One kind's objects as its list-then-watch loop last saw them; ``version`` counts changes."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], Manifest] = {}
        self.synced = False
        self.version = 0

    def replace(self, items: Iterable[Manifest]) -> None:
        self.objects = {_object_key(m): m for m in items}
        self.synced = True
        self.version += 1

    def apply(self, event: str, manifest: Manifest) -> None:
        if event == "DELETED":
            self.objects.pop(_object_key(manifest), None)
        else:
            self.objects[_object_key(manifest)] = manifest
        self.version += 1


def _object_key(manifest: Manifest) -> tuple[str, str]:
    return objects.namespace(manifest), objects.name(manifest)


class KubeSource:
    """Nodes and Pods through the `KubeAPI` port.

    Started (`start`, before the UI serves): a list-then-watch loop per kind keeps them current
    (as an informer does), listed and decoded once at startup, so no page waits for a list; a
    page reads the store, decodes only objects whose resourceVersion changed, and asks the API
    server one small question (the ResourceQuotas, which it shows anyway) — that answer failing
    at the transport is the outage: the last good snapshot, marked stale.

    Not started (`hami explain`, tests): one list per ``ttl`` seconds at most, one at a time
    (requests that arrive during a list share its result)."""

    def __init__(
        self,
        api: KubeAPI,
        vendors: Mapping[str, Vendor],
        config: SchedulerConfig,
        ttl: float = 0.5,
    ) -> None:
        self.api = api
        self.vendors = vendors
        self.config = config
        self.ttl = ttl
        self._last: Snapshot | None = None
        self._failed: tuple[float, Snapshot] | None = None  # the last failed list, what it gave
        self._memo = DecodeMemo()
        self._lock = asyncio.Lock()
        self._stores: tuple[_Store, _Store] | None = None
        self._built: tuple[int, int] = (-1, -1)  # the store versions the last snapshot read
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, sync_timeout: float = 15.0) -> None:
        """Start the watch loops, wait (up to ``sync_timeout``) for their first lists and build
        the first snapshot. Not synced in time, or failing: logged; pages list by themselves
        meanwhile and say what is wrong."""
        stores = (_Store(), _Store())
        self._tasks = [
            asyncio.create_task(self._watch(kind, store), name=f"webui-watch-{kind.plural}")
            for kind, store in zip((NODES, PODS), stores, strict=True)
        ]
        self._stores = stores
        deadline = time.monotonic() + sync_timeout
        while not all(s.synced for s in stores) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if not all(s.synced for s in stores):
            log.warning("web UI: Nodes and Pods not listed within %.0f s", sync_timeout)
        try:
            await self.snapshot()
        except SourceError as exc:
            log.warning("web UI: first list failed: %s", exc)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _watch(self, kind: Kind, store: _Store) -> None:
        while True:  # list_then_watch retries API errors itself; anything else: start over
            try:
                stream = list_then_watch(self.api, kind, backoff=Backoff(0.2, 2.0))
                async for item in stream:
                    if isinstance(item, ObjectList):
                        store.replace(item.items)
                    else:
                        store.apply(item.type, item.object)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("web UI: %s watch failed (%s); listing again", kind.plural, exc)
                await asyncio.sleep(1.0)

    def _watched(self) -> tuple[_Store, _Store] | None:
        stores = self._stores
        return stores if stores is not None and all(s.synced for s in stores) else None

    def _fresh(self) -> Snapshot | None:
        now = time.time()
        if self._last is not None and now - self._last.taken_at < self.ttl:
            return self._last
        if self._failed is not None and now - self._failed[0] < self.ttl:
            return self._failed[1]
        return None

    async def _from_store(self, nodes: _Store, pods: _Store) -> Snapshot:
        notices: list[str] = []
        quotas: list[Manifest] | None = None
        try:
            quotas = list((await self.api.list(RESOURCE_QUOTAS)).items)
        except Unavailable as exc:  # not reached: an outage, whatever the watches still hold
            return self._outage(exc)
        except Exception as exc:  # RBAC may not grant it: quotas unknown, the rest works
            notices.append(f"ResourceQuotas cannot be listed ({exc}); quotas not shown")
        try:
            dra = await self._dra(notices)
        except Unavailable as exc:
            return self._outage(exc)
        self._failed = None
        versions = (nodes.version, pods.version)
        self._last = build_snapshot(
            list(nodes.objects.values()),
            list(pods.objects.values()),
            self.vendors,
            self.config,
            notices=notices,
            quotas=quotas,
            memo=self._memo,
            same_objects=versions == self._built,
            dra=dra,
        )
        self._built = versions
        return self._last

    async def _dra(self, notices: list[str]) -> DraState | None:
        """The ResourceClaims and ResourceSlices (docs/dra.md), listed with each snapshot as the
        quotas are; None where the API server does not serve ``resource.k8s.io/v1``."""
        try:
            claims, slices = await draview.claims_and_slices(self.api)
        except NotFound:
            return None
        except Unavailable:
            raise
        except Exception as exc:  # RBAC may not grant it: DRA unknown, the rest works
            notices.append(f"ResourceClaims cannot be listed ({exc}); DRA allocations not shown")
            return None
        return DraState(claims, slices)

    def _outage(self, exc: Exception) -> Snapshot:
        last = self._last
        if last is None:
            raise SourceError(f"cannot list from the API server: {exc}") from exc
        notice = f"API server unreachable ({exc}); showing the last snapshot"
        stale = replace(last, notices=(notice, *last.notices), stale_since=last.taken_at)
        self._failed = (time.time(), stale)
        return stale

    async def snapshot(self) -> Snapshot:
        fresh = self._fresh()
        if fresh is not None:
            return fresh
        async with self._lock:  # one list at a time; who waited takes the one just made
            fresh = self._fresh()
            return fresh if fresh is not None else await self._list()

    async def _list(self) -> Snapshot:
        watched = self._watched()
        if watched is not None:
            return await self._from_store(*watched)
        try:
            nodes = await self.api.list(NODES)
            pods = await self.api.list(PODS)
        except Exception as exc:  # any transport failure: say so, keep the UI up
            return self._outage(exc)
        self._failed = None
        notices: list[str] = []
        quotas: list[Manifest] | None = None
        try:
            quotas = list((await self.api.list(RESOURCE_QUOTAS)).items)
        except Exception as exc:  # RBAC may not grant it: quotas unknown, the rest works
            notices.append(f"ResourceQuotas cannot be listed ({exc}); quotas not shown")
        try:
            dra = await self._dra(notices)
        except Unavailable as exc:
            notices.append(f"ResourceClaims cannot be listed ({exc}); DRA allocations not shown")
            dra = None
        self._last = build_snapshot(
            nodes.items,
            pods.items,
            self.vendors,
            self.config,
            notices=notices,
            quotas=quotas,
            memo=self._memo,
            dra=dra,
        )
        return self._last


class SimSource:
    """`hami sim` input files: CLUSTER.yaml (Nodes, placed Pods) and PODS.yaml (pods to place,
    in order, as `hami sim` places them; those that do not fit stay Pending)."""

    def __init__(
        self,
        cluster: Path,
        pods: Path | None,
        vendors: Mapping[str, Vendor],
        config: SchedulerConfig,
    ) -> None:
        self.vendors = vendors
        self.config = config
        self._snapshot = sim_snapshot(cluster, pods, vendors, config)

    async def start(self) -> None:
        """Nothing to prime: the snapshot is built already."""

    async def stop(self) -> None:
        """Nothing runs."""

    async def snapshot(self) -> Snapshot:
        """The placed files, as of now (so history keeps sampling them)."""
        return replace(self._snapshot, taken_at=time.time())


class StaticSource:
    """A fixed snapshot (tests, benchmarks)."""

    def __init__(
        self,
        snapshot: Snapshot,
        vendors: Mapping[str, Vendor],
        config: SchedulerConfig | None = None,
    ) -> None:
        self.vendors = vendors
        self.config = config or SchedulerConfig()
        self._snapshot = snapshot

    async def start(self) -> None:
        """Nothing to prime: the snapshot is built already."""

    async def stop(self) -> None:
        """Nothing runs."""

    async def snapshot(self) -> Snapshot:
        return self._snapshot


def read_manifests(path: Path) -> list[Manifest]:
    """Every object of a YAML file (``kind: List`` unpacked)."""
    try:
        return [doc for _, doc in documents(path)]
    except ManifestFileError as exc:
        raise SourceError(str(exc)) from None


def sim_snapshot(
    cluster: Path, pods: Path | None, vendors: Mapping[str, Vendor], config: SchedulerConfig
) -> Snapshot:
    objs = read_manifests(cluster)
    nodes = [o for o in objs if o.get("kind") == "Node"]
    placed = [o for o in objs if o.get("kind") == "Pod"]
    queued = [o for o in read_manifests(pods) if o.get("kind", "Pod") == "Pod"] if pods else []
    quotas = [o for o in objs if o.get("kind") == "ResourceQuota"]
    dra = DraState(
        [o for o in objs if o.get("kind") == "ResourceClaim"],
        [o for o in objs if o.get("kind") == "ResourceSlice"],
    )
    base = build_snapshot(nodes, placed, vendors, config, admit=True, quotas=quotas, dra=dra)
    return place_in_order(base, queued, vendors, config)


def place_in_order(
    base: Snapshot,
    queued: Sequence[Manifest],
    vendors: Mapping[str, Vendor],
    config: SchedulerConfig,
    stop_before: str | None = None,
) -> Snapshot:
    """Place ``queued`` pods one at a time with the core (as `hami sim` does); ``stop_before``
    (``namespace/name``) stops there and leaves that pod and the rest unplaced."""
    view = base.view
    pods = list(base.pods)
    notices = list(base.notices)
    candidates = base.node_names  # DRA nodes left out: kube-scheduler places there
    stopped = False
    for manifest in queued:
        info = _pod_info(manifest, vendors, config, admit=True)
        if info is None:
            continue
        stopped = stopped or info.key == stop_before
        if info.request is None or stopped:
            pods.append(info)
            continue
        decision = decide(info.request, view, vendors, candidates)
        if decision.fit is not None and decision.node is not None:
            view = commit(view, decision)
            devices = {v: decision.fit.devices(v) for v in decision.fit.picks}
            allocations = decision.annotations.get(keys.MIG_ALLOCATIONS)
            placed = PlacedPod(
                info.key,
                decision.node,
                devices,
                info.request.init_count,
                mig=codec.decode_mig_allocations(allocations) if allocations else (),
                task_classes=decision.fit.task_classes(),
            )
            info = replace(info, phase="Running", node=decision.node, placed=placed)
        pods.append(info)
    notices += [f"pod {p.key}: {p.problem}" for p in pods[len(base.pods) :] if p.problem]
    return replace(
        base, pods=tuple(sorted(pods, key=lambda p: p.key)), view=view, notices=tuple(notices)
    )


def slices(placed: PlacedPod) -> list[tuple[int, str, ContainerDevice]]:
    """(container position, vendor, device) for every device a placed pod holds."""
    return [
        (position, vendor, device)
        for vendor, per_container in sorted(placed.devices.items())
        for position, container in enumerate(per_container)
        for device in container
    ]
