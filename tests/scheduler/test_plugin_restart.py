"""A device-plugin restart (issue 24, docs/device-plugin.md "Restarts"): the plugin's
``Deleted_<time>`` notice keeps the node's devices out of filters and binds until the next
plugin answers ``Reported`` (or, should none come, for the handshake timeout)."""

from __future__ import annotations

from datetime import timedelta

from hami.api import annotations as codec
from hami.api import keys
from hami.k8s import objects
from hami.k8s.api import NODES
from hami.scheduler.registration import HandshakeSpec, assess, withdrawn

from .harness import T0, gpu_node, gpu_pod, running

SPEC = HandshakeSpec("NVIDIA", keys.NVIDIA_HANDSHAKE, keys.NVIDIA_GPU)
DELETED = codec.encode_handshake_deleted(T0)
REPORTED = "Reported 2026-08-21 06:20:41.000000 +0000 UTC"


def test_a_fresh_notice_takes_the_vendor_down_without_a_write() -> None:
    for ask in (False, True):
        health = assess(SPEC, {SPEC.key: DELETED}, 20, 20, False, T0, 60.0, ask=ask)
        assert not health.healthy and health.write is None


def test_an_old_or_unreadable_notice_is_asked_again_as_hami_does() -> None:
    later = T0 + timedelta(seconds=61)
    health = assess(SPEC, {SPEC.key: DELETED}, 20, 20, False, later, 60.0)
    assert health.healthy and health.write == codec.encode_handshake_requesting(later)
    health = assess(SPEC, {SPEC.key: "Deleted_yesterday"}, 20, 20, False, T0, 60.0)
    assert health.healthy and health.write is not None
    assert not withdrawn("Requesting_2026-08-21 06:20:39", T0, 60.0)


def test_a_plugin_gone_long_enough_for_kubelet_to_notice_is_cleaned_up() -> None:
    """kubelet's allocatable 0 wins over the notice: the node is cleaned up as before."""
    health = assess(SPEC, {SPEC.key: DELETED}, 0, 20, False, T0, 60.0)
    assert not health.healthy and health.write == ""


def handshake(h: object) -> str | None:
    return objects.annotations(h.kube.stored(NODES, "n1")).get(keys.NVIDIA_HANDSHAKE)  # type: ignore[attr-defined]


async def test_a_restarting_plugin_keeps_filters_and_binds_off_its_node() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1"))
        await h.until(lambda: handshake(h) is not None)
        await h.add_pod(gpu_pod("decided"))
        result = await h.filter("decided")
        assert result["NodeNames"] == ["n1"]

        # the old plugin's SIGTERM notice, between kube-scheduler's /filter and its /bind
        await h.kube.merge_patch(NODES, "n1", {"metadata": {"annotations": {SPEC.key: DELETED}}})
        await h.until(lambda: "n1" not in h.service.cache.view)
        assert h.service.cache.vendors_down("n1") == {"NVIDIA"}
        bound = await h.bind("decided", "n1")
        assert "device plugin of NVIDIA is stopping" in bound["Error"]
        node = h.kube.stored(NODES, "n1")
        assert keys.NODE_LOCK not in objects.annotations(node)
        assert not (await h.events("BindingSucceed"))
        await h.add_pod(gpu_pod("during"))
        assert (await h.filter("during"))["NodeNames"] == []
        h.clock.advance(15)
        h.service.cache.reassess()  # the periodic pass does not overwrite the notice
        await h.settle()
        assert handshake(h) == DELETED

        # the new plugin answers once kubelet holds its devices: the node is back
        await h.kube.merge_patch(NODES, "n1", {"metadata": {"annotations": {SPEC.key: REPORTED}}})
        await h.until(lambda: "n1" in h.service.cache.view)
        assert await h.schedule("during") == "n1"


async def test_a_notice_nobody_answers_lapses_after_the_handshake_timeout() -> None:
    async with running() as h:
        node = gpu_node("n1")
        node["metadata"]["annotations"] = {**objects.annotations(node), SPEC.key: DELETED}
        await h.add_node(node)
        await h.settle()
        assert "n1" not in h.service.cache.view
        h.clock.advance(61)
        h.service.cache.reassess()
        await h.until(lambda: (handshake(h) or "").startswith(keys.HANDSHAKE_REQUESTING))
        # kubelet still advertises the devices (a plugin that never wrote the handshake,
        # e.g. HAMi's own, replaced ours): judged by allocatable again
        assert "n1" in h.service.cache.view
