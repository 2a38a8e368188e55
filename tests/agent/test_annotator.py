"""The node registration loop: annotations written only when they change; capacity in sim mode."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from hami.agent.annotator import NodeAnnotator, annotation_changes, handshake_answer
from hami.agent.discovery.health import HealthTable
from hami.agent.values import HealthEvent
from hami.api import keys
from hami.api.annotations import (
    decode_handshake,
    decode_node_devices,
    decode_pair_scores,
    encode_handshake_requesting,
)
from hami.scheduler.registration import HandshakeSpec, assess
from tests.agent.builders import A100_UUIDS, NODE, a100_source
from tests.agent.builders import settings as make_settings
from tests.agent.fake_kube import FakeKube


def make(tmp_path: Path, kube: FakeKube, **kw: object) -> tuple[NodeAnnotator, HealthTable]:
    source = a100_source()
    settings = replace(make_settings(tmp_path), topology_score=bool(kw.pop("score", False)))
    health = HealthTable({g.uuid: True for g in source.gpus()})
    annotator = NodeAnnotator(
        kube,
        settings,
        source.gpus,
        source.pair_scores,
        health,
        publish_capacity=bool(kw.pop("capacity", False)),
    )
    return annotator, health


async def test_writes_once_and_only_on_change(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.add_node(NODE)
    annotator, health = make(tmp_path, kube)
    assert await annotator.sync() is True
    assert await annotator.sync() is False
    assert kube.calls.count("patch_node") == 1
    assert kube.node_annotations(NODE)[keys.NVIDIA_HANDSHAKE].startswith("Reported ")
    devices = decode_node_devices(kube.node_annotations(NODE)[keys.NVIDIA_REGISTER])
    assert [d.id for d in devices] == A100_UUIDS and all(d.health for d in devices)
    assert keys.NVIDIA_SCORE not in kube.node_annotations(NODE)
    await health.apply(HealthEvent(A100_UUIDS[1], False, "XID 79", 79))
    assert await annotator.sync() is True
    devices = decode_node_devices(kube.node_annotations(NODE)[keys.NVIDIA_REGISTER])
    assert [d.health for d in devices] == [True, False, True, True]


async def test_existing_identical_annotation_is_not_rewritten(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.add_node(NODE)
    first, _ = make(tmp_path, kube)
    await first.sync()
    second, _ = make(tmp_path, kube)  # a restarted plugin
    assert await second.sync() is False


async def test_topology_scores_when_enabled(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.add_node(NODE)
    annotator, _ = make(tmp_path, kube, score=True)
    await annotator.sync()
    scores = decode_pair_scores(kube.node_annotations(NODE)[keys.NVIDIA_SCORE])
    assert dict(scores[0].scores)[A100_UUIDS[1]] == 1220


async def test_capacity_counts_replicas_and_healthy_ones(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.add_node(NODE)
    annotator, health = make(tmp_path, kube, capacity=True)
    await annotator.sync()
    status = kube.nodes[NODE]["status"]
    assert status["capacity"]["nvidia.com/gpu"] == status["allocatable"]["nvidia.com/gpu"] == "40"
    await health.apply(HealthEvent(A100_UUIDS[0], False, "XID 79", 79))
    await annotator.sync()
    assert kube.nodes[NODE]["status"]["allocatable"]["nvidia.com/gpu"] == "30"


async def test_run_reacts_to_health_at_once_and_retries_errors(tmp_path: Path) -> None:
    kube = FakeKube()
    annotator, health = make(tmp_path, kube)  # node missing: the first syncs fail
    task = asyncio.create_task(annotator.run())
    try:
        await asyncio.sleep(0.1)
        kube.add_node(NODE)
        await health.apply(HealthEvent(A100_UUIDS[3], False, "XID 79", 79))
        for _ in range(50):
            if keys.NVIDIA_REGISTER in kube.node_annotations(NODE):
                break
            await asyncio.sleep(0.05)
        devices = decode_node_devices(kube.node_annotations(NODE)[keys.NVIDIA_REGISTER])
        assert not devices[3].health
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


NOW = datetime(2026, 8, 21, 6, 20, 39, 123456, tzinfo=UTC)


def test_handshake_answer() -> None:
    reported = {keys.NVIDIA_HANDSHAKE: "Reported 2026-08-21 06:20:39.123456 +0000 UTC"}
    assert handshake_answer({}, NOW) == reported
    assert handshake_answer({keys.NVIDIA_HANDSHAKE: "Requesting_2026-08-21 06:00:00"}, NOW) == (
        reported
    )
    assert handshake_answer({keys.NVIDIA_HANDSHAKE: "Deleted_2026-08-21 06:00:00"}, NOW) == (
        reported
    )
    assert handshake_answer(reported, NOW) == {}
    assert decode_handshake(reported[keys.NVIDIA_HANDSHAKE]).state == keys.HANDSHAKE_REPORTED


def test_annotation_changes_are_the_differences_plus_the_answer() -> None:
    current = {keys.NVIDIA_REGISTER: "old", keys.NVIDIA_HANDSHAKE: "Reported x", "other": "1"}
    desired = {keys.NVIDIA_REGISTER: "new"}
    assert annotation_changes(current, desired, NOW) == {keys.NVIDIA_REGISTER: "new"}
    assert annotation_changes({**current, **desired}, desired, NOW) == {}


async def test_the_schedulers_requesting_is_answered_on_the_next_pass(tmp_path: Path) -> None:
    """HAMi's handshake (§2.7) with our scheduler's own decision function: the scheduler asks
    (`Requesting_<now>`) whenever the key holds anything else, the plugin answers
    `Reported <time>` on its next registration pass; no other write happens."""
    kube = FakeKube()
    kube.add_node(NODE)
    annotator, _ = make(tmp_path, kube)
    spec = HandshakeSpec("NVIDIA", keys.NVIDIA_HANDSHAKE, keys.NVIDIA_GPU)
    await annotator.sync()
    for _ in range(3):
        value = kube.node_annotations(NODE)[keys.NVIDIA_HANDSHAKE]
        assert decode_handshake(value).state == keys.HANDSHAKE_REPORTED
        health = assess(spec, kube.node_annotations(NODE), 40, 40, False, NOW, 60.0)
        assert health.healthy and health.write == encode_handshake_requesting(NOW)
        await kube.patch_node(
            NODE, {"metadata": {"annotations": {keys.NVIDIA_HANDSHAKE: health.write}}}
        )
        register = kube.node_annotations(NODE)[keys.NVIDIA_REGISTER]
        kube.calls.clear()
        assert await annotator.sync() is True
        assert kube.calls == ["get_node", "patch_node"]
        assert kube.node_annotations(NODE)[keys.NVIDIA_REGISTER] == register


async def test_a_registration_changed_by_someone_else_is_written_back_on_the_next_pass(
    tmp_path: Path,
) -> None:
    """Compared with the node as it is, not with the plugin's own last write (issue 24)."""
    kube = FakeKube()
    kube.add_node(NODE)
    annotator, _ = make(tmp_path, kube, capacity=True)
    await annotator.sync()
    good = kube.node_annotations(NODE)[keys.NVIDIA_REGISTER]
    for bad in ("garbage", "[null]", None):
        await kube.patch_node(NODE, {"metadata": {"annotations": {keys.NVIDIA_REGISTER: bad}}})
        assert await annotator.sync() is True
        assert kube.node_annotations(NODE)[keys.NVIDIA_REGISTER] == good
    await kube.patch_node_status(NODE, {"status": {"allocatable": {"nvidia.com/gpu": "0"}}})
    assert await annotator.sync() is True
    assert kube.nodes[NODE]["status"]["allocatable"]["nvidia.com/gpu"] == "40"
    assert await annotator.sync() is False


async def test_run_rewrites_a_corrupted_registration_within_one_interval(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.add_node(NODE)
    annotator, _ = make(tmp_path, kube)
    annotator._settings = replace(annotator._settings, register_interval=0.05)
    task = asyncio.create_task(annotator.run())
    try:
        for _ in range(100):
            if keys.NVIDIA_REGISTER in kube.node_annotations(NODE):
                break
            await asyncio.sleep(0.01)
        good = kube.node_annotations(NODE)[keys.NVIDIA_REGISTER]
        await kube.patch_node(NODE, {"metadata": {"annotations": {keys.NVIDIA_REGISTER: "[null]"}}})
        await asyncio.sleep(0.15)  # at most one interval (plus a pass)
        assert kube.node_annotations(NODE)[keys.NVIDIA_REGISTER] == good
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
