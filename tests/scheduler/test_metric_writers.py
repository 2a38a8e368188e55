"""Every scheduler metric family has a writer: driven through the service, each one gets samples.

A family added to `Metrics`' registry (or to `SCHEDULER_SPECS`) without a caller fails
`test_every_declared_family_is_written_by_the_service`.
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hami.api import annotations as codec
from hami.api import keys
from hami.api.types import ContainerDevice, MigAllocation, MigPlacement
from hami.core.decide import Decision
from hami.core.status import NODE_UNREGISTERED, Reason, Unfit
from hami.k8s import objects
from hami.k8s.api import EVENTS, LEASES, NODES, PODS, RESOURCE_QUOTAS, Gone, NotFound, Unavailable
from hami.k8s.fake import FakeKube
from hami.scheduler.filter import NO_NODES, OTHER, unfit_reason
from hami.scheduler.metered import MeteredKube

from .harness import Harness, container, gpu_node, gpu_pod, running
from .test_app import review


def rendered(h: Harness) -> dict[str, list[Any]]:
    """/metrics as the exposition parser reads it: family name → its samples."""
    text = h.service.metrics.render().decode()
    return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}


def value(h: Harness, sample: str, **labels: str) -> float:
    families = rendered(h)
    found = [
        s.value
        for samples in families.values()
        for s in samples
        if s.name == sample and labels.items() <= s.labels.items()
    ]
    assert len(found) == 1, (sample, labels, found)
    return float(found[0])


def mig_pod() -> dict[str, Any]:
    """A pod already placed on n1 with a realised MIG instance (for the MIG family)."""
    used = codec.encode_pod_devices([[ContainerDevice("GPU-n1-0", "NVIDIA", 1000, 0)]])
    mig = MigAllocation(0, 0, "GPU-n1-0", "1g.10gb", MigPlacement(0, 1), "MIG-1", 9, 0)
    annotations = {
        keys.VGPU_NODE: "n1",
        keys.NVIDIA_ALLOCATED: used,
        keys.MIG_ALLOCATIONS: codec.encode_mig_allocations([mig]),
    }
    pod = gpu_pod("mig", annotations=annotations)
    pod["spec"]["nodeName"] = "n1"
    return pod


async def drive_everything(h: Harness) -> None:
    """Webhook, filter+bind, an unfit pod, a bad request, and failing API calls."""
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "gpu", "namespace": "default"},
        "spec": {"hard": {"limits.nvidia.com/gpumem": "1000000"}},
    }
    await h.kube.create(RESOURCE_QUOTAS, quota)
    await h.add_node(gpu_node("n1", gpus=2))
    await h.add_pod(mig_pod())
    for name, memory in (("a", 3000), ("big", 99999), ("c", 3000)):
        await h.add_pod(gpu_pod(name, container(gpu=1, gpumem=memory)))
    await h.settle()
    allowed = await h.client.post("/webhook", json=review(gpu_pod("w", container(gpu=1))))
    assert allowed.json()["response"]["allowed"] is True
    assert await h.schedule("a") == "n1"  # placed, lock acquired
    assert (await h.filter("big"))["NodeNames"] == []  # unfit
    assert (await h.client.post("/filter", content=b"{")).json()["Error"]  # error: bad request
    h.kube.fail_next("merge_patch", Unavailable("api server down"), PODS)
    assert "api server down" in (await h.filter("c"))["Error"]  # error: the patch failed
    # the device plugin marks "a" allocated but dies before releasing its lock, and the cache
    # loses "a": the self-check counts it again (drift) and removes the lock (reclaimed)
    phase = {"metadata": {"annotations": {keys.BIND_PHASE: keys.BIND_PHASE_SUCCESS}}}
    await h.kube.merge_patch(PODS, "a", phase, "default")
    await h.settle()
    h.service.cache.discard(objects.uid(h.kube.stored(PODS, "a", "default")))
    h.service.selfcheck.settle = 0.0
    drift = await h.service.selfcheck.check()
    assert drift.missing == ("default/a",)
    assert keys.NODE_LOCK not in objects.annotations(h.kube.stored(NODES, "n1"))


async def test_every_declared_family_is_written_by_the_service() -> None:
    async with running() as h:
        await drive_everything(h)
        declared = list(h.service.metrics.registry.collect())
        assert len(declared) > 15
        empty = [family.name for family in declared if not family.samples]
        assert not empty, f"declared metric families nothing writes: {empty}"
        served = rendered(h)  # and /metrics serves every one of them
        missing = [family.name for family in declared if family.name not in served]
        assert not missing, f"declared but not rendered: {missing}"


async def test_each_event_is_counted_where_it_happens() -> None:
    async with running() as h:
        await drive_everything(h)
        decisions = "hami_scheduler_decisions_total"
        assert value(h, decisions, outcome="placed", reason="") == 1
        unfit = {"outcome": "unfit", "reason": Reason.CARD_INSUFFICIENT_MEMORY.value}
        assert value(h, decisions, **unfit) == 1
        assert value(h, decisions, outcome="error", reason="BadRequest") == 1
        assert value(h, decisions, outcome="error", reason="KubeAPIError") == 1
        waits = "hami_scheduler_node_lock_wait_seconds_count"
        assert value(h, waits, outcome="acquired") == 1
        errors = "hami_scheduler_kube_api_errors_total"
        assert value(h, errors, verb="patch", resource="pods", status="0") == 1
        assert value(h, "hami_scheduler_cache_drift", kind="missing") == 1
        assert value(h, "hami_scheduler_cache_drift", kind="extra") == 0
        reclaimed = "hami_scheduler_node_locks_reclaimed_total"
        assert value(h, reclaimed, reason="owner-allocated") == 1
        webhook = "hami_scheduler_request_seconds_count"
        assert value(h, webhook, route="webhook") == 1
        assert value(h, "hami_scheduler_requests_total", route="webhook", outcome="allowed") == 1


async def test_a_lock_timeout_and_a_failed_binding_are_counted() -> None:
    async with running(bind_lock_wait=0.05) as h:
        await h.add_node(gpu_node("n1"))
        for name in ("a", "b", "c"):
            await h.add_pod(gpu_pod(name))
        await h.settle()
        assert await h.schedule("a") == "n1"
        await h.filter("b")
        assert "node lock contention" in (await h.bind("b", "n1"))["Error"]
        waits = "hami_scheduler_node_lock_wait_seconds"
        assert value(h, f"{waits}_count", outcome="timeout") == 1
        assert value(h, f"{waits}_sum", outcome="timeout") >= 0.05
        await h.kube.merge_patch(NODES, "n1", {"metadata": {"annotations": {keys.NODE_LOCK: None}}})
        await h.filter("c")
        h.kube.fail_next("bind", Unavailable("down", 503))
        assert "down" in (await h.bind("c", "n1"))["Error"]
        errors = "hami_scheduler_kube_api_errors_total"
        assert value(h, errors, verb="create", resource="pods/binding", status="503") == 1


async def test_metered_kube_counts_each_verb_and_reraises() -> None:
    kube = FakeKube()
    seen: list[tuple[str, str, int]] = []
    metered = MeteredKube(kube, lambda *args: seen.append(args))
    with pytest.raises(NotFound):
        await metered.get(LEASES, "missing", "ns")
    await metered.create(EVENTS, {"metadata": {"name": "e"}})
    kube.fail_next("list", Unavailable("down"))
    with pytest.raises(Unavailable):
        await metered.list(NODES)
    kube.fail_next("replace", Unavailable("busy", 429))
    with pytest.raises(Unavailable):
        await metered.replace(NODES, "x", {})
    await metered.create(NODES, {"metadata": {"name": "n"}})
    await metered.merge_patch(NODES, "n", {"metadata": {"labels": {"a": "b"}}})
    kube.forget_history()
    with pytest.raises(Gone):
        async for _ in metered.watch(NODES, resource_version="1"):
            pass
    assert seen == [
        ("get", "leases", 404),
        ("list", "nodes", 0),
        ("update", "nodes", 429),
        ("watch", "nodes", 410),
    ]


def unfit(*reasons: str, message: str = "") -> Unfit:
    if message:
        return Unfit.because(message)
    return Unfit(counts=dict.fromkeys(reasons, 1), total=len(reasons))


def test_unfit_reason_is_bounded_and_skips_unregistered_nodes() -> None:
    memory, cores = Reason.CARD_INSUFFICIENT_MEMORY, Reason.CARD_INSUFFICIENT_CORE
    cpu_nodes = {f"cpu{i}": Unfit.because(NODE_UNREGISTERED) for i in range(5)}
    gpu_nodes = {"g1": unfit(memory), "g2": unfit(cores), "g3": unfit(cores)}
    assert unfit_reason(Decision("p", failed={**cpu_nodes, **gpu_nodes})) == cores
    assert unfit_reason(Decision("p", failed=cpu_nodes)) == NODE_UNREGISTERED
    assert unfit_reason(Decision("p", failed={"a": unfit(memory), "b": unfit(cores)})) == cores
    odd = {"n": unfit(message="3 NeuronCores is neither at most nor a multiple of 2")}
    assert unfit_reason(Decision("p", failed=odd)) == OTHER
    assert unfit_reason(Decision("p")) == NO_NODES
