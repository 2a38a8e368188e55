"""The node registration loop: annotations written only when they change; capacity in sim mode."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path

from hami.agent.annotator import NodeAnnotator
from hami.agent.fake_kube import FakeKube
from hami.agent.health import HealthTable
from hami.agent.model import HealthEvent
from hami.api import keys
from hami.api.annotations import decode_node_devices, decode_pair_scores
from tests.agent.builders import A100_UUIDS, NODE, a100_source
from tests.agent.builders import settings as make_settings


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
