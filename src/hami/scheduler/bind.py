"""`/bind`: check the pod and the decision, take the node lock, then create the Binding
(wire-format.md §3.13).

Only a pod of ours (the API server's, by UID: our ``schedulerName``, unbound, unfinished) is
bound, and only to the node its filter decision names (docs/security.md).

`hami.io/bind-phase: allocating` and `hami.io/bind-time` ride on the Binding itself (the API
server copies a Binding's annotations onto the pod in the same write), so a bind is two
writes: the lock and the Binding. The lock stays held for the device plugin to release; any
failure releases it here.

A pod using several vendors takes each distinct vendor lock (`hami.io/mutex.lock`, Cambricon's
`cambricon.com/dsmlu.lock`, …) in sorted vendor-key order; a failure releases the ones already
taken, in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import NoReturn

from hami.api import annotations as codec
from hami.api import keys
from hami.api.errors import WireFormatError
from hami.api.extender import ExtenderBindingArgs
from hami.core.accounting import placed_pod
from hami.core.vendor import NodeLockSpec, lock_specs
from hami.k8s import objects
from hami.k8s.api import PODS, KubeAPI, KubeAPIError, Manifest, NotFound
from hami.scheduler import events
from hami.scheduler.cache import Clock, ClusterCache, utcnow
from hami.scheduler.events import EventRecorder, Subject
from hami.scheduler.nodelock import LockContended, LockWaitAborted, NodeLocker
from hami.scheduler.pending import PodRefused, PodSource

log = logging.getLogger(__name__)
LockWaitHook = Callable[[float, str], None]  # (seconds, outcome: acquired/timeout/aborted/error)


class BindError(Exception):
    """The bind failed; the message is the reply's ``Error``."""


