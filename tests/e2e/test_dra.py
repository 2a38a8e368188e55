"""DRA mode end to end (issue 22): kube-scheduler's DRA plugins allocate claims created by
kube-controller-manager from the webhook's templates, on kwok nodes whose slices the simulate
twin publishes; the audit reads every claim's ``consumedCapacity``.

Scale: ``HAMI_DRA_NODES`` nodes × 4 GPUs and ``HAMI_DRA_PODS`` pods (defaults 50 and 400; the
test stays under ~2 minutes on 2 cores; benchmarks/bench_dra.py measures the rates).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio
from lightkube import AsyncClient
from lightkube.resources.core_v1 import Event, Namespace, Node, Pod

from hami.agent.dra.kube import LightkubeDra
from hami.agent.dra.plugin import NO_CDI_REASON
from hami.agent.dra.simulate import DraSimulator
from hami.agent.simulation.simulator import SimNode
from hami.cluster.control_plane import LocalCluster
from hami.core.dra import names, records
from hami.core.dra.translate import DraMode, TranslateError, translate
from tests.e2e.dra_stack import (
    Claim,
    ClaimTemplate,
    DeviceClass,
    Slice,
    apply_patch,
    create_dra_nodes,
    device_class,
    dra_cluster,
    ensure_device_class,
    pod_manifest,
)
from tests.e2e.localcluster import client_for, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.dra]

NODES = int(os.environ.get("HAMI_DRA_NODES", "50"))
PODS = int(os.environ.get("HAMI_DRA_PODS", "400"))
GIB = 1024
HAMI = str(Path(sys.executable).with_name("hami"))
INVENTORY = """\
gpus:
  - {model: NVIDIA A100-SXM4-40GB, memoryMiB: 40960, numa: 0}
  - {model: NVIDIA A100-SXM4-40GB, memoryMiB: 40960, numa: 0}
  - {model: NVIDIA A100-SXM4-40GB, memoryMiB: 40960, numa: 1}
  - {model: NVIDIA A100-SXM4-40GB, memoryMiB: 40960, numa: 1}
links:
  - {gpus: [0, 1], pcie: node, nvlinks: 12}
  - {gpus: [2, 3], pcie: node, nvlinks: 12}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    yield from dra_cluster(tmp_path_factory.mktemp("dra-cluster"), "hami-dra")


@pytest_asyncio.fixture(loop_scope="function")
async def kube(cluster: LocalCluster) -> AsyncIterator[AsyncClient]:
    client = client_for(cluster, timeout=30.0)
    try:
        yield client
    finally:
        await client.close()


def _mix(i: int) -> tuple[dict[str, str], dict[str, str]]:
    """Pod i's limits and annotations: mostly single-GPU slices, some 2-GPU NUMA-bound."""
    if i % 10 == 9:
        return (
            {"nvidia.com/gpu": "2", "nvidia.com/gpumem": str(8 * GIB), "nvidia.com/gpucores": "20"},
            {"nvidia.com/numa-bind": "true"},
        )
    mem = (4, 8, 12, 16)[i % 4] * GIB
    cores = (10, 20, 30, 40)[i % 4]
    return ({"nvidia.com/gpumem": str(mem), "nvidia.com/gpucores": str(cores)}, {})


async def _create_dra_pod(
    kube: AsyncClient, name: str, ns: str, limits: dict[str, str], annotations: dict[str, str]
) -> None:
    pod = pod_manifest(name, ns, {"main": limits}, annotations, {names.DRA_NODE_LABEL: "true"})
    done = translate(pod, DraMode())
    for template in done.templates:
        try:
            await kube.create(cast(ClaimTemplate, ClaimTemplate.from_dict(dict(template))))
        except Exception as exc:
            if "already exists" not in str(exc):
                raise
    await kube.create(cast(Pod, Pod.from_dict(apply_patch(pod, done.patch))))


async def _claims(kube: AsyncClient, ns: str) -> list[dict[str, Any]]:
    return [c.to_dict() async for c in kube.list(Claim, namespace=ns)]


