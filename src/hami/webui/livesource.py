"""The live source: Nodes and Pods from the API server, kept current by list-then-watch loops,
with the ResourceQuotas and DRA claims and slices listed with each snapshot. An outage shows
the last good snapshot, marked stale.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace

from hami import draview
from hami.core.config import SchedulerConfig
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
from hami.k8s.watch import Backoff, list_then_watch
from hami.webui.decode import DecodeMemo, build_snapshot
from hami.webui.snapshot import DraState, Snapshot, SourceError

log = logging.getLogger(__name__)


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
