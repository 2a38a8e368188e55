"""Cluster-wide capacity figures for people (`hami sim`'s report, the web UI's overview)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from hami.core.cluster import ClusterView
from hami.core.model import PodRequest


def ratio(part: int, whole: int) -> float:
    """``part`` of ``whole`` in percent, two decimals (0 when ``whole`` is 0)."""
    return round(100.0 * part / whole, 2) if whole else 0.0


def median_request(pods: Sequence[PodRequest]) -> int:
    """Median memory of the single-GPU requests among ``pods`` (MiB; 0 when there are none)."""
    sizes = [r.memreq for p in pods for c in p.containers for r in c if r.nums == 1 and r.memreq]
    return int(statistics.median(sizes)) if sizes else 0


def fragmentation(view: ClusterView, median: int) -> dict[str, object]:
    """Free memory that no single-GPU request of the median size could use."""
    free = stranded = 0
    for state in view.states():
        for device, usage in zip(state.node.devices, state.usage, strict=True):
            room = max(device.memory - usage.usedmem, 0)
            free += room
            usable = (
                device.health
                and usage.used < device.count
                and usage.usedcores < device.cores
                and room >= median
            )
            if not usable:
                stranded += room
    return {
        "median_request_mib": median,
        "free_memory_mib": free,
        "stranded_memory_mib": stranded,
        "fragmentation_pct": ratio(stranded, free),
    }
