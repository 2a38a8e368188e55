"""The Grafana dashboard and the docs use only metric names the collectors export."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hami.metrics.monitor import MONITOR_SPECS
from hami.scheduler.metrics import BUILD_INFO, SCHEDULER_SPECS

ROOT = Path(__file__).resolve().parents[2]
OPERATIONAL = {
    "hami_scheduler_requests",
    "hami_scheduler_request_seconds",
    "hami_scheduler_decisions",
    "hami_scheduler_node_lock_wait_seconds",
    "hami_scheduler_kube_api_errors",
    "hami_scheduler_cache_synced",
    "hami_scheduler_cache_nodes",
    "hami_scheduler_cache_pods",
    "hami_scheduler_leader",
    "hami_monitor_region_errors",
    "hami_monitor_regions",
    "hami_monitor_stale_directories_removed",
    "hami_monitor_kube_errors",
    "hami_monitor_last_refresh_timestamp_seconds",
}
KNOWN = {s.name for s in (*SCHEDULER_SPECS, *MONITOR_SPECS, BUILD_INFO)} | OPERATIONAL


def _base(name: str) -> str:
    if name in KNOWN:
        return name
    return re.sub(r"_(bucket|total|count|sum)$", "", name)


def test_dashboard_queries_use_exported_names() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/hami-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {_base(n) for e in exprs for n in re.findall(r"\bhami_[a-z_]+", e)}
    assert used and used <= KNOWN, used - KNOWN


def test_docs_name_every_hami_family() -> None:
    text = (ROOT / "docs/monitoring.md").read_text()
    assert not {n for n in KNOWN if n not in text}
