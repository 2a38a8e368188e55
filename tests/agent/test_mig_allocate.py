"""Allocate in `mig` mode and the reconciler, on the fake MIG model and the in-memory
Kubernetes fake: reservations realised at their placements, identity written back, all or
none for multi-GPU containers, failures rolled back and recorded on the pod, hand-edited
annotations refused with nothing created, instances of gone pods reclaimed, foreign ones left
alone, adoption after a restart, idle GPUs out of MIG mode only when configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hami.agent.allocation.allocator import Allocator, HostPrep
from hami.agent.config.settings import Settings
from hami.agent.discovery.fake import FakeSource, load_inventory
from hami.agent.errors import AllocationError
from hami.agent.mig.catalog import NVML_ERROR_INSUFFICIENT_RESOURCES, specs_for
from hami.agent.mig.fake import FakeMig, FakeMigGpu
from hami.agent.mig.manager import MigManager
from hami.api import keys
from hami.api.annotations import decode_mig_allocations, encode_mig_allocations
from hami.api.types import MigAllocation, MigPlacement
from tests.agent.builders import INVENTORIES, NODE, bound_pod, locked_node
from tests.agent.builders import settings as make_settings
from tests.agent.fake_kube import FakeKube
from tests.builders import container_device as dev

pytestmark = pytest.mark.mig

INV = INVENTORIES / "a100-mig.yaml"
G0 = "GPU-7c1e0a52-9d3b-4f61-8a2e-5b4c3d2e1f01"
G1 = "GPU-7c1e0a52-9d3b-4f61-8a2e-5b4c3d2e1f02"


class Node:
    """One MIG node: fake GPUs, a manager, an allocator; ``restart()`` keeps the GPUs' state."""

    def __init__(self, tmp: Path, kube: FakeKube, **node: Any) -> None:
        self.tmp, self.kube, self.node = tmp, kube, node
        self.settings: Settings = make_settings(tmp, operating_mode="mig", **node)
        self.source = FakeSource(load_inventory(INV, NODE), INV, NODE, mig_state=tmp / "mig.json")
        self.fake: FakeMig = self.source.mig()
        self.start()

    def start(self) -> None:
        self.manager = MigManager(
            self.fake,
            NODE,
            [G0, G1],
            ledger=self.tmp / "ledger.json",
            disable_idle=self.settings.node.mig_disable_idle,
        )
        self.alloc = Allocator(
            self.kube,
            self.settings,
            self.source.gpus,
            host=HostPrep(False),
            mig=self.manager,
        )

    def restart(self) -> None:
        self.source = FakeSource(
            load_inventory(INV, NODE), INV, NODE, mig_state=self.tmp / "mig.json"
        )
        self.fake = self.source.mig()
        self.start()

    async def reconcile(self) -> list[Any]:
        return await self.manager.reconcile(await self.kube.list_pods(NODE))


def mig_pod(
    kube: FakeKube, name: str, reservations: list[tuple[int, int, str, str, int, int]], **kw: Any
) -> dict[str, Any]:
    """A pod bound by the scheduler with MIG reservations (container, device, gpu, profile,
    start, size); the node lock names it."""
    containers: dict[int, list[Any]] = {}
    for c, _d, gpu, _p, _s, _z in reservations:
        containers.setdefault(c, []).append(dev(gpu, 9728, 15))
    entries = [containers.get(i, []) for i in range(max(containers) + 1)]
    names = [f"c{i}" for i in range(len(entries))]
    pod = bound_pod(name, entries, containers=names, **kw)
    pod["metadata"]["annotations"][keys.MIG_ALLOCATIONS] = encode_mig_allocations(
        [MigAllocation(c, d, g, p, MigPlacement(s, z)) for c, d, g, p, s, z in reservations]
    )
    kube.add_pod(pod)
    locked_node(kube, pod)
    return kube.pods[("default", name)]  # the stored object: edits reach the API


def realised(kube: FakeKube, name: str) -> list[MigAllocation]:
    return list(decode_mig_allocations(kube.pod_annotations("default", name)[keys.MIG_ALLOCATIONS]))


