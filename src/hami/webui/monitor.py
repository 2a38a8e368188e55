"""Device utilisation from the node monitors (`hami monitor`, /metrics on port 9394).

A monitor that does not answer is a notice, never an error: the UI shows allocation anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
from prometheus_client.parser import text_string_to_metric_families

from hami.metrics.monitor import HOST_UTIL
from hami.webui.snapshot import NodeEntry

UTIL_METRIC = HOST_UTIL.name  # the monitor's own definition: a rename cannot break the UI


def parse_utilisation(text: str) -> dict[str, float]:
    """device UUID → utilisation percent, from a monitor's exposition text."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != UTIL_METRIC:
            continue
        for sample in family.samples:
            uuid = sample.labels.get("device_uuid") or sample.labels.get("deviceuuid")
            if uuid:
                found[uuid] = float(sample.value)
    return found


class MonitorProbe:
    """Scrapes ``http://<node InternalIP>:<port>/metrics`` of every registered node."""

    def __init__(self, port: int, timeout: float = 1.0) -> None:
        self.port = port
        self.timeout = timeout

    async def utilisation(self, nodes: Sequence[NodeEntry]) -> tuple[dict[str, float], list[str]]:
        targets = [n for n in nodes if n.node.devices]
        async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as client:
            results = await asyncio.gather(*(self._one(client, n) for n in targets))
        found: dict[str, float] = {}
        notices = []
        for values, notice in results:
            found.update(values)
            if notice:
                notices.append(notice)
        return found, notices

    async def _one(
        self, client: httpx.AsyncClient, node: NodeEntry
    ) -> tuple[dict[str, float], str]:
        if not node.address:
            return {}, f"node {node.name}: no InternalIP, so its monitor cannot be reached"
        url = f"http://{node.address}:{self.port}/metrics"
        try:
            response = await client.get(url)
            response.raise_for_status()
            return parse_utilisation(response.text), ""
        except (httpx.HTTPError, ValueError) as exc:
            return {}, f"node {node.name}: monitor at {url} unreachable ({type(exc).__name__})"
