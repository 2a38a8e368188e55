"""The node lock (§2.2, §3.13) and the registration handshake (§2.7)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from hami.api import keys
from hami.api.errors import WireFormatError
from hami.api.types import (
    Handshake,
    NodeLock,
)

# ------------------------------------------------------------------------------------------------
# node lock (§2.2, §3.13)


def encode_node_lock(lock: NodeLock) -> str:
    """``<RFC3339>,<namespace>,<pod>`` (seconds precision; ``Z`` for UTC as Go writes it)."""
    stamp = _rfc3339(lock.time)
    if lock.namespace is None or lock.name is None:
        return stamp
    return f"{stamp},{lock.namespace},{lock.name}"


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("node-lock times must be timezone-aware")
    text = moment.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def decode_node_lock(value: str, key: str = keys.NODE_LOCK) -> NodeLock:
    """Decode a node-lock value; the legacy bare timestamp has no owner."""
    parts = value.split(",")
    if len(parts) not in (1, 3):
        raise WireFormatError(key, value, "expected '<RFC3339>,<namespace>,<pod>'")
    moment = _parse_rfc3339(key, parts[0])
    if len(parts) == 1:
        return NodeLock(time=moment)
    if not parts[1] or not parts[2]:
        raise WireFormatError(key, value, "lock owner namespace and name must be non-empty")
    return NodeLock(time=moment, namespace=parts[1], name=parts[2])


def _parse_rfc3339(key: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise WireFormatError(key, text, "not an RFC3339 time") from None
    if moment.tzinfo is None:
        raise WireFormatError(key, text, "RFC3339 time needs a zone offset or Z")
    return moment


# ------------------------------------------------------------------------------------------------
# handshake (§2.7)


def encode_handshake_requesting(moment: datetime) -> str:
    """``Requesting_<2006-01-02 15:04:05>`` in the writer's local zone."""
    return f"{keys.HANDSHAKE_REQUESTING}_{moment.strftime(keys.HANDSHAKE_TIME_LAYOUT)}"


def encode_handshake_deleted(moment: datetime) -> str:
    return f"{keys.HANDSHAKE_DELETED}_{moment.strftime(keys.HANDSHAKE_TIME_LAYOUT)}"


def decode_handshake(value: str, zone: tzinfo = UTC) -> Handshake:
    """Classify a handshake value. Unparseable times decode with ``time=None`` (HAMi: healthy)."""
    if keys.HANDSHAKE_REQUESTING in value or value.startswith(keys.HANDSHAKE_DELETED):
        state = (
            keys.HANDSHAKE_REQUESTING
            if keys.HANDSHAKE_REQUESTING in value
            else keys.HANDSHAKE_DELETED
        )
        _, sep, stamp = value.partition("_")
        if not sep:
            return Handshake(state=state)
        try:
            moment = datetime.strptime(stamp, keys.HANDSHAKE_TIME_LAYOUT).replace(tzinfo=zone)
        except ValueError:
            return Handshake(state=state)
        return Handshake(state=state, time=moment)
    if value.startswith(keys.HANDSHAKE_REPORTED):
        return Handshake(state=keys.HANDSHAKE_REPORTED)
    return Handshake(state="")
