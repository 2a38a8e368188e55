"""`hami demo show` lists MIG GPUs with their instances (issue 21), over the KubeAPI port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hami.api import annotations as codec
from hami.api import keys
from hami.api.types import MigAllocation, MigPlacement
from hami.demo import cli
from hami.demo.report import mig_gpus, render_mig
from hami.k8s.api import NODES, PODS
from hami.k8s.fake import FakeKube, node_manifest
from tests import builders
from tests.sim.test_mig import GPU, H100

T4 = '[{"id":"GPU-t4","count":10,"devmem":15360,"devcore":100,"type":"NVIDIA Tesla T4","health":true}]'


def mig_pod(
    name: str, namespace: str, *allocations: MigAllocation, phase: str = "Running"
) -> dict[str, Any]:
    annotations = {keys.VGPU_NODE: "h100", keys.NVIDIA_ALLOCATED: f"{GPU},NVIDIA,9856,14:;"}
    if allocations:
        annotations[keys.MIG_ALLOCATIONS] = codec.encode_mig_allocations(allocations)
    return builders.pod(
        name,
        builders.container("c"),
        namespace=namespace,
        uid=name,
        annotations=annotations,
        node="h100",
        phase=phase,
    )


REALISED = MigAllocation(0, 0, GPU, "1g.10gb", MigPlacement(6, 1), "MIG-1111", 9, 0)
RESERVED = MigAllocation(0, 0, GPU, "3g.40gb", MigPlacement(0, 4))
GONE = MigAllocation(0, 0, GPU, "1g.10gb", MigPlacement(5, 1), "MIG-2222", 10, 0)


def manifests() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    nodes = [
        node_manifest("h100", {keys.NVIDIA_REGISTER: H100}),
        node_manifest("t4", {keys.NVIDIA_REGISTER: T4}),
    ]
    pods = [
        mig_pod("runs", "ml", REALISED),
        mig_pod("starting", "team", RESERVED),
        mig_pod("done", "ml", GONE, phase="Succeeded"),  # its instance is reclaimed
    ]
    return nodes, pods


def test_mig_gpus_from_manifests_skip_finished_pods_and_plain_gpus() -> None:
    nodes, pods = manifests()
    gpus, problems = mig_gpus(nodes, pods)
    assert problems == []
    (gpu,) = gpus
    assert (gpu.node, gpu.uuid, gpu.slice_map()) == ("h100", GPU, "aaaa..b.")
    assert render_mig(gpus) == [
        "MIG GPUs (a letter per instance, . free):",
        f"  h100 GPU 0 (NVIDIA H100 80GB HBM3) {GPU}: [aaaa..b.] 5/8 slices",
        "      a  3g.40gb  slices 0-3  team/starting [0]  reserved, not realised yet",
        "      b  1g.10gb  slices 6-6  ml/runs [0]  MIG-1111 (GI 9, CI 0)",
    ]


def test_unreadable_annotations_are_named_not_dropped() -> None:
    nodes, pods = manifests()
    broken = mig_pod("broken", "ml")
    broken["metadata"]["annotations"][keys.MIG_ALLOCATIONS] = "not-a-mig-annotation"
    bad_node = node_manifest("bad", {keys.NVIDIA_REGISTER: "[{not json"})
    gpus, problems = mig_gpus([*nodes, bad_node], [*pods, broken])
    assert len(gpus) == 1 and len(gpus[0].instances) == 2
    assert problems[0].startswith("node bad: unreadable registration")
    assert problems[1].startswith(f"pod ml/broken: unreadable {keys.MIG_ALLOCATIONS}")
    assert render_mig([], []) == []
    assert render_mig([], ["x"]) == ["MIG GPUs (a letter per instance, . free):", "  ! x"]


async def test_show_lists_mig_gpus_of_every_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeKube()
    nodes, pods = manifests()
    for node in nodes:
        await fake.create(NODES, node)
    for pod in pods:
        await fake.create(PODS, pod, str(pod["metadata"]["namespace"]))
    monkeypatch.setattr(cli, "_api", lambda _path: fake)
    placements, lines = await cli._all_placements(Path("unused"), "ml", {})
    assert sorted(p.name for p in placements) == ["done", "runs"]
    assert "team/starting" in "\n".join(lines)  # the GPU is shown whole, whatever the filter
    assert lines[1].endswith("[aaaa..b.] 5/8 slices")
