"""Device health: the XID policy and the per-node health table that ListAndWatch follows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass

from hami.agent.values import HealthEvent

log = logging.getLogger(__name__)

# XIDs that are application errors, not device faults (wire-format.md §5.8).
DEFAULT_IGNORED_XIDS = frozenset({13, 31, 43, 45, 68, 109})


@dataclass(frozen=True, slots=True)
class XidPolicy:
    """Which XIDs make a GPU unhealthy (env ``DP_DISABLE_HEALTHCHECKS`` / ``DP_ENABLE_…``)."""

    disabled: bool = False
    ignored: frozenset[int] = DEFAULT_IGNORED_XIDS

    @classmethod
    def from_env(cls, disable: str = "", enable: str = "") -> XidPolicy:
        """``disable``: ``all``/``xids`` or extra XIDs to ignore; ``enable``: XIDs to re-enable."""
        if disable.strip().lower() in ("all", "xids"):
            return cls(disabled=True)
        ignored = set(DEFAULT_IGNORED_XIDS) | _xids(disable)
        return cls(ignored=frozenset(ignored - _xids(enable)))

    def critical(self, event: HealthEvent) -> bool:
        """True when this event should change the device's health."""
        if self.disabled:
            return False
        return event.xid is None or event.xid not in self.ignored


def _xids(text: str) -> set[int]:
    return {int(t) for t in text.replace(" ", "").split(",") if t.isdigit()}


class HealthTable:
    """Current health of every managed GPU; watchers wake on every change (no global state)."""

    def __init__(self, initial: Mapping[str, bool], policy: XidPolicy = XidPolicy()) -> None:
        self._health = dict(initial)
        self._policy = policy
        self._version = 0
        self._changed = asyncio.Condition()

    def snapshot(self) -> dict[str, bool]:
        return dict(self._health)

    @property
    def version(self) -> int:
        return self._version

    async def apply(self, event: HealthEvent) -> bool:
        """Apply one event; True when some device's health actually changed."""
        if not self._policy.critical(event):
            log.info("ignoring health event %s", event)
            return False
        targets: Iterable[str] = self._health if event.uuid is None else (event.uuid,)
        changed = False
        for uuid in targets:
            if uuid in self._health and self._health[uuid] != event.healthy:
                self._health[uuid] = event.healthy
                changed = True
        if changed:
            log.warning("GPU health change: %s", event)
            async with self._changed:
                self._version += 1
                self._changed.notify_all()
        return changed

    async def watch(self) -> AsyncIterator[dict[str, bool]]:
        """The current table at once, then again after every change."""
        seen = -1
        while True:
            async with self._changed:
                while self._version == seen:
                    await self._changed.wait()
                seen = self._version
                table = dict(self._health)
            yield table

    async def wait_change(self, seen: int, timeout: float) -> int:
        """Wait until the version differs from ``seen`` (or ``timeout`` s); the version now."""

        async def changed() -> None:
            async with self._changed:
                while self._version == seen:
                    await self._changed.wait()

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed(), timeout)
        return self._version

    async def follow(self, events: AsyncIterator[HealthEvent]) -> None:
        """Apply a backend's events until cancelled."""
        async for event in events:
            await self.apply(event)
