"""``hami device-plugin --simulate``: one process plays the plugin *and* kubelet's side for many
kwok nodes, from fake inventories.

Per node it registers the GPUs (annotations, plus ``nvidia.com/gpu`` capacity/allocatable
through the status subresource, as kubelet would) and, for every pod HAMi bound there, calls
the node's real `Allocator` once per GPU container — init containers first — the way kubelet
calls ``Allocate``. kwok marks bound pods Running on its own, so Running pods count as waiting.
Like kubelet, whose checkpoint remembers what it allocated, a restarted simulator calls
``Allocate`` only for containers whose to-allocate entry is still there: a pod allocated
completely (bind-phase ``success``, every entry blank) is never touched again.

Nodes of any vendor can be played from Node manifests (``--node-manifests``): a
:class:`~hami.agent.simulation.vendornodes.ManifestPlayer` registers them as the manifests say and does the
vendor plugins' post-bind bookkeeping for pods bound there.

Bound pods are found by one pod watch (list + watch, re-listed on 410 Gone), so a pod is
allocated as soon as its binding shows up; a slow full re-list every ``RELIST_SECONDS`` is the
safety net.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hami.agent import devices as devlogic
from hami.agent.allocation.allocator import PreferredRequest, awaits_allocate
from hami.agent.config.settings import Settings
from hami.agent.discovery.fake import FakeSource, load_inventory
from hami.agent.discovery.health import XidPolicy
from hami.agent.errors import AgentError, ConfigError
from hami.agent.mig.manager import fake_mig_state
from hami.agent.plugin import NodeAgent
from hami.agent.simulation.vendornodes import ManifestPlayer
from hami.api import keys
from hami.api.annotations import decode_pod_devices
from hami.api.errors import WireFormatError
from hami.api.types import ContainerDevices
from hami.k8s.api import KubeAPIError
from hami.k8s.port import KubePort
from hami.k8s.views import PodEvent, PodInfo, PodSelector

log = logging.getLogger(__name__)

SIM_POD_PHASES = frozenset({"Pending", "Running"})
RELIST_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class SimNode:
    name: str
    inventory: Path


def parse_nodes(items: Sequence[str], default_inventory: Path | None) -> list[SimNode]:
    """``name=inventory.yaml`` or ``name`` (uses ``--inventory``); items may be comma lists."""
    nodes = []
    for item in (p.strip() for raw in items for p in raw.split(",")):
        if not item:
            continue
        name, sep, path = item.partition("=")
        if sep:
            nodes.append(SimNode(name.strip(), Path(path.strip())))
        elif default_inventory is not None:
            nodes.append(SimNode(name, default_inventory))
        else:
            raise ConfigError(f"--nodes: {item!r} names no inventory and --inventory is not set")
    return nodes


def check_plan(nodes: Sequence[SimNode], manifest_nodes: Sequence[str]) -> None:
    """Something to simulate, and no node both in ``--nodes`` and in a manifest."""
    if not nodes and not manifest_nodes:
        raise ConfigError(
            "--simulate needs --nodes name[=inventory.yaml],… or --node-manifests FILE"
        )
    both = sorted({n.name for n in nodes} & set(manifest_nodes))
    if both:
        raise ConfigError(f"node {both[0]} is both in --nodes and in --node-manifests")


def gpu_count(limits: Mapping[str, str], resource: str) -> int:
    try:
        return max(int(limits.get(resource, "0")), 0)
    except ValueError:
        return 0


def pending_containers(pod: PodInfo, resource: str) -> list[tuple[str, int]]:
    """(name, GPU count) of each container kubelet still calls ``Allocate`` for: it asks for
    ``resource`` and its to-allocate entry (same position: init containers first) is not blank
    yet — a blank one was allocated before (by an earlier run of the simulator). A list that
    does not decode leaves every GPU container in: ``Allocate`` then fails the pod saying why."""
    try:
        value = pod.annotations.get(keys.NVIDIA_TO_ALLOCATE, "")
        entries: Sequence[ContainerDevices] | None = decode_pod_devices(
            value, keys.NVIDIA_TO_ALLOCATE
        )
    except WireFormatError:
        entries = None
    pending = []
    for position, container in enumerate(pod.containers):
        count = gpu_count(container.limits, resource)
        allocated = entries is not None and (position >= len(entries) or not entries[position])
        if count > 0 and not allocated:
            pending.append((container.name, count))
    return pending


class Simulator:
    """Many `NodeAgent`s sharing one Kubernetes client, plus a kubelet stand-in."""

    def __init__(
        self,
        kube: KubePort,
        nodes: Sequence[SimNode],
        settings_for: Callable[[str], Settings],
        policy: XidPolicy | None = None,
        manifests: ManifestPlayer | None = None,
    ) -> None:
        self.kube = kube
        self.manifests = manifests
        self.agents: dict[str, NodeAgent] = {}
        for node in nodes:
            settings = settings_for(node.name)
            source = FakeSource(
                load_inventory(node.inventory, node.name),
                node.inventory,
                node.name,
                mig_state=fake_mig_state(settings),
            )
            self.agents[node.name] = NodeAgent(
                settings,
                source,
                kube,
                policy=policy,
                publish_capacity=True,
                pod_phases=SIM_POD_PHASES,
            )
        self._handled: set[str] = set()
        self._admitting: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for agent in self.agents.values():
                tasks.create_task(agent.run(kubelet=False))
            if self.manifests is not None:
                tasks.create_task(self.manifests.run())
            tasks.create_task(self.watch())
            tasks.create_task(self._relist_loop())

    async def watch(self) -> None:
        """Follow bound pods; each one that starts waiting on a simulated node is admitted once."""
        async for event in self.kube.watch_pods(PodSelector(bound_only=True)):
            self.on_event(event)

    def on_event(self, event: PodEvent) -> asyncio.Task[None] | None:
        """Start admitting the event's pod if it is new and waiting; returns that task."""
        if event.type == "DELETED":
            self._handled.discard(event.pod.uid)
            return None
        admit = self._claim(event.pod)
        if admit is None:
            return None
        task = asyncio.create_task(self._admit_logged(admit, event.pod))
        self._admitting.add(task)
        task.add_done_callback(self._admitting.discard)
        return task

    async def _relist_loop(self) -> None:
        while True:
            await asyncio.sleep(RELIST_SECONDS)
            try:
                if handled := await self.step():
                    log.info(
                        "simulated kubelet: the re-list found %d pods the watch missed", handled
                    )
            except (AgentError, KubeAPIError) as exc:
                log.warning("simulated kubelet: %s", exc)

    async def step(self) -> int:
        """List all pods and admit every waiting one not handled yet; returns how many."""
        pods = await self.kube.list_pods()
        self._handled &= {p.uid for p in pods}
        done = 0
        for pod in pods:
            admit = self._claim(pod)
            if admit is not None:
                await self._admit_logged(admit, pod)
                done += 1
        return done

    def _claim(self, pod: PodInfo) -> Callable[[PodInfo], Awaitable[None]] | None:
        """How to admit the pod if it waits on a simulated node and nobody admitted it yet."""
        if pod.uid in self._handled:
            return None
        agent = self.agents.get(pod.node_name)
        admit: Callable[[PodInfo], Awaitable[None]]
        if agent is not None and awaits_allocate(pod, pod.node_name, SIM_POD_PHASES):
            admit = functools.partial(self.admit, agent)
        elif self.manifests is not None and self.manifests.waiting(pod):
            admit = self.manifests.admit
        else:
            return None
        self._handled.add(pod.uid)
        return admit

    async def _admit_logged(
        self, admit: Callable[[PodInfo], Awaitable[None]], pod: PodInfo
    ) -> None:
        try:
            await admit(pod)
        except (AgentError, KubeAPIError) as exc:
            self._handled.discard(pod.uid)  # still waiting: the next event or re-list retries
            log.warning("simulated kubelet, pod %s: %s", pod.ref, exc)

    async def admit(self, agent: NodeAgent, pod: PodInfo) -> None:
        """What kubelet does for a pod: Allocate for each container that requests GPUs and
        was not allocated yet (`pending_containers`).

        Unlike the real kubelet we know which pod is being admitted, so the allocator is handed
        the pod the watch (or re-list) delivered instead of finding it through the API."""
        for name, count in pending_containers(pod, agent.settings.node.resource_name):
            ids = await self._choose(agent, count, pod)
            try:
                await agent.allocator.allocate([ids], pod)
            except KubeAPIError as exc:
                if exc.status == 0:  # the API is unreachable: the next re-list tries again
                    raise
                log.warning("pod %s container %s: %s", pod.ref, name, exc)
                return
            except AgentError as exc:
                log.warning("pod %s container %s: %s", pod.ref, name, exc)
                return

    async def _choose(self, agent: NodeAgent, count: int, pod: PodInfo) -> list[str]:
        listed = devlogic.kubelet_devices(
            agent.gpus(), agent.health.snapshot(), agent.settings.node
        )
        available = tuple(d.id for d in listed if d.healthy)
        chosen = await agent.allocator.preferred([PreferredRequest(available, (), count)], pod)
        return chosen[0]
