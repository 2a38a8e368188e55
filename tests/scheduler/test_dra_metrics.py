"""DRA allocations in the scheduler's /metrics under the extender's family names and labels
(docs/monitoring.md): devices from the ResourceSlices, usage and per-pod series from the
ResourceClaims' consumedCapacity; the text writer equals generate_latest and follows changes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hami.core.model import Node
from hami.draview import CLAIMS, SLICES
from hami.k8s import objects
from hami.k8s.fake import FakeKube
from hami.scheduler.dra_watch import DraWatch
from hami.scheduler.metrics import MIB, Metrics
from tests.builders import dra_claim, dra_slice

from .test_metrics import NODE, POD, StubCache, one


@dataclass
class StubDra:
    claimed: list[dict[str, Any]] = field(default_factory=list)
    published: list[dict[str, Any]] = field(default_factory=list)
    version: int = 0

    def claims(self) -> list[Any]:
        return list(self.claimed)

    def slices(self) -> list[Any]:
        return list(self.published)


def samples(metrics: Metrics) -> list[tuple[str, dict[str, str], float]]:
    text = metrics.render().decode()
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def test_dra_devices_and_claims_under_the_extender_families() -> None:
    dra = StubDra(
        [dra_claim("p1", "d1", "1Gi", "30"), dra_claim("p2", "d1", "2Gi", "20", "gpu-init-0")],
        [dra_slice("d1", product="A100")],
    )
    metrics = Metrics(StubCache([NODE], [POD]), dra=dra)
    found = samples(metrics)
    device = {"node": "d1", "device_uuid": "GPU-d1"}
    assert one(found, "hami_gpu_memory_limit_bytes", **device) == 40 * 1024 * MIB
    assert one(found, "hami_gpu_memory_allocated_bytes", **device) == 3 * 1024 * MIB
    assert one(found, "hami_gpu_core_allocated_ratio", **device) == 50
    assert one(found, "hami_gpu_shared_count", **device) == 2
    assert one(found, "hami_node_gpu_memory_allocated_ratio", **device) == 3 / 40
    pod = {"namespace": "ml", "pod": "p1", "node": "d1", "device_uuid": "GPU-d1"}
    assert one(found, "hami_vgpu_memory_allocated_bytes", **pod, container_index="0") == 1 << 30
    assert one(found, "hami_vgpu_core_allocated_ratio", **pod, container_index="0") == 30
    init = {**pod, "pod": "p2", "container_index": "init-0"}
    assert one(found, "hami_vgpu_memory_allocated_bytes", **init) == 2 << 30
    assert one(found, "hami_scheduler_cache_pods") == 1 + 2  # the extender pod and the DRA ones
    # the extender's node is still there
    assert one(
        found, "hami_gpu_memory_limit_bytes", node=NODE.name, device_uuid=NODE.devices[0].uuid
    )


def test_render_equals_generate_latest_and_follows_claim_changes() -> None:
    dra = StubDra(
        [dra_claim("p1", "d1", "1Gi", "30")],
        [dra_slice("d1", product="A100"), dra_slice("d2", product="A100")],
    )
    for legacy in (False, True):
        metrics = Metrics(StubCache([NODE, Node("n2", ())], [POD]), legacy=legacy, dra=dra)
        assert metrics.render() == generate_latest(metrics.registry)
        assert metrics.render() == generate_latest(metrics.registry)  # cached DRA lines
        dra.claimed, dra.version = [], dra.version + 1  # the claim released
        assert metrics.render() == generate_latest(metrics.registry)
        assert b'pod="p1"' not in metrics.render()
        dra.claimed, dra.version = [dra_claim("p1", "d1", "1Gi", "30")], dra.version + 1


async def test_the_watch_keeps_claims_and_slices_current() -> None:
    fake = FakeKube()
    await fake.create(SLICES, dra_slice("d1", product="A100"))
    await fake.create(CLAIMS, dra_claim("p1", "d1", "1Gi", "30"), "ml")
    watch = DraWatch()
    tasks = [asyncio.create_task(i.run()) for i in watch.informers(fake)]
    try:
        async with asyncio.timeout(5):
            while not (watch.claims() and watch.slices()):
                await asyncio.sleep(0.01)
            assert [objects.name(c) for c in watch.claims()] == ["p1-gpu-0-x"]
            before = watch.version
            await fake.delete(CLAIMS, "p1-gpu-0-x", "ml")
            while watch.claims():
                await asyncio.sleep(0.01)
            assert watch.version > before
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
