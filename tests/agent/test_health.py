"""XID policy and the health table."""

from __future__ import annotations

import asyncio

from hami.agent.discovery.health import DEFAULT_IGNORED_XIDS, HealthTable, XidPolicy
from hami.agent.values import HealthEvent


def xid(n: int, uuid: str | None = "GPU-a") -> HealthEvent:
    return HealthEvent(uuid, False, f"XID {n}", xid=n)


def test_default_policy_ignores_application_xids() -> None:
    policy = XidPolicy()
    assert all(not policy.critical(xid(n)) for n in DEFAULT_IGNORED_XIDS)
    assert policy.critical(xid(79)) and policy.critical(xid(48))
    assert policy.critical(HealthEvent("GPU-a", True, "recovered"))


def test_policy_from_env() -> None:
    assert XidPolicy.from_env("all").disabled and XidPolicy.from_env("xids").disabled
    extra = XidPolicy.from_env("79, 48")
    assert not extra.critical(xid(79)) and not extra.critical(xid(48))
    enabled = XidPolicy.from_env("", "13")
    assert enabled.critical(xid(13)) and not enabled.critical(xid(31))


async def test_table_applies_events_and_wakes_watchers() -> None:
    table = HealthTable({"GPU-a": True, "GPU-b": True})
    watch = table.watch()
    assert await anext(watch) == {"GPU-a": True, "GPU-b": True}
    assert await table.apply(xid(79)) is True
    assert await asyncio.wait_for(anext(watch), 1) == {"GPU-a": False, "GPU-b": True}
    assert await table.apply(xid(79)) is False  # no change, no wake-up
    assert await table.apply(xid(79, "GPU-unknown")) is False
    assert await table.apply(xid(79, None)) is True  # all devices
    assert await asyncio.wait_for(anext(watch), 1) == {"GPU-a": False, "GPU-b": False}


async def test_disabled_policy_changes_nothing() -> None:
    table = HealthTable({"GPU-a": True}, XidPolicy(disabled=True))
    assert await table.apply(xid(79)) is False
    assert table.snapshot() == {"GPU-a": True}


async def test_wait_change_returns_on_change_or_timeout() -> None:
    table = HealthTable({"GPU-a": True})
    seen = table.version
    assert await table.wait_change(seen, 0.01) == seen
    waiter = asyncio.create_task(table.wait_change(seen, 5))
    await asyncio.sleep(0)
    await table.apply(xid(79))
    assert await asyncio.wait_for(waiter, 1) == seen + 1
