"""One node's device plugin: discovery + health + allocator + gRPC service + kubelet session +
registration loop + the sweep of per-container directories, wired together and run as sibling
tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from hami.agent import devices as devlogic
from hami.agent.allocation.allocator import Allocator, HostPrep
from hami.agent.allocation.cdi import write_spec
from hami.agent.allocation.response import stale_container_dirs
from hami.agent.annotator import NodeAnnotator
from hami.agent.config.settings import Settings
from hami.agent.discovery.health import HealthTable, XidPolicy
from hami.agent.discovery.port import DeviceSource
from hami.agent.errors import AgentError
from hami.agent.kubelet.servicer import DevicePluginServicer
from hami.agent.kubelet.session import KubeletSession, PluginServer
from hami.agent.mig.manager import MigManager, Owned, ledger_path
from hami.agent.values import Gpu
from hami.api import keys
from hami.k8s.api import KubeAPIError
from hami.k8s.port import KubePort
from hami.k8s.views import PodSelector

log = logging.getLogger(__name__)

KUBELET_POD_PHASES = frozenset({"Pending"})
MIG_RECONCILE_SECONDS = 10.0  # instances of gone pods are destroyed within this
SWEEP_SECONDS = 60.0  # between sweeps of <hook>/vgpu/containers
LAST_SWEEP_SECONDS = 5.0  # the sweep on the way out may take this long
# On SIGTERM (`withdraw`): after the Deleted_ notice, wait at least this for a scheduler to see
# it (a bind it had already begun then takes the node lock, which the drain waits for) ...
WITHDRAW_SETTLE_SECONDS = 1.0
# ... and at most this for the pods bound here to get their Allocate from this plugin; with
# the last sweep, well inside the chart's terminationGracePeriodSeconds (30 s).
WITHDRAW_DRAIN_SECONDS = 10.0
WITHDRAW_POLL_SECONDS = 0.25


class NodeAgent:
    """Everything the plugin runs for one node."""

    def __init__(
        self,
        settings: Settings,
        source: DeviceSource,
        kube: KubePort,
        *,
        policy: XidPolicy | None = None,
        publish_capacity: bool = False,
        pod_phases: frozenset[str] = KUBELET_POD_PHASES,
    ) -> None:
        self.settings = settings
        self.source = source
        self.kube = kube
        discovered = devlogic.apply_allowlist(source.gpus(), settings.node)
        self._gpus = devlogic.managed(discovered, settings.node)
        self.health = HealthTable({g.uuid: g.healthy for g in self._gpus}, policy or XidPolicy())
        self.host = HostPrep(settings.prepare_host)
        self.mig: MigManager | None = None
        if settings.node.operating_mode == keys.MODE_MIG:
            self.mig = MigManager(
                source.mig(),
                settings.node_name,
                [g.uuid for g in self._gpus],
                ledger=ledger_path(settings),
                disable_idle=settings.node.mig_disable_idle,
            )
        self.allocator = Allocator(
            kube, settings, self.gpus, host=self.host, pod_phases=pod_phases, mig=self.mig
        )
        # set once kubelet has called ListAndWatch: only then is the handshake answered
        self.listed = asyncio.Event()
        self.servicer = DevicePluginServicer(
            self.allocator, self.health, self.gpus, settings.node, on_listed=self.listed.set
        )
        self.annotator = NodeAnnotator(
            kube,
            settings,
            self.gpus,
            source.pair_scores,
            self.health,
            publish_capacity=publish_capacity,
            ready=self.listed,
        )
        server = PluginServer(self.servicer, settings.socket_dir / settings.socket_name)
        self.session = KubeletSession(settings, server)

    def gpus(self) -> Sequence[Gpu]:
        """The managed GPUs (discovered once at start-up, filtered by the node config)."""
        return self._gpus

    async def run(self, *, kubelet: bool = True) -> None:
        """Run until cancelled; ``kubelet=False`` skips the socket (simulate mode)."""
        log.info(
            "node %s: managing %d GPU(s) as %s",
            self.settings.node_name,
            len(self._gpus),
            self.settings.node.resource_name,
        )
        if not kubelet:
            self.listed.set()  # no kubelet to wait for
        if any(s.startswith("cdi") for s in self.settings.list_strategies):
            write_spec(self.settings, self._gpus)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.health.follow(self.source.health_events()))
                tasks.create_task(self.annotator.run())
                tasks.create_task(self._release_finished_lock())
                if self.mig is not None:
                    tasks.create_task(self._reconcile_loop())
                if kubelet:
                    tasks.create_task(self.session.run())
                if self.host.enabled:
                    tasks.create_task(self._sweep_loop())
                    if kubelet:
                        tasks.create_task(self._sweep_deleted())
        finally:
            if self.host.enabled:  # stopping (an uninstall, an update): leave no stale dirs
                await self._last_sweep()

    async def withdraw(
        self,
        *,
        settle: float = WITHDRAW_SETTLE_SECONDS,
        drain: float = WITHDRAW_DRAIN_SECONDS,
        poll: float = WITHDRAW_POLL_SECONDS,
    ) -> list[str]:
        """The first half of a graceful stop, while the kubelet socket is still served: write
        ``Deleted_<now>`` into the node's handshake (the scheduler stops placing pods here
        until the next plugin answers), then serve the Allocate calls of the pods already
        bound here, waiting at least ``settle`` and at most ``drain`` seconds. Returns the
        pods still waiting when the drain gave up (their Allocate goes to the next plugin,
        which kubelet retries with; kubelet may reject them meanwhile). API errors are logged:
        the stop goes on."""
        name = self.settings.node_name
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            await self.annotator.withdraw()
        except (AgentError, KubeAPIError) as exc:
            log.warning("node %s: could not write the stop notice: %s", name, exc)
        await asyncio.sleep(settle)
        waiting: list[str] = []
        while True:
            try:
                waiting = await self.allocator.busy()
            except (AgentError, KubeAPIError) as exc:
                log.warning("node %s: checking pods awaiting Allocate: %s", name, exc)
            if not waiting or loop.time() - began >= drain:
                break
            await asyncio.sleep(poll)
        if waiting:
            log.warning(
                "node %s: stopping with %d pod(s) still awaiting Allocate: %s",
                name,
                len(waiting),
                ", ".join(waiting),
            )
        log.info("node %s: withdrawn after %.1f s", name, loop.time() - began)
        return waiting

    async def reconcile_mig(self) -> list[Owned]:
        """One MIG reconciliation: list this node's pods, destroy what no live pod reserves.
        A failed listing skips the cycle (fail closed)."""
        if self.mig is None:
            return []
        pods = await self.kube.list_pods(self.settings.node_name)
        return await self.mig.reconcile(pods)

    async def _reconcile_loop(self) -> None:
        """At start-up (adoption) and every `MIG_RECONCILE_SECONDS`, so instances of finished
        or deleted pods are gone within that (plus one listing)."""
        while True:
            try:
                await self.reconcile_mig()
            except (AgentError, KubeAPIError, OSError) as exc:
                log.warning("node %s: MIG reconcile skipped: %s", self.settings.node_name, exc)
            await asyncio.sleep(MIG_RECONCILE_SECONDS)

    async def _release_finished_lock(self) -> None:
        try:
            await self.allocator.release_finished_lock()
        except (AgentError, KubeAPIError) as exc:
            log.warning("node %s: checking the node lock: %s", self.settings.node_name, exc)

    async def sweep(self) -> list[str]:
        """Remove the cache directories ``<hook>/vgpu/containers/<podUID>_<container>`` whose
        pod is no longer on this node; returns their names. The directories are read before
        the pods: one created meanwhile is left for the next sweep, and one read first belongs
        to a pod that existed before the listing, so the listing shows it unless it is gone."""
        found = self.host.container_dirs(self.settings)
        if not found:
            return []
        pods = await self.kube.list_pods(self.settings.node_name)
        stale = stale_container_dirs(found, {p.uid for p in pods})
        self.host.remove(self.settings, stale)
        return stale

    async def _sweep_deleted(self) -> None:
        """Remove a pod's cache directories as soon as its deletion is seen (kubelet deletes
        the object once its containers are gone); the periodic sweep catches missed events."""
        async for event in self.kube.watch_pods(PodSelector(node_name=self.settings.node_name)):
            if event.type != "DELETED":
                continue
            prefix = f"{event.pod.uid}_"
            found = [n for n in self.host.container_dirs(self.settings) if n.startswith(prefix)]
            stale = stale_container_dirs(found, set())
            if stale:
                self.host.remove(self.settings, stale)
                log.info("pod %s deleted: removed %s", event.pod.ref, ", ".join(stale))

    async def _last_sweep(self) -> None:
        try:
            async with asyncio.timeout(LAST_SWEEP_SECONDS):
                removed = await self.sweep()
        except (AgentError, KubeAPIError, OSError, TimeoutError) as exc:
            log.warning("node %s: last sweep of cache dirs: %s", self.settings.node_name, exc)
            return
        if removed:
            log.info(
                "node %s: removed %d cache dir(s) on the way out",
                self.settings.node_name,
                len(removed),
            )

    async def _sweep_loop(self) -> None:
        while True:
            try:
                if removed := await self.sweep():
                    log.info(
                        "node %s: removed %d cache dir(s) of deleted pods: %s",
                        self.settings.node_name,
                        len(removed),
                        ", ".join(removed),
                    )
            except (AgentError, KubeAPIError, OSError) as exc:
                log.warning("node %s: sweeping cache dirs: %s", self.settings.node_name, exc)
            await asyncio.sleep(SWEEP_SECONDS)
