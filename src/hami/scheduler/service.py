"""Wiring: one object that owns the cache, its informers and the request handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from typing import TYPE_CHECKING

from hami.core.config import SchedulerConfig
from hami.core.mutate import MutateSettings
from hami.core.quota import QuotaBook, quota_specs
from hami.core.vendor import QuotaRoom, Vendor
from hami.k8s.api import NODES, PODS, RESOURCE_QUOTAS, KubeAPI, KubeAPIError, Manifest
from hami.scheduler import events
from hami.scheduler.bind import Binder
from hami.scheduler.cache import BadRegistration, Clock, ClusterCache, HandshakeWrite, utcnow
from hami.scheduler.dra_watch import DraWatch
from hami.scheduler.events import EventRecorder, Subject
from hami.scheduler.filter import Filterer, SimulationLimits
from hami.scheduler.informer import Informer, Sink
from hami.scheduler.leader import LeaderElector
from hami.scheduler.metered import MeteredKube
from hami.scheduler.metrics import Metrics, QuotaUsage
from hami.scheduler.nodelock import NodeLocker
from hami.scheduler.pending import PendingPods, PodSource
from hami.scheduler.registration import handshake_specs
from hami.scheduler.selfcheck import SelfCheck
from hami.scheduler.settings import SchedulerSettings
from hami.scheduler.webhook import Webhook

if TYPE_CHECKING:
    from hami.scheduler.dra_admission import DraAdmission

log = logging.getLogger(__name__)
EVENT_WRITERS = 4
RELEASE_TIMEOUT = 5.0  # shutdown: the Lease release gets this long
FLUSH_TIMEOUT = 3.0  # shutdown: queued Events get this long


class NotReady(Exception):
    """This replica cannot answer yet (cache not synced, or not the leader)."""


class SchedulerService:
    def __init__(
        self,
        settings: SchedulerSettings,
        kube: KubeAPI,
        vendors: Mapping[str, Vendor],
        *,
        clock: Clock = utcnow,
    ) -> None:
        config: SchedulerConfig = settings.config
        self.settings = settings
        self.cache = ClusterCache(
            vendors,
            handshake_specs(vendors),
            handshake_timeout=settings.handshake_timeout,
            clock=clock,
            decision_ttl=settings.decision_ttl,
        )
        self.pending = PendingPods(settings.scheduler_name)
        self.elector: LeaderElector | None = None
        self.draining = False  # set by `drain`: no new /filter or /bind is taken
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = asyncio.Event()  # set with `draining`: waits for readiness end
        # DRA mode on: the claims and slices too, for DRA allocations in /metrics (docs/dra.md)
        self.dra_watch = DraWatch() if settings.dra_namespaces is not None else None
        self.metrics = Metrics(
            self.cache,
            quotas=self.quota_usage,
            leader=lambda: self.is_leader,
            dra=self.dra_watch,
        )
        kube = self.kube = MeteredKube(kube, self.metrics.api_error)
        self.quota = QuotaBook(quota_specs(config))
        self.recorder = EventRecorder(kube, settings.scheduler_name, enabled=settings.events)
        self.locker = NodeLocker(
            kube,
            self.cache,
            expiry=settings.node_lock_timeout,
            clock=clock,
            recorder=self.recorder,
            on_reclaim=self.metrics.lock_reclaimed,
        )
        self.selfcheck = SelfCheck(
            kube,
            self.cache,
            self.locker,
            self.recorder,
            vendors,
            interval=settings.self_check_interval,
            leader=lambda: self.is_leader and not self.draining,
            on_drift=self.metrics.drift,
        )
        self.filterer = Filterer(
            kube,
            self.cache,
            vendors,
            config,
            self.recorder,
            clock=clock,
            quota=self.quota_rooms,
            on_decision=self.metrics.decision,
            pods=PodSource(kube, self.pending),
            simulation=SimulationLimits(
                max_nodes=settings.simulation_max_nodes, timeout=settings.simulation_timeout
            ),
        )
        self.binder = Binder(
            kube,
            self.cache,
            self.locker,
            self.recorder,
            lock_wait=settings.bind_lock_wait,
            clock=clock,
            on_lock_wait=self.metrics.lock_wait,
            pods=PodSource(kube, self.pending),
            wants_devices=self.filterer.wants_devices,
        )
        self.webhook = Webhook(
            vendors,
            MutateSettings(
                scheduler_name=settings.scheduler_name,
                force_overwrite_default_scheduler=settings.force_overwrite_default_scheduler,
                runtime_class_name=config.nvidia.runtime_class_name,
            ),
            quota=self.quota_rooms,
            dra=_dra_admission(kube, settings.dra_namespaces),
        )
        if settings.leader_elect:
            self.elector = LeaderElector(
                kube,
                settings.lease_name,
                settings.lease_namespace,
                settings.identity,
                lease_duration=settings.lease_duration,
                renew_interval=settings.renew_interval,
                retry_period=settings.lease_retry_period,
                recorder=self.recorder,
            )
        self.node_informer = Informer(
            kube,
            NODES,
            Sink(self.cache.replace_nodes, self.cache.apply_node),
            label_selector=settings.node_label_selector,
        )
        self.pod_informer = Informer(kube, PODS, Sink(self._replace_pods, self._apply_pod))
        self.quota_informer = Informer(
            kube, RESOURCE_QUOTAS, Sink(self.quota.replace, self.quota.apply)
        )

    def _replace_pods(self, items: Iterable[Manifest]) -> None:
        listed = list(items)
        self.pending.replace(listed)
        self.cache.replace_pods(listed)

    def _apply_pod(self, event: str, pod: Manifest) -> None:
        self.pending.apply(event, pod)
        self.cache.apply_pod(event, pod)

    def quota_rooms(self, namespace: str) -> dict[str, QuotaRoom]:
        """What the namespace's ResourceQuotas still allow, per vendor (empty: no limit)."""
        if not self.quota.limited(namespace):
            return {}
        return self.quota.rooms(namespace, self.cache.pods_in(namespace))

    def quota_usage(self) -> list[QuotaUsage]:
        """Every limited namespace resource with its usage, for `hami_resource_quota_*`."""
        lines = self.quota.lines(self.cache.pods_in)
        return [QuotaUsage(ns, res, float(used), float(limit)) for ns, res, used, limit in lines]

    @property
    def is_leader(self) -> bool:
        return self.elector is None or self.elector.is_leader

    @property
    def ready(self) -> bool:
        return self.is_leader and self.cache.synced and not self.draining

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """One /filter or /bind: refused once draining, else counted until it is done."""
        if self.draining:
            raise NotReady("scheduler is shutting down")
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def drain(self, grace: float) -> bool:
        """Stop taking work and wait up to ``grace`` s for what is in flight; True when idle.

        Binds waiting for a held node lock stop waiting (they fail and release what they took);
        a bind holding its locks finishes.
        """
        self.draining = True
        self._stopping.set()
        self.locker.stopping = True
        try:
            async with asyncio.timeout(grace):
                await self._idle.wait()
        except TimeoutError:
            log.warning("shutdown: %d request(s) still in flight after %gs", self._in_flight, grace)
            return False
        return True

    async def hand_over(self, drained: Awaitable[bool]) -> None:
        """Once nothing is in flight (``drained``), give the Lease up at once: a follower takes
        over while the HTTP server still closes idle and late connections."""
        await drained
        if self.elector is None:
            return
        try:
            async with asyncio.timeout(RELEASE_TIMEOUT):
                await self.elector.hand_over()
        except TimeoutError:
            log.warning("shutdown: the Lease release timed out")

    async def close(self) -> None:
        """After `run` has stopped: give the Lease up and write the queued Events (bounded)."""
        if self.elector is not None:
            try:
                async with asyncio.timeout(RELEASE_TIMEOUT):
                    await self.elector.release()
            except TimeoutError:
                log.warning("shutdown: the Lease release timed out")
        try:
            async with asyncio.timeout(FLUSH_TIMEOUT):
                await self.recorder.flush()
        except TimeoutError:
            log.warning("shutdown: queued Events not all written")

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Raise NotReady unless this replica is the synced leader within ``timeout``.

        A shutdown (`drain`) ends the wait at once.
        """
        if not self.ready and not self.draining:
            wait = self.settings.sync_wait if timeout is None else timeout
            ready = asyncio.ensure_future(self._until_ready(wait))
            stopping = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait([ready, stopping], return_when=asyncio.FIRST_COMPLETED)
            for task in (ready, stopping):
                task.cancel()
            await asyncio.gather(ready, stopping, return_exceptions=True)
        if self.draining:
            raise NotReady("scheduler is shutting down")
        if not self.is_leader:
            raise NotReady("this scheduler replica is not the leader")
        if not self.cache.synced:
            raise NotReady("scheduler cache not synced yet")

    async def _until_ready(self, wait: float) -> None:
        try:
            async with asyncio.timeout(wait):
                if self.elector is not None:
                    await self.elector.wait_leader()
                await self.cache.wait_synced(wait)
        except TimeoutError:
            pass

    async def run(self) -> None:
        """Every background loop; returns only when cancelled."""
        loops = [
            self.node_informer.run(),
            self.pod_informer.run(),
            self.quota_informer.run(),
            self._registrar(),
            self._ticker(),
            *(self.recorder.run() for _ in range(EVENT_WRITERS)),
        ]
        if self.dra_watch is not None:
            loops += [informer.run() for informer in self.dra_watch.informers(self.kube)]
        if self.settings.self_check_interval > 0:
            loops.append(self.selfcheck.run())
        if self.elector is not None:
            loops += [self.elector.run(), self._on_leadership(self.elector)]
        async with asyncio.TaskGroup() as group:
            for loop in loops:
                group.create_task(loop)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.settings.registration_interval)
            self.cache.reassess()
            self.cache.expire()

    async def _on_leadership(self, elector: LeaderElector) -> None:
        while True:
            await elector.changed.wait()
            if elector.is_leader:
                self.cache.reassess()

    async def _registrar(self) -> None:
        """Carry out the cache's node actions (handshake writes, bad-registration events)."""
        while True:
            await self.cache.actions_ready.wait()
            actions = self.cache.take_actions()
            if not self.is_leader:
                continue
            for action in actions:
                await self._act(action)

    async def _act(self, action: HandshakeWrite | BadRegistration) -> None:
        if isinstance(action, BadRegistration):
            subject = Subject("Node", action.node)
            message = f"node skipped, its registration is malformed: {action.message}"
            self.recorder.record(subject, events.REGISTRATION_INVALID, message, warning=True)
            return
        patch = {"metadata": {"annotations": {action.key: action.value}}}
        with contextlib.suppress(KubeAPIError):
            await self.kube.merge_patch(NODES, action.node, patch)


def _dra_admission(kube: KubeAPI, namespaces: tuple[str, ...] | None) -> DraAdmission | None:
    """The webhook's DRA path (docs/dra.md), when DRA mode is on."""
    if namespaces is None:
        return None
    from hami.core.dra.translate import DraMode
    from hami.scheduler.dra_admission import DraAdmission

    return DraAdmission(kube, DraMode(namespaces=frozenset(namespaces)))