class Binder:
    def __init__(
        self,
        kube: KubeAPI,
        cache: ClusterCache,
        locker: NodeLocker,
        recorder: EventRecorder,
        *,
        lock_wait: float = 25.0,
        clock: Clock = utcnow,
        on_lock_wait: LockWaitHook | None = None,
        pods: PodSource | None = None,
        wants_devices: Callable[[Manifest], bool] | None = None,
    ) -> None:
        self._pods = pods
        self._wants_devices = wants_devices or _always
        self._kube = kube
        self._cache = cache
        self._locker = locker
        self._events = recorder
        self._lock_wait = lock_wait
        self._clock = clock
        self._waited = on_lock_wait or _ignore

    async def bind(self, args: ExtenderBindingArgs) -> None:
        """Raises BindError."""
        ns, name, node = args.pod_namespace or "default", args.pod_name, args.node
        if self._pods is None:
            uid = await self._pod_uid(ns, name, args.pod_uid)
        else:
            uid = self._decided(await self._pod(ns, name, args.pod_uid), node)
        subject = Subject("Pod", name, ns, uid)
        if self._cache.node_manifest(node) is None:
            self._fail(subject, f"failed to get node {node}")
        wanted = self._cache.app_vendors(uid)
        self._check_plugin(subject, node, wanted)
        locks = lock_specs(self._cache.vendors, wanted)
        await self._lock_all(subject, node, locks)
        try:
            self._check_plugin(subject, node, wanted)  # the lock wait may have outlasted it
        except BindError:
            await self._release_all(node, ns, name, locks)
            raise
        try:
            await self._kube.bind(ns, name, node, uid=args.pod_uid, annotations=self._phase())
        except KubeAPIError as exc:
            await self._release_all(node, ns, name, locks)
            self._fail(subject, f"bind pod to node {node}: {exc}")
        message = f"Successfully binding node [{node}] to {ns}/{name}"
        self._events.record(subject, events.BINDING_SUCCEED, message)

    def _check_plugin(self, subject: Subject, node: str, wanted: frozenset[str]) -> None:
        """Refuse a node whose device plugin for one of the pod's vendors is stopping or gone
        (its handshake, as the cache last saw it): kubelet would reject the pod
        (`UnexpectedAdmissionError`); kube-scheduler retries it, and the filter keeps it off
        the node until the new plugin has answered (docs/device-plugin.md, "Restarts")."""
        down = sorted(self._cache.vendors_down(node) & wanted)
        if down:
            self._fail(
                subject,
                f"node {node}: the device plugin of {', '.join(down)} is stopping or not"
                " registered yet; kube-scheduler retries the pod",
            )

    async def _pod(self, ns: str, name: str, uid: str) -> Manifest:
        """The pod the API server holds: ours, unbound, unfinished (else BindError)."""
        assert self._pods is not None
        try:
            return await self._pods.pod(ns, name, uid)
        except PodRefused as exc:
            if exc.reason == "PodNotFound" and uid:
                self._cache.discard(uid)
            log.warning("bind refused: %s", exc)
            raise BindError(str(exc)) from None

    def _decided(self, pod: Manifest, node: str) -> str:
        """The pod's UID, once the filter's decision for it names ``node`` (else BindError).

        The decision is the cache's (assumed at /filter, or read from the pod's annotations);
        a pod whose annotations allocate nothing the cache counts (no device, e.g. only
        non-NVIDIA resources) is judged by its `hami.io/vgpu-node` annotation alone, unless it
        holds devices the cache no longer counts (an expired decision).
        """
        uid, key = objects.uid(pod), objects.key(pod)
        placed = self._cache.placed(uid)
        if placed is not None:
            decided: str | None = placed.node
        else:
            annotations = objects.annotations(pod)
            decided = annotations.get(keys.VGPU_NODE) or None
            try:
                holds = placed_pod(key, decided or "", annotations, self._cache.vendors, 0)
            except WireFormatError:
                holds = None
            if decided and holds is not None:
                message = (
                    f"pod {key}: its decision for node {decided} has expired or is not counted;"
                    " kube-scheduler filters it again"
                )
                log.warning("bind refused: %s", message)
                raise BindError(message)
        if decided is None and not self._wants_devices(pod):
            return uid  # nothing of ours to place: the filter passed it through
        if decided is None:
            message = f"pod {key} has no decision of this scheduler (/filter first)"
            log.warning("bind refused: %s", message)
            raise BindError(message)
        if decided != node:
            message = f"pod {key} was placed on node {decided} by the filter, not {node}"
            log.warning("bind refused: %s", message)
            raise BindError(message)
        return uid

    async def _pod_uid(self, ns: str, name: str, uid: str) -> str:
        known = self._cache.known_pod(ns, name)
        if known:
            return known
        try:
            pod = await self._kube.get(PODS, name, ns)
        except NotFound:
            if uid:
                self._cache.discard(uid)
            raise BindError(f"pod {ns}/{name} not found") from None
        except KubeAPIError as exc:
            raise BindError(f"get pod {ns}/{name}: {exc}") from exc
        return objects.uid(pod)

    async def _lock_all(self, subject: Subject, node: str, locks: tuple[NodeLockSpec, ...]) -> None:
        """Take every lock in order; on a failure release those taken, newest first.

        The time spent taking them (waits for a held lock included) is reported once per bind.
        """
        ns, name = subject.namespace, subject.name
        loop = asyncio.get_running_loop()
        started = loop.time()
        for position, lock in enumerate(locks):
            try:
                await self._locker.acquire(node, ns, name, self._lock_wait, lock)
            except LockWaitAborted as exc:
                self._waited(loop.time() - started, "aborted")
                await self._release_all(node, ns, name, locks[:position])
                self._fail(subject, str(exc))
            except LockContended as exc:
                self._waited(loop.time() - started, "timeout")
                await self._release_all(node, ns, name, locks[:position])
                self._fail(subject, f"timed out after {self._lock_wait:g}s: {exc}")
            except KubeAPIError as exc:
                self._waited(loop.time() - started, "error")
                await self._release_all(node, ns, name, locks[: position + 1])
                self._fail(subject, f"lock node {node}: {exc}")
        if locks:
            self._waited(loop.time() - started, "acquired")

    async def _release_all(
        self, node: str, ns: str, name: str, locks: tuple[NodeLockSpec, ...]
    ) -> None:
        for lock in reversed(locks):
            try:
                await self._locker.release(node, ns, name, lock)
            except KubeAPIError as exc:
                log.warning(
                    "node %s: could not release %s of %s/%s: %s", node, lock.key, ns, name, exc
                )

    def _phase(self) -> dict[str, str]:
        return {
            keys.BIND_PHASE: keys.BIND_PHASE_ALLOCATING,
            keys.BIND_TIME: codec.unix_seconds(self._clock()),
        }

    def _fail(self, subject: Subject, message: str) -> NoReturn:
        self._events.record(subject, events.BINDING_FAILED, message, warning=True)
        raise BindError(message)


def _ignore(seconds: float, outcome: str) -> None:
    pass


def _always(pod: Manifest) -> bool:
    return True
