"""The priority feedback HAMi's monitor writes into each region every 5 s (§6.4).

Pure: from each container's (recent_kernel, priority, device UUIDs) compute the new
``recent_kernel`` and ``utilization_switch``. One deliberate difference from HAMi: all of a
container's devices are checked for blocking (HAMi stops at its first known device).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Feedback:
    recent_kernel: int
    priority: int
    uuids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Update:
    recent_kernel: int
    utilization_switch: int


def feedback(containers: Sequence[Feedback]) -> list[Update]:
    """New values for each container, in order."""
    decayed = [c.recent_kernel - 1 if c.recent_kernel > 0 else c.recent_kernel for c in containers]
    active: dict[str, Counter[int]] = {}
    for c, recent in zip(containers, decayed, strict=True):
        if recent > 0 and c.priority >= 0:
            for uuid in c.uuids:
                active.setdefault(uuid, Counter())[c.priority] += 1
    updates = []
    for c, recent in zip(containers, decayed, strict=True):
        counts = [active[u] for u in c.uuids if u in active]
        blocked = any(n > 0 and p < c.priority for k in counts for p, n in k.items())
        crowded = any(k[c.priority] > 1 for k in counts)
        if blocked and recent >= 0:
            recent = -1
        elif not blocked and recent < 0:
            recent = 0
        updates.append(Update(recent, 1 if blocked or crowded else 0))
    return updates
