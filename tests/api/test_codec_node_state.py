"""Codec golden, tolerance and malformed-input tests — the node lock and the registration handshake (wire-format.md §2.2, §2.7, §3.13, §10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from hami.api import keys
from hami.api.annotations import (
    decode_handshake,
    decode_node_lock,
    encode_handshake_deleted,
    encode_handshake_requesting,
    encode_node_lock,
)
from hami.api.types import (
    Handshake,
    NodeLock,
)
from tests.api.codec_helpers import expect_error

# ------------------------------------------------------------------------------------------------
# §2.2 / §3.13 / §10 node lock

LOCK = keys.NODE_LOCK


def test_node_lock_golden_utc() -> None:
    value = "2026-08-21T06:20:39Z,default,gpu-pod"
    lock = decode_node_lock(value)
    assert lock == NodeLock(
        time=datetime(2026, 8, 21, 6, 20, 39, tzinfo=UTC), namespace="default", name="gpu-pod"
    )
    assert lock.time.utcoffset() == timedelta(0)
    assert encode_node_lock(lock) == value


def test_node_lock_worked_example() -> None:
    value = "2026-08-21T06:20:40Z,default,gpu-pod"
    assert encode_node_lock(decode_node_lock(value)) == value


def test_node_lock_golden_offset() -> None:
    value = "2026-08-21T14:20:39+08:00,default,gpu-pod"
    lock = decode_node_lock(value)
    assert lock.time == datetime(2026, 8, 21, 6, 20, 39, tzinfo=UTC)
    assert lock.time.utcoffset() == timedelta(hours=8)
    assert (lock.namespace, lock.name) == ("default", "gpu-pod")
    assert encode_node_lock(lock) == value
    minus = "2026-08-21T01:50:39-04:30,kube-system,p"
    assert encode_node_lock(decode_node_lock(minus)) == minus


def test_node_lock_legacy_bare_time() -> None:
    lock = decode_node_lock("2026-08-21T06:20:39Z")
    assert lock == NodeLock(time=datetime(2026, 8, 21, 6, 20, 39, tzinfo=UTC))
    assert lock.namespace is None and lock.name is None
    assert encode_node_lock(lock) == "2026-08-21T06:20:39Z"
    offset = decode_node_lock("2026-08-21T14:20:39+08:00")
    assert encode_node_lock(offset) == "2026-08-21T14:20:39+08:00"


def test_node_lock_encodes_at_second_precision() -> None:
    moment = datetime(2026, 8, 21, 6, 20, 39, 987654, tzinfo=timezone(timedelta(hours=8)))
    assert encode_node_lock(NodeLock(moment, "ns", "p")) == "2026-08-21T06:20:39+08:00,ns,p"
    # RFC3339 with fractional seconds is still read.
    assert decode_node_lock("2026-08-21T06:20:39.5Z,ns,p").time.microsecond == 500000


def test_node_lock_rejects_naive_time_on_encode() -> None:
    with pytest.raises(ValueError):
        encode_node_lock(NodeLock(datetime(2026, 8, 21, 6, 20, 39), "ns", "p"))


@pytest.mark.parametrize(
    ("value", "piece", "why"),
    [
        ("2026-08-21T06:20:39,default,gpu-pod", "2026-08-21T06:20:39", "needs a zone offset or Z"),
        ("2026-08-21T06:20:39", "2026-08-21T06:20:39", "needs a zone offset or Z"),
        ("yesterday,default,gpu-pod", "yesterday", "not an RFC3339 time"),
        ("", "", "not an RFC3339 time"),
        ("2026-08-21T06:20:39Z,default", "2026-08-21T06:20:39Z,default", "expected '<RFC3339>"),
        ("2026-08-21T06:20:39Z,a,b,c", "2026-08-21T06:20:39Z,a,b,c", "expected '<RFC3339>"),
        ("2026-08-21T06:20:39Z,,gpu-pod", "2026-08-21T06:20:39Z,,gpu-pod", "must be non-empty"),
        ("2026-08-21T06:20:39Z,default,", "2026-08-21T06:20:39Z,default,", "must be non-empty"),
    ],
)
def test_node_lock_malformed(value: str, piece: str, why: str) -> None:
    expect_error(decode_node_lock, value, LOCK, piece, why)


# ------------------------------------------------------------------------------------------------
# §2.7 handshake


def test_handshake_requesting_golden() -> None:
    value = "Requesting_2026-08-21 06:20:39"
    moment = datetime(2026, 8, 21, 6, 20, 39, tzinfo=UTC)
    assert decode_handshake(value) == Handshake(state=keys.HANDSHAKE_REQUESTING, time=moment)
    assert encode_handshake_requesting(moment) == value
    # Parsed in the scheduler's local zone.
    cst = timezone(timedelta(hours=8))
    local = decode_handshake(value, zone=cst)
    assert local.time == datetime(2026, 8, 21, 6, 20, 39, tzinfo=cst)


def test_handshake_deleted_golden() -> None:
    value = "Deleted_2026-08-21 06:20:39"
    moment = datetime(2026, 8, 21, 6, 20, 39, tzinfo=UTC)
    assert decode_handshake(value) == Handshake(state=keys.HANDSHAKE_DELETED, time=moment)
    assert encode_handshake_deleted(moment) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "Reported 2024-01-23 04:30:04.434037031 +0000 UTC m=+1104711.777756895",
            Handshake(state="Reported"),
        ),
        ("Requesting", Handshake(state="Requesting")),  # no '_' → healthy, no time
        ("Requesting_garbage", Handshake(state="Requesting")),
        ("Requesting_2026-08-21T06:20:39Z", Handshake(state="Requesting")),
        ("", Handshake(state="")),
        ("something else", Handshake(state="")),
    ],
)
def test_handshake_tolerance(value: str, expected: Handshake) -> None:
    assert decode_handshake(value) == expected


def test_handshake_requesting_anywhere_in_value() -> None:
    # HAMi checks `strings.Contains(value, "Requesting")` and parses after the first '_'.
    decoded = decode_handshake("xRequesting_2026-08-21 06:20:39")
    assert decoded.state == "Requesting"
    assert decoded.time == datetime(2026, 8, 21, 6, 20, 39, tzinfo=UTC)
