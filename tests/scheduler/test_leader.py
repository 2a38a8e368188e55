"""Lease-based leader election: one leader, takeover after the lease lapses, step-down."""

from __future__ import annotations

from hami.k8s import objects
from hami.k8s.api import LEASES, Unavailable
from hami.k8s.fake import FakeKube
from hami.scheduler.leader import LeaderElector

from .harness import gpu_pod, running


class Tick:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_one_leader_then_takeover_after_the_lease_lapses() -> None:
    kube, tick = FakeKube(), Tick()
    a = LeaderElector(kube, "hami", "kube-system", "a", lease_duration=10, monotonic=tick)
    b = LeaderElector(kube, "hami", "kube-system", "b", lease_duration=10, monotonic=tick)
    await a.step()
    await b.step()
    assert (a.is_leader, b.is_leader) == (True, False)
    tick.now = 5
    await a.step()  # renews
    await b.step()
    tick.now = 14
    await b.step()  # saw a's renewal at 5: not lapsed yet
    assert not b.is_leader
    tick.now = 16  # a stopped renewing (killed)
    await b.step()
    assert b.is_leader
    lease = kube.stored(LEASES, "hami", "kube-system")
    assert objects.spec(lease)["holderIdentity"] == "b"
    assert objects.spec(lease)["leaseTransitions"] == 1
    await a.step()
    assert not a.is_leader


async def test_leader_steps_down_when_it_cannot_renew() -> None:
    kube, tick = FakeKube(), Tick()
    a = LeaderElector(kube, "hami", "ns", "a", lease_duration=10, monotonic=tick)
    await a.step()
    kube.fail_next("get", Unavailable("down"), LEASES, times=10)
    tick.now = 5
    await a.step()
    assert a.is_leader
    tick.now = 11
    await a.step()
    assert not a.is_leader


async def test_follower_does_not_answer_filter() -> None:
    async with running(start=False, leader_elect=True, identity="me", sync_wait=0.05) as h:
        await h.kube.create(
            LEASES,
            {
                "metadata": {"name": "hami-scheduler", "namespace": "kube-system"},
                "spec": {"holderIdentity": "other", "renewTime": "x"},
            },
        )
        await h.service.elector.step()  # type: ignore[union-attr]
        body = {"Pod": gpu_pod("p"), "NodeNames": ["n1"]}
        result = (await h.client.post("/filter", json=body)).json()
        assert result["Error"] == "this scheduler replica is not the leader"


async def test_follower_wakes_just_after_the_observed_record_expires() -> None:
    kube, tick = FakeKube(), Tick()
    a = LeaderElector(kube, "hami", "ns", "a", lease_duration=10, renew_interval=2, monotonic=tick)
    b = LeaderElector(kube, "hami", "ns", "b", lease_duration=10, renew_interval=2, monotonic=tick)
    await a.step()
    assert a.next_delay() == 2  # the leader renews on its interval
    tick.now = 1
    await b.step()  # first sight of a's record at t=1: it expires for b at t=11
    assert b.next_delay() == 2
    tick.now = 9.5
    await b.step()
    assert abs(b.next_delay() - 1.55) < 1e-9  # not 2: wake at 11.05, just past the expiry
    tick.now = 11.05
    await b.step()
    assert b.is_leader


async def test_release_empties_the_holder_so_a_follower_takes_over_at_once() -> None:
    kube, tick = FakeKube(), Tick()
    a = LeaderElector(kube, "hami", "ns", "a", lease_duration=10, monotonic=tick)
    b = LeaderElector(kube, "hami", "ns", "b", lease_duration=10, monotonic=tick)
    await a.step()
    tick.now = 1
    await a.step()  # a renewal: the release must use the record a wrote last
    await b.step()
    before = objects.spec(kube.stored(LEASES, "hami", "ns"))
    assert await a.release()
    assert not a.is_leader
    spec = objects.spec(kube.stored(LEASES, "hami", "ns"))
    assert spec["holderIdentity"] == ""  # client-go's ReleaseOnCancel record
    assert spec["leaseDurationSeconds"] == 1
    assert spec["leaseTransitions"] == before["leaseTransitions"] == 0
    assert spec["renewTime"] == spec["acquireTime"] and spec["renewTime"] != before["renewTime"]
    assert not await a.release()  # no longer the holder: nothing written
    await b.step()  # at the same instant: no duration to wait out
    assert b.is_leader
    spec = objects.spec(kube.stored(LEASES, "hami", "ns"))
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)


async def test_release_leaves_a_lease_someone_else_took() -> None:
    kube, tick = FakeKube(), Tick()
    a = LeaderElector(kube, "hami", "ns", "a", lease_duration=10, monotonic=tick)
    b = LeaderElector(kube, "hami", "ns", "b", lease_duration=10, monotonic=tick)
    await a.step()
    await b.step()
    tick.now = 30  # a stalled; b takes over
    await b.step()
    assert b.is_leader and a.is_leader  # a has not noticed yet
    assert not await a.release()  # its record is stale: 409, nothing changed
    assert not a.is_leader
    assert objects.spec(kube.stored(LEASES, "hami", "ns"))["holderIdentity"] == "b"


async def test_hand_over_releases_and_stops_competing() -> None:
    """A graceful shutdown hands the Lease over as soon as nothing is in flight; the stopped
    elector never takes it back, however its loop is scheduled."""
    kube, tick = FakeKube(), Tick()
    a = LeaderElector(kube, "hami", "ns", "a", lease_duration=10, monotonic=tick)
    b = LeaderElector(kube, "hami", "ns", "b", lease_duration=10, monotonic=tick)
    await a.step()
    assert await a.hand_over()
    await a.step()  # a round after the hand-over does nothing
    assert not a.is_leader
    assert objects.spec(kube.stored(LEASES, "hami", "ns"))["holderIdentity"] == ""
    await b.step()
    assert b.is_leader
    tick.now = 100  # b's record long expired from a's view: a still does not compete
    await a.step()
    assert objects.spec(kube.stored(LEASES, "hami", "ns"))["holderIdentity"] == "b"


async def test_follower_reads_the_lease_every_retry_period() -> None:
    kube, tick = FakeKube(), Tick()
    a = LeaderElector(kube, "hami", "ns", "a", renew_interval=2, retry_period=0.5, monotonic=tick)
    b = LeaderElector(kube, "hami", "ns", "b", renew_interval=2, retry_period=0.5, monotonic=tick)
    await a.step()
    assert a.next_delay() == 2  # the leader renews on its interval
    await b.step()
    assert b.next_delay() == 0.5  # a follower looks again sooner: a release is seen within 0.5 s
    assert await a.hand_over()
    tick.now = 0.5
    await b.step()
    assert b.is_leader
