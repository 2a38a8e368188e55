"""HAMi's node lock: `hami.io/mutex.lock: <RFC3339>,<namespace>,<pod>` (wire-format.md §3.13).

Vendors may name another lock (`Vendor.node_lock`, e.g. Cambricon's bare-time
`cambricon.com/dsmlu.lock` with a 2-minute expiry); every method takes the lock's spec.

Taken by `/bind`, released by the device plugin once the pod's last container is allocated
(or by us when the bind fails). Writes are merge patches guarded by the node's
resourceVersion. The same pod re-enters. A lock whose owner no longer needs it is taken over
at once (not waited out): the owner pod is gone, finished, placed on another node, or already
allocated (bind-phase ``success``/``failed``: a device plugin that crashed before releasing);
so is an unreadable lock or one older than the timeout. Each takeover is logged and written as
a Node Event `NodeLockReclaimed` (a bind overtaking an allocated owner's own release, the
everyday race with the device plugin, only at INFO); `reclaim` (the self-check) removes such locks even when no
bind comes for the node. Unlike HAMi, a contended lock is waited for (event-driven, up to a
deadline) instead of failing the bind at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta

from hami.api import annotations as codec
from hami.api import keys
from hami.api.errors import WireFormatError
from hami.api.types import NodeLock
from hami.core.vendor import MUTEX_LOCK, NodeLockSpec
from hami.k8s import objects
from hami.k8s.api import NODES, PODS, Conflict, KubeAPI, Manifest, NotFound
from hami.k8s.nodelock import release_node_lock
from hami.k8s.views import Json, NodeInfo
from hami.scheduler import events
from hami.scheduler.cache import Clock, ClusterCache, bind_done, utcnow
from hami.scheduler.events import EventRecorder, Subject

log = logging.getLogger(__name__)
ATTEMPTS = 5
ReclaimHook = Callable[[str], None]  # the reason a lock was reclaimed (see `STALE_REASONS`)

# why a lock no longer holds: `hami_scheduler_node_locks_reclaimed_total{reason}`
UNREADABLE = "unreadable"
EXPIRED = "expired"
OWNER_GONE = "owner-gone"
OWNER_FINISHED = "owner-finished"
OWNER_ELSEWHERE = "owner-elsewhere"
OWNER_ALLOCATED = "owner-allocated"
STALE_REASONS = (UNREADABLE, EXPIRED, OWNER_GONE, OWNER_FINISHED, OWNER_ELSEWHERE, OWNER_ALLOCATED)
TAKEN_OVER = "taken over"  # by a bind
RELEASED = "released"  # by the self-check
_EXPLAINED = {
    UNREADABLE: "it cannot be read",
    EXPIRED: "it expired",
    OWNER_GONE: "its owner pod no longer exists",
    OWNER_FINISHED: "its owner pod has finished",
    OWNER_ELSEWHERE: "its owner pod is placed on another node",
    OWNER_ALLOCATED: "its owner pod is already allocated",
}


class LockContended(Exception):
    """Another pod holds the node lock."""

    def __init__(self, node: str, holder: str) -> None:
        super().__init__(f"node {node} is locked by {holder}: node lock contention")
        self.node = node
        self.holder = holder


class LockWaitAborted(Exception):
    """The scheduler is shutting down: a held lock is no longer waited for."""

    def __init__(self, node: str, holder: str) -> None:
        super().__init__(f"scheduler shutting down; node {node} is locked by {holder}")
        self.node = node


class NodeLocker:
    def __init__(
        self,
        kube: KubeAPI,
        cache: ClusterCache,
        *,
        expiry: float = 300.0,
        clock: Clock = utcnow,
        recorder: EventRecorder | None = None,
        on_reclaim: ReclaimHook | None = None,
    ) -> None:
        self._kube = kube
        self._cache = cache
        self._expiry = timedelta(seconds=expiry)
        self._clock = clock
        self._events = recorder
        self._reclaimed = on_reclaim or _ignore
        self._local: dict[str, asyncio.Lock] = {}
        self.stopping = False  # set on shutdown: a held lock is not waited for any longer

    async def acquire(
        self,
        node: str,
        namespace: str,
        name: str,
        wait: float = 0.0,
        lock: NodeLockSpec = MUTEX_LOCK,
    ) -> None:
        """Take the lock for pod ``namespace/name``, waiting up to ``wait`` seconds for it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            try:
                await self._serialised(node, lambda: self._take(node, namespace, name, lock))
                return
            except LockContended as exc:
                if self.stopping:
                    raise LockWaitAborted(node, exc.holder) from exc
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise
                await self._cache.node_changed(node, min(remaining, 1.0))

    async def release(
        self, node: str, namespace: str, name: str, lock: NodeLockSpec = MUTEX_LOCK
    ) -> None:
        """Remove the lock if this pod holds it (a legacy owner-less lock counts as ours)."""
        await self._serialised(node, lambda: self._drop(node, namespace, name, lock))

    async def _serialised(self, node: str, action: Callable[[], Awaitable[None]]) -> None:
        lock = self._local.setdefault(node, asyncio.Lock())
        async with lock:
            await action()

    async def _node(self, node: str, fresh: bool) -> Manifest:
        cached = None if fresh else self._cache.node_manifest(node)
        return cached if cached is not None else await self._kube.get(NODES, node)

    async def _take(self, node: str, namespace: str, name: str, spec: NodeLockSpec) -> None:
        manifest = await self._node(node, fresh=False)
        for _ in range(ATTEMPTS):
            current = objects.annotations(manifest).get(spec.key)
            if current and await self._held(node, current, namespace, name, spec):
                return
            owner = NodeLock(self._clock(), namespace, name)
            value = codec.encode_node_lock(owner if spec.owner else NodeLock(owner.time))
            try:
                await self._patch(node, manifest, spec.key, value)
                return
            except Conflict:
                manifest = await self._node(node, fresh=True)
        raise LockContended(node, "a racing writer")

    async def _held(
        self, node: str, value: str, namespace: str, name: str, spec: NodeLockSpec
    ) -> bool:
        """True when this pod already holds the lock; raises when someone else does.

        False (take it over) when the lock no longer holds (`stale`)."""
        with contextlib.suppress(WireFormatError):
            lock = codec.decode_node_lock(value, spec.key)
            if lock.namespace == namespace and lock.name == name:
                return True
        reason = await self.stale(node, value, spec)
        if reason:
            self._report(node, spec, value, reason, TAKEN_OVER)
            return False
        raise LockContended(node, _holder(value, spec))

    async def stale(self, node: str, value: str, spec: NodeLockSpec = MUTEX_LOCK) -> str:
        """Why the lock ``value`` on ``node`` no longer holds (a `STALE_REASONS` entry), or ""
        while it does: readable, not expired, and its owner (if it names one) still needs it."""
        try:
            lock = codec.decode_node_lock(value, spec.key)
        except WireFormatError:
            return UNREADABLE
        expiry = self._expiry if spec.expiry is None else timedelta(seconds=spec.expiry)
        if self._clock() - lock.time > expiry:
            return EXPIRED
        if lock.namespace and lock.name:
            return await self._owner_done(lock, node)
        return ""

    async def _owner_done(self, lock: NodeLock, node: str) -> str:
        """Why the lock's owner pod no longer needs the lock ("" while it does: it exists, is
        placed on this node, not finished, and the device plugin is not through with it)."""
        assert lock.namespace is not None and lock.name is not None
        uid = self._cache.known_pod(lock.namespace, lock.name)
        placed = self._cache.placed(uid) if uid else None
        if uid and placed is not None:
            if placed.node != node:
                return OWNER_ELSEWHERE
            return OWNER_ALLOCATED if self._cache.allocated(uid) else ""
        try:
            pod = await self._kube.get(PODS, lock.name, lock.namespace)
        except NotFound:
            return OWNER_GONE
        if objects.status(pod).get("phase") in ("Succeeded", "Failed"):
            return OWNER_FINISHED
        annotations = objects.annotations(pod)
        if annotations.get(keys.VGPU_NODE, node) != node:
            return OWNER_ELSEWHERE
        return OWNER_ALLOCATED if bind_done(annotations) else ""

    async def reclaim(self, node: str, specs: Iterable[NodeLockSpec] = (MUTEX_LOCK,)) -> list[str]:
        """Remove the node's locks that no longer hold (the self-check); the reasons, one per
        lock removed. A lock that changed meanwhile is left for the next round."""
        removed: list[str] = []
        for spec in specs:
            await self._serialised(node, functools.partial(self._reclaim, node, spec, removed))
        return removed

    async def _reclaim(self, node: str, spec: NodeLockSpec, removed: list[str]) -> None:
        cached = self._cache.node_manifest(node)
        value = objects.annotations(cached).get(spec.key) if cached is not None else None
        if not value:
            return
        reason = await self.stale(node, value, spec)
        if not reason:
            return
        try:
            manifest = await self._node(node, fresh=True)
            if objects.annotations(manifest).get(spec.key) != value:
                return  # changed meanwhile: judged again next round
            await self._patch(node, manifest, spec.key, None)
        except (Conflict, NotFound):
            return
        self._report(node, spec, value, reason, RELEASED)
        removed.append(reason)

    def _report(self, node: str, spec: NodeLockSpec, value: str, reason: str, what: str) -> None:
        """Log line, metric and Node Event — but a bind taking over from an owner already
        allocated is the everyday race with the device plugin's own release: logged at INFO."""
        message = f"node lock {spec.key} of {_holder(value, spec)} {what}: {_EXPLAINED[reason]}"
        self._reclaimed(reason)
        if reason == OWNER_ALLOCATED and what == TAKEN_OVER:
            log.info("node %s: %s", node, message)
            return
        log.warning("node %s: %s", node, message)
        if self._events is not None:
            self._events.record(Subject("Node", node), events.NODE_LOCK_RECLAIMED, message)

    async def _drop(self, node: str, namespace: str, name: str, spec: NodeLockSpec) -> None:
        async def read() -> NodeInfo:  # our own lock may not be cached yet: always fresh
            return NodeInfo.from_json(await self._node(node, fresh=True))

        async def patch(body: Json) -> None:
            await self._kube.merge_patch(NODES, node, body)

        with contextlib.suppress(Conflict, NotFound):  # kept changing, or the node is gone
            await release_node_lock(read, patch, namespace, name, key=spec.key, pause=0.0)

    async def _patch(self, node: str, manifest: Manifest, key: str, value: str | None) -> None:
        patch = {
            "metadata": {
                "annotations": {key: value},
                "resourceVersion": objects.resource_version(manifest),
            }
        }
        await self._kube.merge_patch(NODES, node, patch)


def _holder(value: str, spec: NodeLockSpec) -> str:
    try:
        lock = codec.decode_node_lock(value, spec.key)
    except WireFormatError:
        return repr(value)
    return f"{lock.namespace}/{lock.name}" if lock.name else repr(value)


def _ignore(reason: str) -> None:
    pass