async def test_burst_of_claims_is_allocated_without_overcommit(
    kube: AsyncClient, cluster: LocalCluster, tmp_path: Path
) -> None:
    await ensure_device_class(kube)
    nodes = await create_dra_nodes(kube, NODES)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY)
    dra = LightkubeDra(client_for(cluster, timeout=30.0))
    sim = DraSimulator(dra, [SimNode(n, inventory) for n in nodes])
    started = time.monotonic()
    assert await sim.publish_all() == NODES
    assert await sim.publish_all() == 0  # unchanged devices: no new generation
    published = time.monotonic() - started
    slices = [s.to_dict() async for s in kube.list(Slice)]
    capacity = records.capacities(slices)
    assert len(capacity) == 4 * NODES

    ns = "dra-burst"
    await kube.create(Namespace(metadata={"name": ns}))  # type: ignore[arg-type]
    started = time.monotonic()
    gate = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        limits, annotations = _mix(i)
        async with gate:
            await _create_dra_pod(kube, f"p{i:04d}", ns, limits, annotations)

    await asyncio.gather(*(one(i) for i in range(PODS)))
    # one that no device can hold: more memory than any GPU has
    await _create_dra_pod(kube, "too-big", ns, {"nvidia.com/gpumem": str(80 * GIB)}, {})
    created = time.monotonic() - started

    async def settled() -> list[dict[str, Any]] | None:
        pods = [p.to_dict() async for p in kube.list(Pod, namespace=ns)]
        bound = [p for p in pods if (p.get("spec") or {}).get("nodeName")]
        waiting = [p for p in pods if not (p.get("spec") or {}).get("nodeName")]
        if len(pods) == PODS + 1 and all(records.pending_reason(p) for p in waiting):
            return pods if bound else None
        return None

    pods = await wait_until(settled, 150.0, "every pod bound or explained", interval=2.0)
    scheduled = time.monotonic() - started
    claims = await _claims(kube, ns)
    allocated = _audit(pods, claims, capacity)
    bound = [p for p in pods if p["spec"].get("nodeName")]
    print(
        f"\nDRA burst: {NODES} nodes, {PODS + 1} pods, {len(claims)} claims, "
        f"{len(bound)} bound, {len(allocated)} device allocations; slices {published:.1f} s, "
        f"created {created:.1f} s, settled {scheduled:.1f} s"
    )
    await dra.close()


