"""`/filter`: pick one node and its devices for a pod, record it, answer kube-scheduler.

Live path (``NodeNames``): decide for the pod the API server holds under the request's UID
(`hami.scheduler.pending`: ours, unbound, unfinished — the body is only a claim) on the cache's
view, *assume* the result in the cache, then write every annotation (and the `hami.io/vgpu-node`
label) in one merge patch; a failed patch undoes the assumption. Simulation path (full
``Nodes``, Cluster Autoscaler): decide on fresh copies of those nodes and change nothing — at
most ``SimulationLimits.max_nodes`` nodes, on a worker thread so the event loop keeps serving,
within ``SimulationLimits.timeout`` seconds, a few at a time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from hami.api import keys
from hami.api.errors import WireFormatError
from hami.api.extender import ExtenderArgs, ExtenderFilterResult
from hami.core.accounting import placed_pod
from hami.core.cluster import ClusterView, NodeState
from hami.core.config import SchedulerConfig
from hami.core.decide import Decision, decide
from hami.core.dra.names import is_dra_node
from hami.core.errors import RequestInvalid
from hami.core.model import PodRequest
from hami.core.nodes import node_from_manifest
from hami.core.quota import QuotaRooms
from hami.core.request import parse_pod
from hami.core.status import DEVICE_TYPE_NOT_FOUND, NODE_UNREGISTERED, Reason, Unfit
from hami.core.vendor import QuotaRoom, Vendor
from hami.k8s import objects
from hami.k8s.api import PODS, KubeAPI, KubeAPIError, Manifest, NotFound
from hami.scheduler import events
from hami.scheduler.cache import Clock, ClusterCache, utcnow
from hami.scheduler.events import EventRecorder, Subject, name_list
from hami.scheduler.pending import PodRefused, PodSource

log = logging.getLogger(__name__)
SETTLE = 0.05  # a no-fit answer waits this long once for in-flight watch events
EVENT_NODES = 10  # node names listed per reason in a FilteringFailed event

# `hami_scheduler_decisions_total` outcomes (the reason label: see `unfit_reason`, `errors`)
PLACED = "placed"
UNFIT = "unfit"
ERROR = "error"
NO_NODES = "NoNodes"  # unfit with no candidate node at all
OTHER = "Other"  # unfit for a vendor's free-form reason
DRA_NODE = "node is in DRA mode (hami.io/dra=true): the DRA plugin serves it"
_KNOWN_REASONS = frozenset({*Reason, NODE_UNREGISTERED, DEVICE_TYPE_NOT_FOUND, DRA_NODE})

DecisionHook = Callable[[str, str], None]  # (outcome, reason)


class FilterError(Exception):
    """The filter cannot answer (bad request, cache not ready, API failure).

    ``reason`` is the error class counted in ``hami_scheduler_decisions_total``.
    """

    def __init__(self, message: str, reason: str = "InvalidRequest") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SimulationLimits:
    max_nodes: int = 5000  # a simulation with more nodes is refused (kube-apiserver's 3 MiB cap)
    timeout: float = 10.0  # its decision gets this long on the worker thread
    queue: int = 4  # simulations waiting or running at once; more are refused


class Filterer:
    def __init__(
        self,
        kube: KubeAPI,
        cache: ClusterCache,
        vendors: Mapping[str, Vendor],
        config: SchedulerConfig,
        recorder: EventRecorder,
        *,
        clock: Clock = utcnow,
        quota: QuotaRooms | None = None,
        on_decision: DecisionHook | None = None,
        pods: PodSource | None = None,
        simulation: SimulationLimits | None = None,
    ) -> None:
        self._pods = pods
        self._simulation = simulation or SimulationLimits()
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="simulate")
        self._simulations = 0
        self._kube = kube
        self._cache = cache
        self._vendors = vendors
        self._config = config
        self._events = recorder
        self._clock = clock
        self._quota = quota or _no_quota
        self._decided = on_decision or _ignore

    async def filter(self, args: ExtenderArgs) -> ExtenderFilterResult:
        """Raises FilterError; the route turns it into the reply's ``Error``."""
        if args.pod is None:
            raise FilterError("extender args missing pod", "BadRequest")
        if args.nodes is not None:
            request = self._parse(args.pod)
            if not request.wants_devices:
                return ExtenderFilterResult(nodes=args.nodes)
            return await self._simulate_off_loop(request, args.nodes)
        pod = await self._pod(args.pod)
        request = self._parse(pod)
        if not request.wants_devices:
            return ExtenderFilterResult(node_names=args.node_names)
        return await self._live(pod, request, args.node_names)

    async def _pod(self, claimed: Manifest) -> Manifest:
        """The pod the API server holds under the claimed UID (the body is not trusted)."""
        if self._pods is None:
            return claimed
        namespace = objects.namespace(claimed) or "default"
        try:
            return await self._pods.pod(namespace, objects.name(claimed), objects.uid(claimed))
        except PodRefused as exc:
            raise FilterError(str(exc), exc.reason) from None

    async def _simulate_off_loop(
        self, request: PodRequest, nodes: Sequence[Manifest]
    ) -> ExtenderFilterResult:
        limits = self._simulation
        if len(nodes) > limits.max_nodes:
            raise FilterError(
                f"simulation with {len(nodes)} nodes refused: at most {limits.max_nodes}",
                "TooManyNodes",
            )
        if self._simulations >= limits.queue:
            raise FilterError(
                f"simulation refused: {self._simulations} already running or waiting", "Busy"
            )
        self._simulations += 1
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._worker, self.simulate, request, nodes)
        try:
            async with asyncio.timeout(limits.timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            raise FilterError(
                f"simulation of {len(nodes)} nodes took longer than {limits.timeout:g}s",
                "Timeout",
            ) from None
        finally:
            # counted until the worker is really done with it (a timed-out one still runs)
            future.add_done_callback(self._simulation_done)

    def _simulation_done(self, future: asyncio.Future[ExtenderFilterResult]) -> None:
        self._simulations -= 1
        if not future.cancelled():
            future.exception()  # retrieved: a late failure is not logged as never retrieved

    def wants_devices(self, pod: Manifest) -> bool:
        """The pod asks for devices this scheduler places (an unreadable request: True)."""
        try:
            return parse_pod(pod, self._vendors, self._config).wants_devices
        except RequestInvalid:
            return True

    def _parse(self, pod: Manifest) -> PodRequest:
        try:
            return parse_pod(pod, self._vendors, self._config)
        except RequestInvalid as exc:
            raise FilterError(str(exc)) from None

    def simulate(self, request: PodRequest, nodes: Sequence[Manifest]) -> ExtenderFilterResult:
        """Side-effect free: every given node fresh (no usage), only the best one returned."""
        states, failed = [], {}
        for manifest in nodes:
            name = objects.name(manifest)
            try:
                node = node_from_manifest(manifest, self._vendors)
            except WireFormatError:
                node = None
            if is_dra_node(objects.labels(manifest)):
                failed[name] = DRA_NODE
                continue
            if node is None or not node.devices:
                failed[name] = NODE_UNREGISTERED
                continue
            states.append(NodeState.of(node))
        decision = decide(request, ClusterView.of(states), self._vendors)
        failed.update(decision.failed_nodes())
        chosen = [n for n in nodes if objects.name(n) == decision.node]
        return ExtenderFilterResult(nodes=tuple(chosen), failed_nodes=failed)

    async def _live(
        self, pod: Manifest, request: PodRequest, names: Sequence[str] | None
    ) -> ExtenderFilterResult:
        uid = objects.uid(pod)
        dra = self._cache.dra_among(names)  # served by the DRA plugin (docs/dra.md), never by us
        if dra:
            names = [n for n in names or () if n not in dra]
        decision = self._decide_and_assume(uid, request, names)
        if not decision.placed:
            generation = self._cache.generation
            await asyncio.sleep(SETTLE)
            if self._cache.generation != generation:
                decision = self._decide_and_assume(uid, request, names)
        subject = Subject("Pod", request.name, request.namespace, uid)
        if not decision.placed:
            self._decided(UNFIT, unfit_reason(decision))
            self._report_unfit(subject, decision)
            await self._drop(subject, uid, pod)
            failed = {**dict.fromkeys(dra, DRA_NODE), **decision.failed_nodes()}
            return ExtenderFilterResult(node_names=(), failed_nodes=failed)
        assert decision.node is not None
        await self._record(subject, uid, decision, self._clock())
        self._decided(PLACED, "")
        fits = f"{decision.node}:{decision.score or 0:.2f}"
        self._events.record(
            subject,
            events.FILTERING_SUCCEED,
            f"find fit node({decision.node}), {len(decision.failed)} nodes not fit, "
            f"1 nodes fit({fits})",
        )
        return ExtenderFilterResult(node_names=(decision.node,), failed_nodes={})

    def _decide_and_assume(
        self, uid: str, request: PodRequest, names: Sequence[str] | None
    ) -> Decision:
        """No await in here: the decision and its assumption are one step."""
        self._cache.release(uid)
        candidates = frozenset(names) if names is not None else None
        quota = self._quota(request.namespace)
        decision = decide(
            request, self._cache.view, self._vendors, candidates=candidates, quota=quota
        )
        if decision.placed and decision.node is not None:
            placed = placed_pod(
                request.key,
                decision.node,
                {**request.annotations, **decision.annotations},  # the pod's: task classes
                self._vendors,
                request.init_count,
            )
            if placed is not None:
                self._cache.assume(uid, placed)
        return decision

    async def _record(self, subject: Subject, uid: str, decision: Decision, now: datetime) -> None:
        annotations = decision.annotations_at(now)
        patch = {
            "metadata": {
                "annotations": annotations,
                "labels": {keys.VGPU_NODE: annotations[keys.VGPU_NODE]},
            }
        }
        try:
            result = await self._kube.merge_patch(PODS, subject.name, patch, subject.namespace)
        except KubeAPIError as exc:
            self._cache.forget(uid)
            message = f"patch pod annotations: {exc}"
            self._events.record(subject, events.FILTERING_FAILED, message, warning=True)
            raise FilterError(message, "KubeAPIError") from exc
        self._cache.confirm(uid, objects.resource_version(result))

    async def _drop(self, subject: Subject, uid: str, pod: Manifest) -> None:
        """The pod fits nowhere now: remove its earlier decision from the pod as well, so the
        annotations say what the cache counts (a fresh cache then counts the same)."""
        carried = bool(objects.annotations(pod).get(keys.VGPU_NODE))
        if not self._cache.drop(uid, carried):
            return
        patch = {
            "metadata": {
                "annotations": {keys.VGPU_NODE: None, keys.VGPU_TIME: None},
                "labels": {keys.VGPU_NODE: None},
            }
        }
        try:
            result = await self._kube.merge_patch(PODS, subject.name, patch, subject.namespace)
        except NotFound:
            self._cache.discard(uid)
            return
        except KubeAPIError as exc:
            self._cache.undrop(uid)  # still on the pod: it counts until the next decision
            log.warning(
                "pod %s/%s: earlier decision not removed: %s", subject.namespace, subject.name, exc
            )
            return
        log.info(
            "pod %s/%s fits nowhere now: its earlier decision removed",
            subject.namespace,
            subject.name,
        )
        self._cache.dropped(uid, objects.resource_version(result))

    def _report_unfit(self, subject: Subject, decision: Decision) -> None:
        by_reason: dict[str, list[str]] = defaultdict(list)
        for node, unfit in sorted(decision.failed.items()):
            by_reason[_headline(unfit)].append(node)
        parts = [f"no available node, {len(decision.failed)} nodes do not meet"]
        parts += [
            f"{len(ns)} nodes {r}({name_list(ns, EVENT_NODES)})"
            for r, ns in sorted(by_reason.items())
        ]
        self._events.record(subject, events.FILTERING_FAILED, "; ".join(parts), warning=True)


def _no_quota(namespace: str) -> Mapping[str, QuotaRoom]:
    return {}


def _ignore(outcome: str, reason: str) -> None:
    pass


def unfit_reason(decision: Decision) -> str:
    """The decision's reason class: the headline that ruled out the most registered nodes.

    Unregistered nodes (CPU nodes kube-scheduler passes along) count only when no registered
    node was tried; a vendor's free-form message is `OTHER`, so the label stays bounded.
    """
    headlines = Counter(_headline(unfit) for unfit in decision.failed.values())
    registered = Counter({r: n for r, n in headlines.items() if r != NODE_UNREGISTERED})
    ranked = registered or headlines
    if not ranked:
        return NO_NODES
    reason = min(ranked.items(), key=lambda item: (-item[1], item[0]))[0]  # most, then by name
    return reason if reason in _KNOWN_REASONS else OTHER


def _headline(unfit: Unfit) -> str:
    """The reason that ruled out most devices (or the node-level message)."""
    if unfit.message or not unfit.counts:
        return unfit.message
    return max(unfit.counts.items(), key=lambda item: (item[1], item[0]))[0]
