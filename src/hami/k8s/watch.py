"""The one list-then-watch loop: list, watch from the list's resourceVersion, resume from the
last seen version when the stream closes (bookmarks advance it), list again on 410 Gone, and
back off (capped, reset by progress) on any other `KubeAPIError` — a refused connection
included — instead of ending."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from hami.k8s import objects
from hami.k8s.api import Gone, Kind, KubeAPI, KubeAPIError, ObjectList, WatchEvent

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Backoff:
    """Exponential reconnect delay: ``first`` doubled per consecutive failure, capped."""

    first: float = 0.2
    cap: float = 10.0
    failures: int = 0

    def next_delay(self) -> float:
        self.failures += 1
        return min(self.first * 2.0 ** min(self.failures - 1, 32), self.cap)

    def reset(self) -> None:
        self.failures = 0


async def list_then_watch(
    api: KubeAPI,
    kind: Kind,
    *,
    label_selector: str | None = None,
    field_selector: str | None = None,
    timeout_seconds: int = 300,
    backoff: Backoff | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> AsyncIterator[ObjectList | WatchEvent]:
    """Forever: an `ObjectList` for every (re-)list, then one `WatchEvent` per change
    (bookmarks are consumed here)."""
    backoff = backoff or Backoff()
    version = ""
    while True:
        try:
            if not version:
                listed = await api.list(
                    kind, label_selector=label_selector, field_selector=field_selector
                )
                backoff.reset()
                version = listed.resource_version
                yield listed
            stream = api.watch(
                kind,
                resource_version=version,
                label_selector=label_selector,
                field_selector=field_selector,
                timeout_seconds=timeout_seconds,
            )
            async for event in stream:
                backoff.reset()
                version = objects.resource_version(event.object) or version
                if event.type != "BOOKMARK":
                    yield event
        except Gone as exc:
            log.info("%s watch: %s; listing again", kind.plural, exc)
            version = ""
        except KubeAPIError as exc:
            delay = backoff.next_delay()
            log.warning("%s watch: %s; retrying in %.1f s", kind.plural, exc, delay)
            await sleep(delay)