async def test_one_contended_gpu_chosen_by_cel_is_never_overcommitted(
    kube: AsyncClient, cluster: LocalCluster, tmp_path: Path
) -> None:
    """Five pods pinned by ``use-gpuuuid`` + ``use-gputype`` (CEL) to one GPU, 30 cores each:
    three fit, two wait with a reason that names the cores; ``nouse-gputype`` keeps one off."""
    await ensure_device_class(kube)
    (node,) = await create_dra_nodes(kube, 1, prefix="solo-")
    inventory = tmp_path / "solo.yaml"
    inventory.write_text("gpus:\n  - {model: NVIDIA H100 80GB HBM3, memoryMiB: 81559, numa: 0}\n")
    dra = LightkubeDra(client_for(cluster, timeout=30.0))
    assert await DraSimulator(dra, [SimNode(node, inventory)]).publish_all() == 1
    await dra.close()
    solo = (await kube.get(Slice, f"{node}-hami-core-gpu")).to_dict()
    uuid = solo["spec"]["devices"][0]["attributes"]["uuid"]["string"]
    ns = "dra-solo"
    await kube.create(Namespace(metadata={"name": ns}))  # type: ignore[arg-type]
    pinned = {"nvidia.com/use-gpuuuid": uuid, "nvidia.com/use-gputype": "h100"}
    limits = {"nvidia.com/gpumem": "1000", "nvidia.com/gpucores": "30"}
    for i in range(5):
        await _create_dra_pod(kube, f"s{i}", ns, limits, pinned)
    await _create_dra_pod(
        kube,
        "not-h100",
        ns,
        limits,
        {"nvidia.com/use-gpuuuid": uuid, "nvidia.com/nouse-gputype": "H100"},
    )

    async def settled() -> list[dict[str, Any]] | None:
        pods = [p.to_dict() async for p in kube.list(Pod, namespace=ns)]
        waiting = [p for p in pods if not p["spec"].get("nodeName")]
        done = len(pods) == 6 and all(records.pending_reason(p) for p in waiting)
        return pods if done and len(waiting) < 6 else None

    pods = await wait_until(settled, 60.0, "the pinned pods bound or explained", interval=1.0)
    bound = sorted(p["metadata"]["name"] for p in pods if p["spec"].get("nodeName"))
    assert len(bound) == 3 and "not-h100" not in bound, bound
    claims = await _claims(kube, ns)
    allocated = records.allocations(claims)
    used = records.usage(allocated)
    assert used == {(node, "hami-gpu-0"): records.Usage(3000 * names.MIB, 90, 3)}
    capacity = records.capacities([solo])
    assert records.overcommitted(used, capacity) == []
    waiting = [c for c in claims if not records.allocations([c]) and not _owned_by(c, "not-h100")]
    assert len(waiting) == 2
    assert records.why_unallocatable(waiting[0], capacity, used) == [
        "request gpu: no node has a device with 1000 MiB and 30 cores free "
        "(the most free on any device: 78559 MiB, 10 cores)"
    ]
    # `hami explain` says the same for a pending pod, and where an allocated one is
    pending = next(
        p["metadata"]["name"]
        for p in pods
        if not p["spec"].get("nodeName") and p["metadata"]["name"].startswith("s")
    )
    explained = (
        (pending, "30 cores free"),
        (bound[0], "1000 MiB, 30 cores"),
        ("not-h100", "no published device matches"),
    )
    for pod, expected in explained:
        shown = subprocess.run(
            [HAMI, "explain", pod, "-n", ns, "--kubeconfig", str(cluster.kubeconfig)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0 and expected in shown.stdout, shown.stdout + shown.stderr


async def test_count_only_pod_served_through_extended_resource_name(
    kube: AsyncClient, cluster: LocalCluster, tmp_path: Path
) -> None:
    """A DeviceClass with ``extendedResourceName`` (KEP-5004): a pod asking only a count of it,
    with no webhook and no claim of its own, gets a whole GPU of the class (the capacities'
    defaults: all the memory, no core limit) from kube-scheduler."""
    (node,) = await create_dra_nodes(kube, 1, prefix="count-")
    inventory = tmp_path / "l4.yaml"
    inventory.write_text("gpus:\n  - {model: NVIDIA L4, memoryMiB: 23034, numa: 0}\n")
    dra = LightkubeDra(client_for(cluster, timeout=30.0))
    assert await DraSimulator(dra, [SimNode(node, inventory)]).publish_all() == 1
    await dra.close()
    made = device_class("example.com/l4")
    made["metadata"]["name"] = "hami-l4"
    made["spec"]["selectors"].append(
        {"cel": {"expression": f'device.attributes["{names.DRIVER}"].productName == "NVIDIA L4"'}}
    )
    await kube.create(cast(DeviceClass, DeviceClass.from_dict(made)))
    ns = "dra-count"
    await kube.create(Namespace(metadata={"name": ns}))  # type: ignore[arg-type]
    for i in range(2):
        pod = pod_manifest(f"c{i}", ns, {"main": {"example.com/l4": "1"}})
        await kube.create(cast(Pod, Pod.from_dict(pod)))

    async def settled() -> list[dict[str, Any]] | None:
        pods = [p.to_dict() async for p in kube.list(Pod, namespace=ns)]
        bound = [p for p in pods if p["spec"].get("nodeName")]
        waiting = [p for p in pods if not p["spec"].get("nodeName") and records.pending_reason(p)]
        return pods if len(bound) == 1 and len(waiting) == 1 else None

    pods = await wait_until(settled, 60.0, "one count-only pod bound, one explained")
    bound = next(p for p in pods if p["spec"].get("nodeName"))
    assert bound["spec"]["nodeName"] == node
    (allocation,) = records.allocations(await _claims(kube, ns))
    assert (allocation.node, allocation.memory_mib, allocation.cores) == (node, 23034, 0)


async def test_plugin_refuses_a_node_whose_runtime_ignores_cdi(
    kube: AsyncClient, cluster: LocalCluster, tmp_path: Path
) -> None:
    """A Node whose kubelet reports containerd 1.6 (no CDI): ``hami dra-plugin`` exits with the
    reason, leaves a Warning Event on the Node, serves no socket and publishes no slice."""
    node = "no-cdi-node"
    labels = {names.DRA_NODE_LABEL: names.DRA_NODE_VALUE}
    await kube.create(cast(Node, Node.from_dict({"metadata": {"name": node, "labels": labels}})))
    status = {"status": {"nodeInfo": {"containerRuntimeVersion": "containerd://1.6.20"}}}
    await kube.patch(Node.Status, node, status)
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("gpus:\n  - {model: NVIDIA L4, memoryMiB: 23034, numa: 0}\n")
    kubelet = tmp_path / "kubelet"
    done = await asyncio.to_thread(
        subprocess.run,
        [
            HAMI, "dra-plugin", "--node-name", node, "--backend", "fake",
            "--inventory", str(inventory), "--kubeconfig", str(cluster.kubeconfig),
            "--kubelet-dir", str(kubelet), "--cdi-spec-dir", str(tmp_path / "cdi"),
            "--hook-path", str(tmp_path / "hook"),
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "containerd://1.6.20 applies no CDI devices" in done.stderr
    assert "containerd >= 1.7 is needed" in done.stderr
    assert not (kubelet / "plugins_registry").exists()
    events = [
        e async for e in kube.list(Event, namespace="default", fields={"involvedObject.name": node})
    ]
    warnings = [e for e in events if e.type == "Warning"]  # kube-controller-manager adds its own
    assert [(e.reason, e.source.component if e.source else "") for e in warnings] == [
        (NO_CDI_REASON, "hami-dra-plugin")
    ]
    slices = [s async for s in kube.list(Slice)]
    assert not [s for s in slices if s.spec.nodeName == node]


def _audit(
    pods: list[dict[str, Any]], claims: list[dict[str, Any]], capacity: dict[Any, Any]
) -> list[records.Allocation]:
    """No device over-consumed; each bound pod's claims on its node and owned by it; 2-GPU
    claims on two GPUs of one NUMA node; the pod too big for any GPU explained."""
    allocated = records.allocations(claims)
    used = records.usage(allocated)
    assert records.overcommitted(used, capacity) == []
    by_owner: dict[str, list[records.Allocation]] = {}
    for a in allocated:
        by_owner.setdefault(a.owner, []).append(a)
    for pod in pods:
        if pod["spec"].get("nodeName"):
            mine = by_owner.get(pod["metadata"]["name"], [])
            assert mine and {a.node for a in mine} == {pod["spec"]["nodeName"]}
    for owner, allocs in by_owner.items():
        if len(allocs) == 2:
            assert allocs[0].device != allocs[1].device, owner
            minors = sorted(int(a.device.rsplit("-", 1)[1]) for a in allocs)
            assert minors[0] // 2 == minors[1] // 2, (owner, minors)
    too_big = next(p for p in pods if p["metadata"]["name"] == "too-big")
    assert not too_big["spec"].get("nodeName")
    assert "claim" in records.pending_reason(too_big)
    (big_claim,) = [c for c in claims if _owned_by(c, "too-big")]
    assert records.why_unallocatable(big_claim, capacity, used) == [
        "request gpu: 81920 MiB is more than any device has (40960 MiB)"
    ]
    return allocated


def _owned_by(claim: dict[str, Any], pod: str) -> bool:
    refs = claim["metadata"].get("ownerReferences") or []
    return any(r.get("kind") == "Pod" and r.get("name") == pod for r in refs)


def test_malformed_annotation_is_a_clear_denial() -> None:
    pod = pod_manifest(
        "bad", "ns", {"main": {"nvidia.com/gpu": "1"}}, {"nvidia.com/use-gpuuuid": 'x"] || true'}
    )
    with pytest.raises(TranslateError, match=r"nvidia\.com/use-gpuuuid"):
        translate(pod, DraMode())
