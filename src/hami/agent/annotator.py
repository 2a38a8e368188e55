"""The node registration loop (wire-format.md §5.3): keep `hami.io/node-nvidia-register`
(and `hami.io/node-nvidia-score` when topology scoring is on) up to date, patching only when
the value changed; answer the scheduler's handshake (`hami.io/node-handshake`, §2.7) with
``Reported <time>``; optionally also the node's capacity, as kubelet does (simulate mode).

Every pass compares with the node as it is now (one GET), never with this process's own last
write: a registration or capacity someone else changed — a garbage or ``[null]`` value, a
removed key — is written back on the next pass, so within one ``--register-interval``.

Restarts (docs/device-plugin.md): the handshake is answered only once ``ready`` is set — kubelet
has called ListAndWatch and holds this plugin's devices — so a scheduler that saw the previous
plugin's ``Deleted_<time>`` notice keeps off the node until kubelet can admit its pods;
`withdraw` writes that notice on the way out and answers nothing after it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime

from hami.agent import devices as devlogic
from hami.agent.config.settings import Settings
from hami.agent.discovery.health import HealthTable
from hami.agent.errors import AgentError
from hami.agent.simulation.vendornodes import reported, utcnow
from hami.agent.values import Gpu
from hami.api import keys
from hami.api.annotations import (
    encode_handshake_deleted,
    encode_node_devices,
    encode_pair_scores,
)
from hami.api.types import PairScores
from hami.k8s.api import KubeAPIError
from hami.k8s.port import KubePort
from hami.k8s.views import NodeInfo, annotations_patch

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0


def handshake_answer(current: Mapping[str, str], now: datetime) -> dict[str, str]:
    """``Reported <now>`` for `hami.io/node-handshake` unless the node already carries a
    ``Reported …`` value — so the scheduler's ``Requesting_<time>`` (or a missing key, or
    ``Deleted_<time>``) is answered once per registration pass, as HAMi's plugin did (§2.7)."""
    if current.get(keys.NVIDIA_HANDSHAKE, "").startswith(keys.HANDSHAKE_REPORTED):
        return {}
    return {keys.NVIDIA_HANDSHAKE: reported(now)}


def annotation_changes(
    current: Mapping[str, str], desired: Mapping[str, str], now: datetime, *, answer: bool = True
) -> dict[str, str]:
    """What to patch: the registration values the node lacks, plus the handshake answer
    (``answer`` False: not yet, kubelet does not hold our devices)."""
    todo = {k: v for k, v in desired.items() if current.get(k) != v}
    return {**todo, **(handshake_answer(current, now) if answer else {})}


class NodeAnnotator:
    """Writes one node's registration annotations (and, optionally, its GPU capacity)."""

    def __init__(
        self,
        kube: KubePort,
        settings: Settings,
        gpus: Callable[[], Sequence[Gpu]],
        scores: Callable[[], Sequence[PairScores]],
        health: HealthTable,
        *,
        publish_capacity: bool = False,
        clock: Callable[[], datetime] = utcnow,
        ready: asyncio.Event | None = None,
    ) -> None:
        self._kube = kube
        self._settings = settings
        self._gpus = gpus
        self._scores = scores
        self._health = health
        self._capacity = publish_capacity
        self._clock = clock
        self._ready = ready  # None: answer at once (no kubelet: simulate mode)
        self._writing = asyncio.Lock()  # one patch at a time: the notice lands after an answer
        self.withdrawn = False
        self.patches = 0

    @property
    def answering(self) -> bool:
        """Whether the handshake may be answered now."""
        return not self.withdrawn and (self._ready is None or self._ready.is_set())

    def desired(self) -> dict[str, str]:
        """The annotation values this node should carry now."""
        table = self._health.snapshot()
        infos = devlogic.registration(self._gpus(), table, self._settings.node)
        values = {keys.NVIDIA_REGISTER: encode_node_devices(infos)}
        if self._settings.topology_score:
            values[keys.NVIDIA_SCORE] = encode_pair_scores(self._scores())
        return values

    async def sync(self) -> bool:
        """Patch what differs from the node as it is now; True when a write was made."""
        async with self._writing:
            if self.withdrawn:
                return False
            node = await self._kube.get_node(self._settings.node_name)
            changed = await self._sync_annotations(node)
            if self._capacity:
                changed = await self._sync_capacity(node) or changed
            return changed

    async def withdraw(self) -> None:
        """Write ``Deleted_<now>`` into the handshake key (the plugin is stopping) and write
        nothing after it; a pass under way finishes first. Raises KubeAPIError."""
        async with self._writing:
            self.withdrawn = True
            notice = encode_handshake_deleted(self._clock().astimezone(UTC))
            body = annotations_patch({keys.NVIDIA_HANDSHAKE: notice})
            await self._kube.patch_node(self._settings.node_name, body)
        log.info("node %s: wrote %s=%s", self._settings.node_name, keys.NVIDIA_HANDSHAKE, notice)

    async def _sync_annotations(self, node: NodeInfo) -> bool:
        """One patch when a value differs from the node's or the handshake needs an answer.

        The node is read every pass (not only at start): the scheduler rewrites the handshake
        key, and anyone may have changed the registration."""
        todo = annotation_changes(
            node.annotations, self.desired(), self._clock(), answer=self.answering
        )
        if not todo:
            return False
        await self._kube.patch_node(self._settings.node_name, annotations_patch(todo))
        self.patches += 1
        log.info("node %s: wrote %s", self._settings.node_name, ", ".join(sorted(todo)))
        return True

    async def _sync_capacity(self, node: NodeInfo) -> bool:
        """Capacity = every replica ID, allocatable = the healthy ones (as kubelet reports);
        written when the node's own values differ."""
        listed = devlogic.kubelet_devices(
            self._gpus(), self._health.snapshot(), self._settings.node
        )
        resource = self._settings.node.resource_name
        want = (str(len(listed)), str(sum(d.healthy for d in listed)))
        if (node.capacity.get(resource), node.allocatable.get(resource)) == want:
            return False
        status = {"capacity": {resource: want[0]}, "allocatable": {resource: want[1]}}
        await self._kube.patch_node_status(self._settings.node_name, {"status": status})
        log.info("node %s: wrote %s capacity %s/%s", node.name, resource, *want)
        return True

    async def run(self) -> None:
        """Sync every ``register_interval`` seconds and at once after every health change."""
        interval = self._settings.register_interval
        while not self.withdrawn:
            seen = self._health.version
            waiting = not self.answering
            try:
                await self.sync()
                delay = interval
            except (AgentError, KubeAPIError) as exc:
                log.warning("node %s: registration failed: %s", self._settings.node_name, exc)
                delay = RETRY_SECONDS
            if waiting and self._ready is not None:  # answer as soon as kubelet has the devices
                await _first(self._health.wait_change(seen, delay), self._ready.wait(), delay)
            else:
                await self._health.wait_change(seen, delay)


async def _first(a: Awaitable[object], b: Awaitable[object], timeout: float) -> None:
    """Wait until either finishes (or ``timeout`` s); the other is cancelled."""
    tasks = {asyncio.ensure_future(a), asyncio.ensure_future(b)}
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
