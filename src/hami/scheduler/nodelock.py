"""HAMi's node lock: `hami.io/mutex.lock: <RFC3339>,<namespace>,<pod>` (wire-format.md §3.13).

Vendors may name another lock (`LockingVendor.node_lock`, e.g. Cambricon's bare-time
`cambricon.com/dsmlu.lock` with a 2-minute expiry); every method takes the lock's spec.

Taken by `/bind`, released by the device plugin once the pod's last container is allocated
(or by us when the bind fails). Writes are merge patches guarded by the node's
resourceVersion. The same pod re-enters; a lock older than the timeout, or whose owner pod no
longer exists, is taken over. Unlike HAMi, a contended lock is waited for (event-driven, up to
a deadline) instead of failing the bind at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from hami.api import annotations as codec
from hami.api import keys
from hami.api.errors import WireFormatError
from hami.api.types import NodeLock
from hami.core.vendor import MUTEX_LOCK, NodeLockSpec
from hami.k8s import objects
from hami.k8s.api import NODES, PODS, Conflict, KubeAPI, Manifest, NotFound
from hami.scheduler.cache import Clock, ClusterCache, utcnow

log = logging.getLogger(__name__)
ATTEMPTS = 5


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
    ) -> None:
        self._kube = kube
        self._cache = cache
        self._expiry = timedelta(seconds=expiry)
        self._clock = clock
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
        """True when this pod already holds the lock; raises when someone else does."""
        try:
            lock = codec.decode_node_lock(value, spec.key)
        except WireFormatError as exc:
            log.warning("node %s: replacing unreadable lock: %s", node, exc)
            return False
        if lock.namespace == namespace and lock.name == name:
            return True
        expiry = self._expiry if spec.expiry is None else timedelta(seconds=spec.expiry)
        if self._clock() - lock.time > expiry:
            log.info("node %s: lock %r expired; taking it over", node, value)
            return False
        if lock.namespace and lock.name and not await self._owner_holds(lock, node):
            log.info(
                "node %s: lock owner %s/%s is gone or placed elsewhere; taking over",
                node,
                lock.namespace,
                lock.name,
            )
            return False
        raise LockContended(node, f"{lock.namespace}/{lock.name}" if lock.name else value)

    async def _owner_holds(self, lock: NodeLock, node: str) -> bool:
        """Does the lock's owner pod still exist, placed on this node and not finished?"""
        assert lock.namespace is not None and lock.name is not None
        uid = self._cache.known_pod(lock.namespace, lock.name)
        placed = self._cache.placed(uid) if uid else None
        if placed is not None:
            return placed.node == node
        try:
            pod = await self._kube.get(PODS, lock.name, lock.namespace)
        except NotFound:
            return False
        finished = objects.status(pod).get("phase") in ("Succeeded", "Failed")
        elsewhere = objects.annotations(pod).get(keys.VGPU_NODE, node) != node
        return not (finished or elsewhere)

    async def _drop(self, node: str, namespace: str, name: str, spec: NodeLockSpec) -> None:
        manifest = await self._node(node, fresh=True)  # our own lock may not be cached yet
        for _ in range(ATTEMPTS):
            current = objects.annotations(manifest).get(spec.key)
            if not current or not _owned_by(current, namespace, name):
                return
            try:
                await self._patch(node, manifest, spec.key, None)
                return
            except Conflict:
                manifest = await self._node(node, fresh=True)
            except NotFound:
                return

    async def _patch(self, node: str, manifest: Manifest, key: str, value: str | None) -> None:
        patch = {
            "metadata": {
                "annotations": {key: value},
                "resourceVersion": objects.resource_version(manifest),
            }
        }
        await self._kube.merge_patch(NODES, node, patch)


def _owned_by(value: str, namespace: str, name: str) -> bool:
    try:
        lock = codec.decode_node_lock(value)
    except WireFormatError:
        return False
    return lock.name is None or (lock.namespace == namespace and lock.name == name)
