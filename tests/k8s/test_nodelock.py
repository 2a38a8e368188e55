"""The one node-lock release (hami.k8s.nodelock): whose lock it is, conflicts, gone nodes."""

from __future__ import annotations

import pytest

from hami.api import keys
from hami.k8s.api import Conflict
from hami.k8s.nodelock import owned_by, release_node_lock
from hami.k8s.views import Json, NodeInfo

LOCK = "2026-12-07T04:00:00Z,default,p"


@pytest.mark.parametrize(
    ("value", "mine"),
    [
        (LOCK, True),
        ("2026-12-07T04:00:00Z,default,q", False),
        ("2026-12-07T04:00:00Z", True),  # no owner: whoever releases it
        ("garbage,with,commas,", False),
    ],
)
def test_owned_by(value: str, mine: bool) -> None:
    assert owned_by(value, "default", "p") is mine


async def test_a_stale_read_is_read_again_then_released() -> None:
    versions = iter(["2", "3"])
    patches: list[Json] = []

    async def read() -> NodeInfo:
        return NodeInfo("n1", {keys.NODE_LOCK: LOCK}, next(versions))

    async def patch(body: Json) -> None:
        patches.append(body)
        if body["metadata"]["resourceVersion"] == "1":
            raise Conflict("modified")

    stale = NodeInfo("n1", {keys.NODE_LOCK: LOCK}, "1")
    await release_node_lock(read, patch, "default", "p", node=stale, pause=0)
    assert [p["metadata"]["resourceVersion"] for p in patches] == ["1", "2"]
    assert patches[-1]["metadata"]["annotations"] == {keys.NODE_LOCK: None}


async def test_a_lock_that_keeps_changing_is_a_conflict() -> None:
    async def read() -> NodeInfo:
        return NodeInfo("n1", {keys.NODE_LOCK: LOCK}, "1")

    async def patch(body: Json) -> None:
        raise Conflict("modified")

    with pytest.raises(Conflict):
        await release_node_lock(read, patch, "default", "p", pause=0)
