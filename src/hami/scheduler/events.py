"""Kubernetes Events for pods and nodes, written in the background off the request path."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from hami.api.keys import BINDING_FAILED as BINDING_FAILED
from hami.api.keys import BINDING_SUCCEED as BINDING_SUCCEED
from hami.api.keys import FILTERING_FAILED as FILTERING_FAILED
from hami.api.keys import FILTERING_SUCCEED as FILTERING_SUCCEED
from hami.k8s.api import EVENTS, KubeAPI, KubeAPIError, Manifest

log = logging.getLogger(__name__)

# Reasons: HAMi's (wire-format.md §3.16) are in hami.api.keys; ours follow.
REGISTRATION_INVALID = "RegistrationInvalid"
NODE_LOCK_RECLAIMED = "NodeLockReclaimed"  # a lock whose owner no longer needs it, removed
CACHE_REPAIRED = "CacheRepaired"  # the self-check found the cache differing from a pod
LEADER_ELECTION = "LeaderElection"  # client-go's reason on the Lease: "<id> became leader"
LEASE_RECREATED = "LeaseRecreated"  # the leader found its Lease deleted and wrote it again
MESSAGE_LIMIT = 1024  # characters of an Event message; a longer one is cut and marked


def name_list(names: Sequence[str], limit: int) -> str:
    """``a,b,c`` — or, past ``limit`` names, the first ``limit`` and ``+N more``."""
    shown = ",".join(names[:limit])
    hidden = len(names) - limit
    return f"{shown} +{hidden} more" if hidden > 0 else shown


def clip(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """``message``, or its start and ``… +N more characters`` so the result fits ``limit``."""
    if len(message) <= limit:
        return message
    cut = limit
    while True:  # the marker's own length depends on how much it hides
        marker = f"… +{len(message) - cut} more characters"
        if cut + len(marker) <= limit:
            return message[:cut] + marker
        cut = limit - len(marker)


@dataclass(frozen=True, slots=True)
class Subject:
    kind: str  # "Pod", "Node" or "Lease"
    name: str
    namespace: str = ""
    uid: str = ""
    api_version: str = "v1"  # "coordination.k8s.io/v1" for a Lease


class EventRecorder:
    """Queues events; `run` writes them. A full queue drops events rather than block."""

    def __init__(
        self, kube: KubeAPI, component: str, *, enabled: bool = True, capacity: int = 10_000
    ) -> None:
        self._kube = kube
        self._component = component
        self._enabled = enabled
        self._queue: asyncio.Queue[Manifest] = asyncio.Queue(capacity)
        self.dropped = 0

    def record(self, subject: Subject, reason: str, message: str, warning: bool = False) -> None:
        if not self._enabled:
            return
        try:
            self._queue.put_nowait(self._event(subject, reason, message, warning))
        except asyncio.QueueFull:
            self.dropped += 1

    def _event(self, subject: Subject, reason: str, message: str, warning: bool) -> Manifest:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        namespace = subject.namespace or "default"
        involved = {"apiVersion": subject.api_version, "kind": subject.kind, "name": subject.name}
        if subject.namespace:
            involved["namespace"] = subject.namespace
        if subject.uid:
            involved["uid"] = subject.uid
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{subject.name}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": clip(message),
            "type": "Warning" if warning else "Normal",
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }

    async def run(self) -> None:
        while True:
            event = await self._queue.get()
            await self._write(event)
            self._queue.task_done()

    async def _write(self, event: Manifest) -> None:
        try:
            await self._kube.create(EVENTS, event)
        except KubeAPIError as exc:
            log.debug("event not written: %s", exc)

    async def flush(self) -> None:
        """Write everything queued so far (tests, shutdown)."""
        while not self._queue.empty():
            await self._write(self._queue.get_nowait())
            self._queue.task_done()
