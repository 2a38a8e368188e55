"""The plugin's ``Reported`` answer stays visible until the scheduler's periodic pass asks
again (HAMi's loop does the same); a node event does not overwrite it at once."""

from __future__ import annotations

from datetime import UTC, datetime

from hami.api import keys
from hami.scheduler.registration import HandshakeSpec, assess

SPEC = HandshakeSpec("NVIDIA", keys.NVIDIA_HANDSHAKE, keys.NVIDIA_GPU)
NOW = datetime(2026, 12, 7, 2, 0, 0, tzinfo=UTC)
REPORTED = {keys.NVIDIA_HANDSHAKE: "Reported 2026-12-07 01:59:58"}


def test_a_node_event_leaves_the_answer_standing() -> None:
    health = assess(SPEC, REPORTED, 20, 20, False, NOW, 60.0, ask=False)
    assert health.healthy and health.write is None


def test_the_periodic_pass_asks_again() -> None:
    health = assess(SPEC, REPORTED, 20, 20, False, NOW, 60.0, ask=True)
    assert health.healthy and health.write == "Requesting_2026-12-07 02:00:00"


def test_a_node_without_a_handshake_is_asked_at_once() -> None:
    health = assess(SPEC, {}, 20, None, False, NOW, 60.0, ask=False)
    assert health.write is not None and health.write.startswith(keys.HANDSHAKE_REQUESTING)
