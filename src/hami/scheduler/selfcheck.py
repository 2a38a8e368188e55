"""The periodic self-check: the cache against the pods' own annotations, and stale node locks.

Every ``--self-check-interval`` (30 s; 0 turns it off) each replica lists the pods, waits a
moment for its watch to catch up with that list, and compares what the cache counts with what
the rule says each pod counts (`ClusterCache.audit`: the pods' allocation annotations; decisions
in flight are skipped). Every difference is repaired, logged, written as a Pod Event
`CacheRepaired`, and the counts by kind are exported as ``hami_scheduler_cache_drift{kind}``
(0 when the cache agrees). The leader then removes the node locks that no longer hold
(`NodeLocker.reclaim`: owner gone, finished, elsewhere or already allocated, expired or
unreadable), so a lock left by a crashed device plugin goes even when no bind comes to its node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from hami.core.vendor import Vendor, lock_specs
from hami.k8s.api import PODS, KubeAPI, KubeAPIError
from hami.scheduler import events
from hami.scheduler.cache import ClusterCache, Drift
from hami.scheduler.events import EventRecorder, Subject
from hami.scheduler.nodelock import NodeLocker

log = logging.getLogger(__name__)
SETTLE = 1.0  # after the list, the watch gets this long to deliver what the list already shows
EVENTS_PER_CHECK = 20  # CacheRepaired Events written per self-check at most
DriftHook = Callable[[int, int, int], None]  # (missing, extra, different)


class SelfCheck:
    def __init__(
        self,
        kube: KubeAPI,
        cache: ClusterCache,
        locker: NodeLocker,
        recorder: EventRecorder,
        vendors: Mapping[str, Vendor],
        *,
        interval: float = 30.0,
        settle: float = SETTLE,
        leader: Callable[[], bool] = lambda: True,
        on_drift: DriftHook | None = None,
    ) -> None:
        self._kube = kube
        self._cache = cache
        self._locker = locker
        self._events = recorder
        self._locks = lock_specs(vendors, vendors)
        self.interval = interval
        self.settle = settle
        self._leader = leader
        self._drifted = on_drift or _ignore
        self.checks = 0
        self.last = Drift()

    async def run(self) -> None:
        """Check every ``interval`` seconds once the cache has synced; returns when cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            if not self._cache.synced:
                continue
            try:
                await self.check()
            except KubeAPIError as exc:
                log.warning("self-check skipped: %s", exc)

    async def check(self) -> Drift:
        """One round: compare and repair the cache, then (as leader) remove stale locks."""
        listed = await self._kube.list(PODS)
        await asyncio.sleep(self.settle)
        drift = self._cache.audit(listed.items, listed.resource_version)
        self.checks += 1
        self.last = drift
        self._drifted(len(drift.missing), len(drift.extra), len(drift.different))
        if drift.total:
            log.warning(
                "self-check: the cache differed from the pods' annotations and was repaired: "
                "missing %s, extra %s, different %s",
                list(drift.missing),
                list(drift.extra),
                list(drift.different),
            )
            self._report(drift)
        if self._leader():
            await self.reclaim_locks()
        return drift

    async def reclaim_locks(self) -> int:
        """Remove every node lock that no longer holds; how many were removed."""
        removed = 0
        for node, held in self._cache.locked_nodes({s.key for s in self._locks}).items():
            specs = [s for s in self._locks if s.key in held]
            try:
                removed += len(await self._locker.reclaim(node, specs))
            except KubeAPIError as exc:
                log.warning("self-check: locks of node %s not checked: %s", node, exc)
        return removed

    def _report(self, drift: Drift) -> None:
        kinds = (
            ("missing", drift.missing, "allocates devices the cache did not count"),
            ("extra", drift.extra, "was counted by the cache but allocates nothing"),
            ("different", drift.different, "was counted with other devices than it allocates"),
        )
        written = 0
        for _, keys, what in kinds:
            for key in keys:
                if written >= EVENTS_PER_CHECK:
                    return
                namespace, _, name = key.partition("/")
                message = f"scheduler cache repaired: the pod {what}"
                self._events.record(
                    Subject("Pod", name, namespace), events.CACHE_REPAIRED, message, warning=True
                )
                written += 1


def _ignore(missing: int, extra: int, different: int) -> None:
    pass
