"""Leader election on a `coordination.k8s.io/v1` Lease (`--leader-elect`).

The holder renews every ``renew_interval``; a follower takes the Lease over once it has seen
the same record unchanged for ``lease_duration`` (judged on its own monotonic clock, so clock
skew between replicas does not matter). A leader that cannot renew within the duration steps
down. A follower reads the Lease every ``retry_period`` (client-go's ``RetryPeriod``; shorter
than the renew interval, so a released Lease is taken within one such period) and checks again
just after the record it saw would expire, so failover takes at most ``lease_duration +
retry_period`` after the leader's last renewal.

Bad input: a Lease held by an identity no replica knows is judged like any other record — a
holder that keeps renewing is followed, one that stops is taken over after the duration (a log
line and a `LeaderElection` Event on the Lease name both holders). A Lease deleted by hand is
written again by the leader at its next renewal (log line, Event `LeaseRecreated`); a follower
that saw the Lease before treats "missing" as one more unchanged record and creates it only
after a full duration, so the leader keeps it without a moment of two leaders. A create or
renewal that loses a race (409) is a lost round, never a won one.

On a graceful shutdown the leader gives the Lease up (`release`, client-go's
``ReleaseOnCancel``): an empty ``holderIdentity`` with a 1 s duration, which a follower takes
over at its next check instead of waiting the duration out.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime

from hami.k8s import objects
from hami.k8s.api import LEASES, Conflict, KubeAPI, KubeAPIError, Manifest, NotFound
from hami.scheduler import events
from hami.scheduler.events import EventRecorder, Subject

log = logging.getLogger(__name__)
EXPIRY_MARGIN = 0.05  # seconds past the expiry a follower checks again
MISSING = ("", "<lease missing>")  # the observed record while the Lease does not exist


def micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime: RFC3339 with microseconds, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        kube: KubeAPI,
        name: str,
        namespace: str,
        identity: str,
        *,
        lease_duration: float = 10.0,
        renew_interval: float = 2.0,
        retry_period: float | None = None,
        monotonic: Callable[[], float] | None = None,
        recorder: EventRecorder | None = None,
    ) -> None:
        self._kube = kube
        self._name = name
        self._namespace = namespace
        self.identity = identity
        self._duration = lease_duration
        self._renew = renew_interval
        self._retry = renew_interval if retry_period is None else min(retry_period, renew_interval)
        self._now = monotonic or (lambda: asyncio.get_running_loop().time())
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self._renewed_at = -math.inf
        self._lease: Manifest | None = None  # the Lease as this replica last wrote it
        self._events = recorder
        self.is_leader = False
        self.changed = asyncio.Event()
        self._stopped = False
        self._rounds = asyncio.Lock()  # one round (or the release) at a time

    async def run(self) -> None:
        while not self._stopped:
            await self.step()
            await asyncio.sleep(self.next_delay())

    async def hand_over(self) -> bool:
        """Stop competing and give the Lease up now (a graceful shutdown with nothing left in
        flight): a round already under way finishes first, so none renews after the release."""
        self._stopped = True
        return await self.release()

    def next_delay(self) -> float:
        """The leader renews every ``renew_interval``; a follower looks every ``retry_period``
        (a released Lease is taken within one) and also wakes just after the observed record
        would expire, so a takeover does not wait out another period."""
        if self.is_leader:
            return self._renew
        if self._observed is None:
            return self._retry
        expires_in = self._observed_at + self._duration - self._now() + EXPIRY_MARGIN
        return min(self._retry, max(expires_in, EXPIRY_MARGIN))

    async def step(self) -> None:
        """One round: acquire or renew; update ``is_leader``."""
        async with self._rounds:
            if not self._stopped:
                await self._round()

    async def _round(self) -> None:
        try:
            won = await self._try()
        except KubeAPIError as exc:
            log.warning("lease %s/%s: %s", self._namespace, self._name, exc)
            won = self.is_leader and self._now() - self._renewed_at < self._duration
        self._set(won)

    async def wait_leader(self) -> None:
        while not self.is_leader:
            await self.changed.wait()

    async def _try(self) -> bool:
        try:
            lease = await self._kube.get(LEASES, self._name, self._namespace)
        except NotFound:
            return await self._create()
        spec = objects.spec(lease)
        holder = str(spec.get("holderIdentity") or "")
        record = (holder, str(spec.get("renewTime") or ""))
        if record != self._observed:
            if holder and holder != self.identity and holder != self._observed_holder:
                log.info("lease %s/%s is held by %s", self._namespace, self._name, holder)
            self._observed, self._observed_at = record, self._now()
        mine = holder == self.identity
        stale_for = self._now() - self._observed_at
        expired = not holder or stale_for > self._duration
        if not mine and not expired:
            return False
        try:
            self._lease = await self._kube.replace(
                LEASES, self._name, self._record(lease), self._namespace
            )
        except Conflict:
            return False
        self._renewed_at = self._now()
        if not mine:
            self._took_over(holder, stale_for)
        return True

    @property
    def _observed_holder(self) -> str:
        return self._observed[0] if self._observed is not None else ""

    async def _create(self) -> bool:
        """The Lease does not exist: the leader writes it again at once; a follower that saw
        it before waits a full duration (the leader's chance), one that never did creates it."""
        now = self._now()
        if self.is_leader:
            log.warning(
                "lease %s/%s was deleted; %s writes it again",
                self._namespace,
                self._name,
                self.identity,
            )
        elif self._observed is not None:
            if self._observed != MISSING:
                log.warning(
                    "lease %s/%s is missing (held by %r before)",
                    self._namespace,
                    self._name,
                    self._observed_holder,
                )
                self._observed, self._observed_at = MISSING, now
            if now - self._observed_at <= self._duration:
                return False
        try:
            self._lease = await self._kube.create(LEASES, self._record(None), self._namespace)
        except Conflict:
            return False  # someone else created it first
        self._renewed_at = self._now()
        if self.is_leader:
            self._event(events.LEASE_RECREATED, f"{self.identity} wrote the deleted Lease again")
        elif self._observed is not None:
            self._took_over("", now - self._observed_at, missing=True)
        else:
            self._event(events.LEADER_ELECTION, f"{self.identity} became leader")
        return True

    def _took_over(self, holder: str, stale_for: float, missing: bool = False) -> None:
        if missing:
            why = f"the Lease had been missing for {stale_for:.1f}s"
        elif holder:
            why = f"took over from {holder}, not renewed for {stale_for:.1f}s"
        else:
            why = "the Lease was released"
        message = f"{self.identity} became leader ({why})"
        if holder or missing:
            log.warning("lease %s/%s: %s", self._namespace, self._name, message)
        self._event(events.LEADER_ELECTION, message)

    def _event(self, reason: str, message: str) -> None:
        if self._events is None:
            return
        subject = Subject(
            "Lease", self._name, self._namespace, api_version="coordination.k8s.io/v1"
        )
        self._events.record(subject, reason, message)

    async def release(self) -> bool:
        """Give the Lease up if this replica holds it; True when the release was written.

        As client-go's ``ReleaseOnCancel``: the record this replica last wrote, with an empty
        ``holderIdentity``, ``leaseDurationSeconds: 1`` and fresh acquire/renew times (the
        transition count kept). Guarded by that record's resourceVersion, so a Lease someone
        else has taken meanwhile is left alone. Call it after `run` has stopped.
        """
        async with self._rounds:
            return await self._release()

    async def _release(self) -> bool:
        if not self.is_leader or self._lease is None:
            return False
        now = micro_time(datetime.now(UTC))
        spec = objects.spec(self._lease)
        transitions = spec.get("leaseTransitions")
        released = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self._name,
                "namespace": self._namespace,
                "resourceVersion": objects.resource_version(self._lease),
            },
            "spec": {
                "holderIdentity": "",
                "leaseDurationSeconds": 1,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": transitions if isinstance(transitions, int) else 0,
            },
        }
        try:
            self._lease = await self._kube.replace(LEASES, self._name, released, self._namespace)
        except KubeAPIError as exc:
            log.warning("lease %s/%s: not released: %s", self._namespace, self._name, exc)
            self._set(False)
            return False
        log.info("%s released %s/%s", self.identity, self._namespace, self._name)
        self._set(False)
        return True

    def _record(self, current: Manifest | None) -> Manifest:
        now = micro_time(datetime.now(UTC))
        spec = dict(objects.spec(current)) if current is not None else {}
        taking_over = spec.get("holderIdentity") != self.identity
        if taking_over:
            spec["acquireTime"] = now
            transitions = spec.get("leaseTransitions")
            spec["leaseTransitions"] = (transitions if isinstance(transitions, int) else 0) + (
                1 if current is not None else 0
            )
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=max(1, math.ceil(self._duration)),
            renewTime=now,
        )
        meta: dict[str, object] = {"name": self._name, "namespace": self._namespace}
        if current is not None:
            meta["resourceVersion"] = objects.resource_version(current)
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": spec,
        }

    def _set(self, leader: bool) -> None:
        if leader != self.is_leader:
            log.info(
                "%s %s leadership of %s/%s",
                self.identity,
                "took" if leader else "lost",
                self._namespace,
                self._name,
            )
            self.is_leader = leader
            self.changed.set()
            self.changed = asyncio.Event()
