"""`hami_node_gpu_mig_instance_info` carries the instances the device plugin realised (issue 21):
through the real scheduler cache, a reservation alone exports nothing; the identity the plugin
writes back into `hami.io/vgpu-mig-allocations` (MIG UUID, GPU and compute instance ids) makes
one sample per instance, with HAMi's label set; a finished or deleted pod's sample goes."""

from __future__ import annotations

import copy
from typing import Any

from hami.api import annotations as codec
from hami.api import keys
from hami.api.types import MigAllocation, MigPlacement
from hami.core.config import SchedulerConfig
from hami.k8s.fake import node_manifest
from hami.scheduler.cache import ClusterCache
from hami.scheduler.metrics import Metrics
from hami.vendors.registry import build
from tests import builders
from tests.sim.test_mig import GPU, H100

from .test_metrics import find, samples

NAME = "hami_node_gpu_mig_instance_info"
# wire-format.md §6.2 (plus the zone constant label of every custom collector)
HAMI_LABELS = {
    "node",
    "device_uuid",
    "device_index",
    "mig_uuid",
    "profile",
    "gpu_instance_id",
    "compute_instance_id",
    "placement_start",
    "placement_size",
    "zone",
}
SMALL = MigAllocation(0, 0, GPU, "1g.10gb", MigPlacement(6, 1))
BIG = MigAllocation(1, 0, GPU, "3g.40gb", MigPlacement(0, 4))


def pod(rv: int, *allocations: MigAllocation, phase: str = "Running") -> dict[str, Any]:
    annotations = {
        keys.VGPU_NODE: "h100",
        keys.NVIDIA_ALLOCATED: f"{GPU},NVIDIA,9856,14:;{GPU},NVIDIA,40192,42:;",
        keys.MIG_ALLOCATIONS: codec.encode_mig_allocations(allocations),
    }
    return builders.pod(
        "mig",
        builders.container("a"),
        builders.container("b"),
        namespace="ml",
        uid="uid-mig",
        resourceVersion=str(rv),
        annotations=annotations,
        node="h100",
        phase=phase,
    )


def realised(a: MigAllocation, uuid: str, gi: int, ci: int = 0) -> MigAllocation:
    return MigAllocation(
        a.container_index, a.device_index, a.gpu_uuid, a.profile, a.placement, uuid, gi, ci
    )


def test_only_realised_instances_are_exported_with_their_identity() -> None:
    cache = ClusterCache(build(SchedulerConfig()))
    cache.replace_nodes([node_manifest("h100", {keys.NVIDIA_REGISTER: H100})])
    cache.replace_pods([pod(10, SMALL, BIG)])
    metrics = Metrics(cache, legacy=True)
    assert find(samples(metrics), NAME) == []  # reserved by the scheduler, not created yet

    # the device plugin's Allocate patch: the first container's instance exists
    cache.apply_pod("MODIFIED", pod(11, realised(SMALL, "MIG-aaaa", 9), BIG))
    (sample,) = find(samples(metrics), NAME)
    assert sample[1] == {
        "node": "h100",
        "device_uuid": GPU,
        "device_index": "0",
        "mig_uuid": "MIG-aaaa",
        "profile": "1g.10gb",
        "gpu_instance_id": "9",
        "compute_instance_id": "0",
        "placement_start": "6",
        "placement_size": "1",
        "zone": "vGPU",
    }
    assert set(sample[1]) == HAMI_LABELS and sample[2] == 1.0
    (legacy,) = find(samples(metrics), "nodeGPUMigInstance")
    assert legacy[1]["migname"] == "1g.10gb-9"

    both = pod(12, realised(SMALL, "MIG-aaaa", 9), realised(BIG, "MIG-bbbb", 1))
    cache.apply_pod("MODIFIED", both)
    found = {s[1]["mig_uuid"]: s[1] for s in find(samples(metrics), NAME)}
    assert sorted(found) == ["MIG-aaaa", "MIG-bbbb"]
    assert (found["MIG-bbbb"]["placement_start"], found["MIG-bbbb"]["placement_size"]) == (
        "0",
        "4",
    )
    assert metrics.render() == metrics.render()  # the cached lines stay right

    done = copy.deepcopy(both)
    done["metadata"]["resourceVersion"] = "13"
    done["status"]["phase"] = "Succeeded"
    cache.apply_pod("MODIFIED", done)
    assert find(samples(metrics), NAME) == []


def test_a_deleted_pod_takes_its_samples_and_unknown_gpus_export_nothing() -> None:
    cache = ClusterCache(build(SchedulerConfig()))
    cache.replace_nodes([node_manifest("h100", {keys.NVIDIA_REGISTER: H100})])
    stray = MigAllocation(1, 0, "GPU-elsewhere", "1g.10gb", MigPlacement(0, 1), "MIG-x", 1, 0)
    live = pod(20, realised(SMALL, "MIG-aaaa", 9), stray)
    cache.replace_pods([live])
    metrics = Metrics(cache)
    assert [s[1]["mig_uuid"] for s in find(samples(metrics), NAME)] == ["MIG-aaaa"]
    cache.apply_pod("DELETED", live)
    assert find(samples(metrics), NAME) == []
