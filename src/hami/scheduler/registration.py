"""Is a node's registration alive? The handshake protocol of wire-format.md §2.7 / §3.14.

The scheduler writes ``Requesting_<time>`` into a vendor's handshake key; within the timeout the
node counts as healthy, afterwards only while the node still advertises the vendor's count
resource as allocatable. A node that lost its devices is cleaned up (the key is removed) and
stays down until it advertises devices again — it does not flap back on our own write.

``Deleted_<time>`` is the device plugin's notice that it is stopping (written on SIGTERM before
it closes its kubelet socket, docs/device-plugin.md "Restarts"): the vendor is down on that node,
with no write, until the new plugin answers ``Reported`` — which it does only once kubelet has
its devices — or, should none come, for ``timeout`` seconds, after which the node is judged as
any other (by then kubelet advertises no allocatable devices of a plugin that is gone). HAMi's
scheduler instead treats ``Deleted_`` as "ask again" (wire-format.md §2.7); its current plugins
never write it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hami.api import annotations as codec
from hami.api import keys
from hami.api.errors import WireFormatError
from hami.api.quantity import parse_int_quantity
from hami.core.vendor import Vendor
from hami.k8s import objects
from hami.k8s.api import Manifest


@dataclass(frozen=True, slots=True)
class HandshakeSpec:
    """A vendor with a handshake key, and the node resource that proves its plugin is alive.

    ``key`` empty: no handshake, the node is alive while ``count_resource`` is allocatable.
    ``cleanup_key`` (default ``key``) is removed from a node found dead.
    """

    vendor: str
    key: str
    count_resource: str
    cleanup_key: str = ""

    @property
    def cleanup(self) -> str:
        return self.cleanup_key or self.key


def handshake_specs(vendors: Mapping[str, Vendor]) -> tuple[HandshakeSpec, ...]:
    """One spec per vendor that declares its `registration_health` (registry order)."""
    specs = []
    for key, vendor in vendors.items():
        health = vendor.registration_health
        if health is not None:
            specs.append(
                HandshakeSpec(key, health.handshake_key, health.count_resource, health.cleanup_key)
            )
    return tuple(specs)


REMOVE = ""  # Health.write value meaning "delete the handshake key"


@dataclass(frozen=True, slots=True)
class Health:
    healthy: bool
    write: str | None = None  # new handshake value, REMOVE, or None to leave it


def allocatable(node: Manifest, resource: str) -> int:
    """The node's allocatable count of ``resource`` (0 when absent or unreadable)."""
    raw = objects.section(objects.status(node), "allocatable").get(resource)
    if raw is None:
        return 0
    try:
        return parse_int_quantity(raw, resource)
    except WireFormatError:
        return 0


def assess(
    spec: HandshakeSpec,
    annotations: Mapping[str, str],
    count: int,
    previous: int | None,
    cleaned: bool,
    now: datetime,
    timeout: float,
    *,
    ask: bool = True,
) -> Health:
    """One vendor's health on one node; ``previous`` is the count seen last time. ``ask``
    False (a node event, not the periodic pass): a plugin's ``Reported`` answer is left as it
    is until the next pass asks again, so the answer is seen, as with HAMi's periodic loop."""
    if previous and count == 0:
        return Health(False, REMOVE)
    if cleaned and count == 0:
        return Health(False)
    if not spec.key:  # no handshake: the allocatable count alone decides
        return Health(count > 0)  # a node that had devices was cleaned up above
    value = annotations.get(spec.key)
    if value is not None and withdrawn(value, now, timeout):
        return Health(False)
    if not ask and value is not None and value.startswith(keys.HANDSHAKE_REPORTED):
        return Health(True)
    if value is None or keys.HANDSHAKE_REQUESTING not in value:
        return Health(True, codec.encode_handshake_requesting(now.astimezone(UTC)))
    sent = codec.decode_handshake(value, UTC).time
    if sent is None or now < sent + timedelta(seconds=timeout) or count > 0:
        return Health(True)
    return Health(False, REMOVE)


def withdrawn(value: str, now: datetime, timeout: float) -> bool:
    """A ``Deleted_<time>`` notice less than ``timeout`` s old: the plugin is stopping (or
    restarting) and kubelet may already refuse its devices. An unreadable time is no notice
    (as HAMi reads it: the scheduler asks again), so a stray value cannot keep a node out."""
    if not value.startswith(keys.HANDSHAKE_DELETED):
        return False
    sent = codec.decode_handshake(value, UTC).time
    return sent is not None and now < sent + timedelta(seconds=timeout)
