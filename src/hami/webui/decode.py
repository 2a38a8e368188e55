"""Node and Pod manifests into a `Snapshot`, with the decision core's own decoders, so what the
UI shows is what the scheduler sees.

Nothing is dropped silently: a node without a registration is shown without devices, a
malformed registration or allocation becomes a notice, and the rest keeps working. A live
source decodes only what changed (`DecodeMemo`) and accounts again only the nodes a change
touched (`core_view`). DRA claims and slices join in `hami.webui.dradecode`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

from hami import devconfig
from hami.api import keys
from hami.api.errors import WireFormatError
from hami.core import accounting
from hami.core.accounting import PlacedPod, placed_pod
from hami.core.cluster import ClusterView, NodeState
from hami.core.config import SchedulerConfig
from hami.core.errors import RequestInvalid
from hami.core.model import Node, PodRequest
from hami.core.nodes import node_from_manifest
from hami.core.quota import QuotaBook, quota_specs
from hami.core.request import parse_pod
from hami.core.vendor import Vendor
from hami.k8s import objects
from hami.k8s.api import Manifest
from hami.k8s.objects import TERMINAL_PHASES
from hami.webui.dradecode import _with_dra
from hami.webui.snapshot import DraState, NodeEntry, PodEntry, Snapshot


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
