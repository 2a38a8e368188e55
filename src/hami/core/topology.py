"""Topology-aware selection among devices that all fit (wire-format.md §3.9)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

from hami.core.model import Device


def _pair(a: Device, b: Device) -> int:
    return a.pair_scores.get(b.uuid, 0)


def select(devices: Sequence[Device], nums: int) -> list[int]:
    """Indexes into ``devices`` of the chosen set.

    One device: the one least connected to the others (keep well-connected groups free).
    Several: the combination with the highest sum of pairwise scores (first maximum wins).
    """
    if len(devices) <= nums:
        return list(range(len(devices)))
    if nums == 1:
        totals = [sum(_pair(d, other) for other in devices if other is not d) for d in devices]
        return [totals.index(min(totals))]
    best: tuple[int, ...] = ()
    best_score = -1
    for combo in combinations(range(len(devices)), nums):
        score = sum(_pair(devices[i], devices[j]) for i, j in combinations(combo, 2))
        if score > best_score:
            best, best_score = combo, score
    return list(best)
