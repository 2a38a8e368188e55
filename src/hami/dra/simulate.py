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

from hami.agent.fake import FakeSource, load_inventory
from hami.agent.settings import Settings
from hami.agent.simulate import SimNode
from hami.dra.kube import DraKube
from hami.dra.plugin import DraNode

log = logging.getLogger(__name__)
PARALLEL = 16


class DraSimulator:
    def __init__(self, kube: DraKube, nodes: Sequence[SimNode]) -> None:
        self.kube = kube
        self.nodes = [
            DraNode(
                Settings(node_name=n.name, prepare_host=False),
                FakeSource(load_inventory(n.inventory, n.name), n.inventory, n.name),
                kube,
            )
            for n in nodes
        ]

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

        changed = await asyncio.gather(*(one(n) for n in self.nodes))
        return sum(changed)

    async def run(self, interval: float = 10.0) -> None:
        while True:
            changed = await self.publish_all()
            if changed:
                log.info("published %d of %d simulated nodes' slices", changed, len(self.nodes))
            await asyncio.sleep(interval)
