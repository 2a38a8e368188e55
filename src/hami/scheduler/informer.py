"""List-then-watch loops that keep the cache current (one per resource kind).

A list replaces the cache's picture; the watch continues from the list's resourceVersion,
bookmarks advance it, a 410 starts over with a fresh list, and any other failure reconnects
with exponential backoff (capped), re-listing only when the watch cannot resume.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hami.k8s import objects
from hami.k8s.api import Gone, Kind, KubeAPI, KubeAPIError, Manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Sink:
    """Where one kind's objects go: a full list, or one event at a time."""

    replace: Callable[[Iterable[Manifest]], None]
    apply: Callable[[str, Manifest], None]


class Informer:
    def __init__(
        self,
        kube: KubeAPI,
        kind: Kind,
        sink: Sink,
        *,
        label_selector: str | None = None,
        watch_timeout: int = 300,
        backoff: tuple[float, float] = (0.2, 10.0),
    ) -> None:
        self._kube = kube
        self._kind = kind
        self._sink = sink
        self._selector = label_selector
        self._watch_timeout = watch_timeout
        self._backoff = backoff
        self.relists = 0
        self.version: str | None = None  # where the next watch resumes

    async def run(self) -> None:
        """Forever: list, then watch from where the list (or the last event) left off."""
        delay = self._backoff[0]
        while True:
            try:
                if self.version is None:
                    await self._list()
                    delay = self._backoff[0]
                await self._watch(self.version or "")
                delay = self._backoff[0]
            except Gone:
                log.info("%s watch expired (410); listing again", self._kind.plural)
                self.version = None
            except KubeAPIError as exc:
                log.warning("%s watch failed: %s; retrying in %.1fs", self._kind.plural, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])

    async def _list(self) -> None:
        listed = await self._kube.list(self._kind, label_selector=self._selector)
        self.relists += 1
        self._sink.replace(listed.items)
        self.version = listed.resource_version

    async def _watch(self, version: str) -> None:
        stream = self._kube.watch(
            self._kind,
            resource_version=version,
            label_selector=self._selector,
            timeout_seconds=self._watch_timeout,
        )
        async for event in stream:
            rv = objects.resource_version(event.object)
            if event.type != "BOOKMARK":
                self._sink.apply(event.type, event.object)
            if rv:
                self.version = rv