def replicas(gpu: str, n: int = 1) -> list[str]:
    return [f"{gpu}-{i}" for i in range(n)]


async def test_reservations_become_instances_at_their_placements(tmp_path: Path) -> None:
    kube = FakeKube()
    node = Node(tmp_path, kube)
    mig_pod(kube, "small", [(0, 0, G0, "1g.10gb", 6, 1)])
    (answer,) = await node.alloc.allocate([replicas(G0)])
    (inst,) = node.fake.instances(G0)
    assert (inst.profile, inst.placement) == ("1g.10gb", MigPlacement(6, 1))
    assert answer.envs == {"NVIDIA_VISIBLE_DEVICES": inst.mig_uuid} and answer.mounts == ()
    (a,) = realised(kube, "small")
    assert (a.mig_uuid, a.gpu_instance_id, a.compute_instance_id) == (
        inst.mig_uuid,
        inst.gpu_instance_id,
        0,
    )
    notes = kube.pod_annotations("default", "small")
    assert notes[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS
    mig_pod(kube, "big", [(0, 0, G0, "3g.40gb", 0, 4)])
    await node.alloc.allocate([replicas(G0)])
    assert [(i.profile, i.placement.start) for i in node.fake.instances(G0)] == [
        ("1g.10gb", 6),
        ("3g.40gb", 0),
    ]


async def test_cdi_mode_answers_cdi_names(tmp_path: Path) -> None:
    kube = FakeKube()
    node = Node(tmp_path, kube)
    node.alloc.settings = node.settings = Settings(
        **{
            **{f: getattr(node.settings, f) for f in Settings.__slots__},
            "list_strategies": ("cdi-cri",),
        }
    )
    mig_pod(kube, "cdi", [(0, 0, G0, "2g.20gb", 2, 2)])
    (answer,) = await node.alloc.allocate([replicas(G0)])
    (inst,) = node.fake.instances(G0)
    assert answer.cdi_devices == (f"k8s.device-plugin.nvidia.com/gpu={inst.mig_uuid}",)


async def test_multi_gpu_container_is_all_or_none(tmp_path: Path) -> None:
    kube = FakeKube()
    node = Node(tmp_path, kube)
    node.fake.inject(G1, "createComputeInstance", NVML_ERROR_INSUFFICIENT_RESOURCES)
    mig_pod(kube, "two", [(0, 0, G0, "3g.40gb", 4, 4), (0, 1, G1, "3g.40gb", 4, 4)])
    with pytest.raises(AllocationError, match="Insufficient Resources"):
        await node.alloc.allocate([[*replicas(G0), *replicas(G1)]])
    assert node.fake.instances(G0) == [] and node.fake.instances(G1) == []  # rolled back
    assert node.manager.ledger.entries() == []
    notes = kube.pod_annotations("default", "two")
    assert notes[keys.BIND_PHASE] == keys.BIND_PHASE_FAILED
    assert keys.NODE_LOCK not in kube.node_annotations(NODE)
    (event,) = kube.events
    assert event.reason == "GPUAllocateFailed" and "rolled back" not in event.message
    assert "Insufficient Resources" in event.message and event.name == "two"
    assert all(a.mig_uuid is None for a in realised(kube, "two"))


async def test_multi_gpu_container_gets_both(tmp_path: Path) -> None:
    kube = FakeKube()
    node = Node(tmp_path, kube)
    mig_pod(kube, "two", [(0, 0, G0, "3g.40gb", 4, 4), (0, 1, G1, "1g.10gb", 0, 1)])
    (answer,) = await node.alloc.allocate([[*replicas(G0), *replicas(G1)]])
    uuids = [a.mig_uuid for a in realised(kube, "two")]
    assert answer.envs["NVIDIA_VISIBLE_DEVICES"] == ",".join(u or "" for u in uuids)


@pytest.mark.parametrize(
    ("reservation", "message"),
    [
        ((0, 0, G0, "3g.40gb", 2, 4), r"3g.40gb cannot be placed at \{start: 2, size: 4\}"),
        ((0, 0, G0, "1g.5gb", 0, 1), "has no MIG profile 1g.5gb"),
        ((0, 0, G1, "1g.10gb", 0, 1), r"does not match container #0"),
    ],
)
async def test_bad_reservation_is_a_clear_error_and_creates_nothing(
    tmp_path: Path, reservation: tuple[int, int, str, str, int, int], message: str
) -> None:
    kube = FakeKube()
    node = Node(tmp_path, kube)
    pod = mig_pod(kube, "bad", [reservation])
    if reservation[2] == G1:  # hand edit: the reservation names another GPU than the entry
        pod["metadata"]["annotations"][keys.NVIDIA_TO_ALLOCATE] = f"{G0},NVIDIA,9728,15:;"
    with pytest.raises(AllocationError, match=message):
        await node.alloc.allocate([replicas(G0)])
    assert node.fake.calls == [] and node.manager.ledger.entries() == []
    assert kube.pod_annotations("default", "bad")[keys.BIND_PHASE] == keys.BIND_PHASE_FAILED
    assert message.split(" ")[0].strip("\\r") in kube.events[0].message or kube.events


async def test_hand_edited_annotation_that_does_not_decode(tmp_path: Path) -> None:
    kube = FakeKube()
    node = Node(tmp_path, kube)
    pod = mig_pod(kube, "edited", [(0, 0, G0, "1g.10gb", 0, 1)])
    pod["metadata"]["annotations"][keys.MIG_ALLOCATIONS] = '[{"containerIndex":0}]'
    with pytest.raises(
        AllocationError, match="vgpu-mig-allocations of pod default/edited is invalid"
    ):
        await node.alloc.allocate([replicas(G0)])
    assert node.fake.calls == []


async def test_identity_naming_a_missing_instance_is_refused(tmp_path: Path) -> None:
    kube = FakeKube()
    node = Node(tmp_path, kube)
    pod = mig_pod(kube, "ghost", [(0, 0, G0, "1g.10gb", 0, 1)])
    fake = MigAllocation(0, 0, G0, "1g.10gb", MigPlacement(0, 1), "MIG-made-up", 3, 0)
    pod["metadata"]["annotations"][keys.MIG_ALLOCATIONS] = encode_mig_allocations([fake])
    with pytest.raises(AllocationError, match=r"MIG-made-up .* which does not exist"):
        await node.alloc.allocate([replicas(G0)])
    assert node.fake.calls == []


async def test_reconcile_destroys_gone_pods_instances_keeps_foreign_ones(tmp_path: Path) -> None:
    kube = FakeKube()
    node = Node(tmp_path, kube)
    foreign_gi = node.fake.create_gpu_instance(G1, "2g.20gb", MigPlacement(0, 2))
    node.fake.create_compute_instance(G1, foreign_gi)  # made by someone else
    mig_pod(kube, "a", [(0, 0, G0, "1g.10gb", 6, 1)])
    await node.alloc.allocate([replicas(G0)])
    mig_pod(kube, "b", [(0, 0, G0, "1g.10gb", 5, 1)])
    await node.alloc.allocate([replicas(G0)])
    assert await node.reconcile() == []  # both live
    kube.delete_pod("default", "a")
    pod_b = kube.pods[("default", "b")]
    (gone,) = await node.reconcile()
    assert gone.pod == "default/a"
    assert [i.placement.start for i in node.fake.instances(G0)] == [5]
    pod_b["status"]["phase"] = "Succeeded"  # finished
    await node.reconcile()
    assert node.fake.instances(G0) == []
    assert [i.gpu_instance_id for i in node.fake.instances(G1)] == [foreign_gi]


async def test_instance_with_processes_is_retried_later(tmp_path: Path) -> None:
    kube = FakeKube()
    node = Node(tmp_path, kube)
    mig_pod(kube, "a", [(0, 0, G0, "1g.10gb", 6, 1)])
    await node.alloc.allocate([replicas(G0)])
    (inst,) = node.fake.instances(G0)
    node.fake.set_busy(G0, inst.gpu_instance_id)
    kube.delete_pod("default", "a")
    assert await node.reconcile() == []
    node.fake.set_busy(G0, inst.gpu_instance_id, False)
    assert len(await node.reconcile()) == 1


async def test_freed_placement_is_reused_by_the_next_pod(tmp_path: Path) -> None:
    kube = FakeKube()
    node = Node(tmp_path, kube)
    mig_pod(kube, "a", [(0, 0, G0, "7g.80gb", 0, 8)])
    await node.alloc.allocate([replicas(G0)])
    kube.delete_pod("default", "a")
    mig_pod(kube, "b", [(0, 0, G0, "3g.40gb", 0, 4)])  # before any periodic reconcile
    await node.alloc.allocate([replicas(G0)])
    assert [i.profile for i in node.fake.instances(G0)] == ["3g.40gb"]


async def test_restart_adopts_live_instances(tmp_path: Path) -> None:
    kube = FakeKube()
    node = Node(tmp_path, kube)
    mig_pod(kube, "a", [(0, 0, G0, "3g.40gb", 4, 4)])
    await node.alloc.allocate([replicas(G0)])
    before = node.fake.instances(G0)
    node.restart()
    assert await node.reconcile() == []
    assert node.fake.instances(G0) == before and node.fake.calls == []
    # a lost ledger: the pod's recorded identity adopts the instance, still nothing touched
    (tmp_path / "ledger.json").unlink()
    node.restart()
    await node.reconcile()
    assert [o.pod for o in node.manager.ledger.entries()] == ["default/a"]
    kube.delete_pod("default", "a")
    await node.reconcile()
    assert node.fake.instances(G0) == []


async def test_crash_between_gi_and_ci_is_cleaned_up(tmp_path: Path) -> None:
    kube = FakeKube()
    node = Node(tmp_path, kube)
    mig_pod(kube, "a", [(0, 0, G0, "1g.10gb", 0, 1)])
    node.fake.inject(G0, "destroyGpuInstance", 999)  # the rollback itself fails
    node.fake.inject(G0, "createComputeInstance", NVML_ERROR_INSUFFICIENT_RESOURCES)
    with pytest.raises(AllocationError):
        await node.alloc.allocate([replicas(G0)])
    assert len(node.fake.instances(G0)) == 1  # a GI without CI is left, in the ledger
    kube.delete_pod("default", "a")
    await node.reconcile()
    assert node.fake.instances(G0) == []


async def test_idle_gpu_leaves_mig_mode_only_when_configured(tmp_path: Path) -> None:
    kube = FakeKube()
    node = Node(tmp_path, kube)
    mig_pod(kube, "a", [(0, 0, G0, "1g.10gb", 0, 1)])
    await node.alloc.allocate([replicas(G0)])
    kube.delete_pod("default", "a")
    await node.reconcile()
    assert node.fake.enabled(G0) and node.fake.enabled(G1)  # not configured: left on
    node2 = Node(tmp_path / "b", FakeKube(), mig_disable_idle=True)
    node2.kube.add_node(NODE)
    gi = node2.fake.create_gpu_instance(G1, "1g.10gb", MigPlacement(0, 1))  # foreign
    await node2.reconcile()
    assert not node2.fake.enabled(G0)  # idle
    assert node2.fake.enabled(G1) and node2.fake.instances(G1)[0].gpu_instance_id == gi
    mig_pod(node2.kube, "p", [(0, 0, G0, "1g.10gb", 0, 1)])
    await node2.alloc.allocate([replicas(G0)])  # MIG mode back on at Allocate
    assert node2.fake.enabled(G0) and len(node2.fake.instances(G0)) == 1


def test_nothing_in_mig_model_for_t4() -> None:
    mig = FakeMig([FakeMigGpu("GPU-t4", specs_for("Tesla T4"))])
    assert MigManager(mig, NODE, []).gpus == ()
