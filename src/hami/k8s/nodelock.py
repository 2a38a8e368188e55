"""Releasing a node lock (`hami.io/mutex.lock`, or a vendor's lock key): the one
implementation behind the scheduler's failed bind and the device plugin's finished Allocate.
The lock goes if this pod holds it (or it names no owner), by a merge patch guarded by the
node's resourceVersion, retried on conflicts (wire-format.md §3.13)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from hami.api import keys
from hami.api.annotations import decode_node_lock
from hami.api.errors import WireFormatError
from hami.k8s.api import Conflict
from hami.k8s.views import Json, NodeInfo, annotations_patch

ATTEMPTS = 5


def owned_by(value: str, namespace: str, name: str, key: str = keys.NODE_LOCK) -> bool:
    """Whether the lock ``value`` belongs to pod ``namespace/name``; a lock naming no owner
    (a legacy or vendor bare timestamp) belongs to whoever releases it."""
    try:
        lock = decode_node_lock(value, key)
    except WireFormatError:
        return "," not in value
    if lock.namespace is None:
        return True
    return (lock.namespace, lock.name) == (namespace, name)


async def release_node_lock(
    read: Callable[[], Awaitable[NodeInfo]],
    patch: Callable[[Json], Awaitable[None]],
    namespace: str,
    name: str,
    *,
    key: str = keys.NODE_LOCK,
    node: NodeInfo | None = None,
    pause: float = 0.1,
) -> None:
    """Remove lock ``key`` from the node ``read`` returns if pod ``namespace/name`` holds it.
    ``node``: a recent read, saving the first one (a stale one only costs a conflict and a
    fresh read at once); later conflicts wait ``pause``. `Conflict` when it kept changing."""
    given = node
    for _ in range(ATTEMPTS):
        if node is None:
            node = await read()
        value = node.annotations.get(key)
        if value is None or not owned_by(value, namespace, name, key):
            return
        try:
            await patch(annotations_patch({key: None}, node.resource_version))
            return
        except Conflict:
            if node is given:  # the caller's read was stale: read again at once
                given = node = None
                continue
            node = None
            await asyncio.sleep(pause)
    raise Conflict(f"could not release {key} on node {node.name if node else '?'}: kept changing")
