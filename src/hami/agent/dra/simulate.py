"""``hami dra-plugin --simulate``: the DRA twin of ``hami device-plugin --simulate``.

One process publishes the ResourceSlices of many kwok nodes from fake inventories, as each
node's plugin would, and prepares nothing (kwok has no kubelet to ask). Slices are published
concurrently (a bounded number at a time) and re-published every ``interval`` seconds, so an
edited inventory (a GPU marked unhealthy, one added or removed) reaches the pool with a new
generation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

from hami.agent.config.settings import Settings
from hami.agent.discovery.fake import FakeSource, load_inventory
from hami.agent.dra.kube import DraKube
from hami.agent.dra.plugin import DraNode
from hami.agent.errors import ConfigError
from hami.agent.simulation.simulator import SimNode

log = logging.getLogger(__name__)
PARALLEL = 16


class DraSimulator:
    def __init__(self, kube: DraKube, nodes: Sequence[SimNode]) -> None:
        self.kube = kube
        self.plan = list(nodes)
        self.nodes = [
            DraNode(Settings(node_name=n.name, prepare_host=False), _source(n), kube) for n in nodes
        ]
        self._stamps = {n.inventory: _stamp(n.inventory) for n in nodes}

    def reload(self) -> int:
        """Re-read the inventories edited since the last round; returns how many nodes use them."""
        changed = set()
        for path, before in self._stamps.items():
            now = _stamp(path)
            if now != before:
                self._stamps[path] = now
                changed.add(path)
        count = 0
        for plan, node in zip(self.plan, self.nodes, strict=True):
            if plan.inventory in changed:
                try:
                    node.source = _source(plan)
                except ConfigError as exc:  # a half-written edit: the next round reads it
                    log.warning("node %s: %s", plan.name, exc)
                    continue
                count += 1
        return count

    async def publish_all(self) -> int:
        """Publish every node's slice once; returns how many changed."""
        gate = asyncio.Semaphore(PARALLEL)

        async def one(node: DraNode) -> bool:
            async with gate:
                try:
                    return await node.publish() is not None
                except Exception as exc:  # one node's failure must not stop the others
                    log.warning("node %s: %s", node.settings.node_name, exc)
                    return False

        self.reload()
        changed = await asyncio.gather(*(one(n) for n in self.nodes))
        return sum(changed)

    async def run(self, interval: float = 10.0) -> None:
        while True:
            changed = await self.publish_all()
            if changed:
                log.info("published %d of %d simulated nodes' slices", changed, len(self.nodes))
            await asyncio.sleep(interval)


def _source(node: SimNode) -> FakeSource:
    return FakeSource(load_inventory(node.inventory, node.name), node.inventory, node.name)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size)
