"""The UI's own bounded history, without Prometheus: a ring buffer per device (allocation from
each snapshot, utilisation from the node monitors when they answer) and one for the cluster.

Samples are kept at most every ``interval`` seconds; a device keeps ``window`` seconds (one hour
by default), the cluster ``cluster_window`` (a day): each buffer is a ``deque(maxlen=…)``, so
memory is bounded whatever the uptime. What a series is called, its unit and its JSON key come
from `SERIES`, the one definition the API, the charts' legends and the tests share.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from hami.webui.snapshot import Snapshot

WINDOW_S = 3600.0
CLUSTER_WINDOW_S = 86400.0
RANGES = {"15m": 900, "1h": 3600, "6h": 21600, "24h": 86400}  # the charts' range selector


@dataclass(frozen=True, slots=True)
class Series:
    key: str  # the JSON key of a sample
    label: str  # the legend
    colour: str


SERIES = (
    Series("memory_allocated_pct", "memory allocated", "#2a8a57"),
    Series("cores_allocated_pct", "cores allocated", "#3b6fb0"),
    Series("utilisation_pct", "utilisation (monitor)", "#c0672b"),
)


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    memory_mib: int  # allocated
    cores: int  # allocated
    utilisation: float | None  # percent, from the node monitor (mean over devices for a cluster)
    memory_total: int = 0
    cores_total: int = 0

    def values(self) -> dict[str, float | None]:
        """Per `SERIES` key, the value in percent (None: not known)."""
        return {
            "memory_allocated_pct": _pct(self.memory_mib, self.memory_total),
            "cores_allocated_pct": _pct(self.cores, self.cores_total),
            "utilisation_pct": self.utilisation,
        }

    def to_dict(self) -> dict[str, object]:
        return {
            "t": round(self.t, 3),
            "memory_allocated_mib": self.memory_mib,
            "cores_allocated": self.cores,
            **self.values(),
        }


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


class History:
    def __init__(
        self,
        interval: float = 10.0,
        window: float = WINDOW_S,
        cluster_window: float = CLUSTER_WINDOW_S,
    ) -> None:
        self.interval = interval
        self.window = window
        self._maxlen = max(2, math.ceil(window / max(interval, 1.0)) + 1)
        self._series: dict[str, deque[Sample]] = {}
        self.cluster: deque[Sample] = deque(
            maxlen=max(2, math.ceil(cluster_window / max(interval, 1.0)) + 1)
        )
        self._last = float("-inf")

    def record(self, snapshot: Snapshot, utilisation: Mapping[str, float] | None = None) -> bool:
        """Add one sample per device (and one for the cluster) unless the last one is younger
        than ``interval``; a snapshot kept through an outage adds nothing."""
        now = snapshot.taken_at
        if now - self._last < self.interval or snapshot.stale_since is not None:
            return False
        self._last = now
        util = utilisation or {}
        totals = [0, 0, 0, 0]
        seen: list[float] = []
        for state in snapshot.view.states():
            for device, usage in zip(state.node.devices, state.usage, strict=True):
                series = self._series.get(device.uuid)
                if series is None:
                    series = self._series[device.uuid] = deque(maxlen=self._maxlen)
                value = util.get(device.uuid)
                series.append(
                    Sample(now, usage.usedmem, usage.usedcores, value, device.memory, device.cores)
                )
                while series and series[0].t < now - self.window:
                    series.popleft()
                totals[0] += usage.usedmem
                totals[1] += usage.usedcores
                totals[2] += device.memory
                totals[3] += device.cores
                if value is not None:
                    seen.append(value)
        mean = round(sum(seen) / len(seen), 2) if seen else None
        self.cluster.append(Sample(now, totals[0], totals[1], mean, totals[2], totals[3]))
        return True

    def series(self, uuid: str, since: float) -> list[Sample]:
        return [s for s in self._series.get(uuid, ()) if s.t >= since]

    def cluster_series(self, since: float) -> list[Sample]:
        return [s for s in self.cluster if s.t >= since]
