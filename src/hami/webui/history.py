"""Per-device usage over the last hour: allocation from each snapshot, utilisation from the
node monitors when they answer. Samples are kept at most every ``interval`` seconds."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from hami.webui.source import Snapshot

WINDOW_S = 3600.0


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    memory_mib: int  # allocated
    cores: int  # allocated
    utilisation: float | None  # percent, from the node monitor

    def to_dict(self) -> dict[str, object]:
        return {
            "t": round(self.t, 3),
            "memory_allocated_mib": self.memory_mib,
            "cores_allocated": self.cores,
            "utilisation_pct": self.utilisation,
        }


class History:
    def __init__(self, interval: float = 10.0, window: float = WINDOW_S) -> None:
        self.interval = interval
        self.window = window
        self._series: dict[str, deque[Sample]] = {}
        self._last = float("-inf")

    def record(self, snapshot: Snapshot, utilisation: Mapping[str, float] | None = None) -> bool:
        """Add one sample per device unless the last one is younger than ``interval``."""
        now = snapshot.taken_at
        if now - self._last < self.interval:
            return False
        self._last = now
        util = utilisation or {}
        for state in snapshot.view.states():
            for device, usage in zip(state.node.devices, state.usage, strict=True):
                series = self._series.setdefault(device.uuid, deque())
                series.append(Sample(now, usage.usedmem, usage.usedcores, util.get(device.uuid)))
                while series and series[0].t < now - self.window:
                    series.popleft()
        return True

    def series(self, uuid: str, since: float) -> list[Sample]:
        return [s for s in self._series.get(uuid, ()) if s.t >= since]
