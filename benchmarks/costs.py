"""Where a batch's CPU and API calls go: per-process CPU time from /proc (Linux) and the API
server's request counters (`apiserver_request_total`), sampled before and after a batch.

The end-to-end benchmarks run every component on the same few cores, so pods/s is bounded by
CPU per pod; these numbers say which component spends it.
"""

from __future__ import annotations

import os
import re
from typing import Any

# command-line fragment → component name (first match wins)
COMPONENTS = (
    ("kube-apiserver", "kube-apiserver"),
    ("/etcd ", "etcd"),
    ("kube-scheduler", "kube-scheduler"),
    ("/kwok ", "kwok"),
    ("hami scheduler", "hami scheduler"),
    ("hami device-plugin", "hami device-plugin"),
)
_LABELS = re.compile(r'(\w+)="([^"]*)"')


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by each component's processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        for fragment, name in COMPONENTS:
            if fragment in cmd:
                out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
                break
    return out


async def api_requests(api: Any) -> dict[str, float]:
    """`apiserver_request_total` summed by "VERB resource[/subresource]"."""
    http = api._http  # the LightkubeAPI's authenticated client; benchmarks only
    text = (await http.get("/metrics")).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels, value = line.rsplit(" ", 1)
        fields = dict(_LABELS.findall(labels))
        resource = fields.get("resource", "")
        if fields.get("subresource"):
            resource += "/" + fields["subresource"]
        key = f"{fields.get('verb', '')} {resource}"
        out[key] = out.get(key, 0.0) + float(value)
    return out


def per_pod(before: dict[str, float], after: dict[str, float], pods: int, scale: float) -> dict:
    """(after − before) × scale / pods for every key that moved, largest first."""
    moved = {k: (v - before.get(k, 0.0)) * scale / pods for k, v in after.items()}
    return {k: round(v, 2) for k, v in sorted(moved.items(), key=lambda kv: -kv[1]) if v >= 0.01}
