"""Dynamic MIG end to end on the local control plane (issue 21): `hami scheduler` reserves a
profile and placement per container, `hami device-plugin --simulate` (fake MIG backend, state
under --mig-state-dir) realises it at Allocate, writes the runtime identity back, reclaims
instances of deleted pods, adopts live ones after a restart and fails a pod whose create fails.

Nodes: ``mig-a100`` (2 × A100-SXM4-80GB, MIG on), ``mig-h100`` (1 × H100 80GB, MIG off until
the first Allocate), ``mig-broken`` (1 × H100 whose compute-instance creation always fails).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hami.agent.discovery.fake import FakeSource, load_inventory
from hami.agent.mig.port import MigInstance
from hami.api import keys
from hami.api.annotations import decode_mig_allocations
from hami.api.keys import FILTERING_FAILED
from hami.api.types import MigAllocation
from hami.demo.report import why_pending
from hami.demo.stack import Stack, gpu_pod
from hami.k8s import objects
from hami.k8s.api import EVENTS, NAMESPACES, PODS
from hami.k8s.client import LightkubeAPI
from tests.e2e.localcluster import wait_until
from tests.e2e.stack import stack_fixture

pytestmark = [pytest.mark.e2e, pytest.mark.mig]

INVENTORIES = Path(__file__).resolve().parents[2] / "examples" / "inventory"
A100, H100 = INVENTORIES / "a100-mig.yaml", INVENTORIES / "h100-mig.yaml"
BROKEN = """gpus:
  - uuid: GPU-0badc0de-0000-4000-8000-000000000001
    model: NVIDIA H100 80GB HBM3
    memoryMiB: 81559
    mig:
      enabled: true
      faults: {createComputeInstance: insufficient-resources}
"""
NODES = ("mig-a100", "mig-h100", "mig-broken")
PLUGIN = "hami-device-plugin"  # the component name of the simulated plugin


class Mig:
    """The stack, the plugin's arguments (to restart it) and the fake GPUs' state files."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        run_dir = stack.cluster.run_dir
        self.state = run_dir / "mig-state"
        self.broken = run_dir / "broken.yaml"
        self.inventories = {"mig-a100": A100, "mig-h100": H100, "mig-broken": self.broken}
        self.config = run_dir / "node-config.json"
        self.args = ["--register-interval", "2", "--mig-state-dir", str(self.state)]
        self.args += ["--node-config-file", str(self.config)]
        self.plugin = next((c for c in stack.components if c.name == PLUGIN), None)

    def start_plugin(self) -> None:
        self.broken.write_text(BROKEN)
        entries = [{"name": n, "operatingmode": "mig"} for n in NODES]
        self.config.write_text(json.dumps({"nodeconfig": entries}))
        self.plugin = self.stack.plugin(self.inventories, self.args)

    def restart_plugin(self) -> None:
        assert self.plugin is not None
        self.plugin.stop(10.0)
        self.plugin = self.stack.plugin(self.inventories, self.args)

    def instances(self, node: str) -> list[MigInstance]:
        inventory = self.inventories[node]
        source = FakeSource(
            load_inventory(inventory, node), mig_state=self.state / f"{node}.fake-mig.json"
        )
        return [i for g in source.gpus() for i in source.mig().instances(g.uuid)]


def _up(stack: Stack) -> None:
    stack.create_nodes(NODES)
    stack.scheduler()
    Mig(stack).start_plugin()
    stack.wait_serving(NODES)


stack = stack_fixture("hami-mig", _up)


@pytest.fixture(scope="module")
def mig(stack: Stack) -> Mig:
    return Mig(stack)


@pytest_asyncio.fixture(loop_scope="function")
async def ns(api: LightkubeAPI) -> str:
    name = f"mig-{os.urandom(4).hex()}"
    await api.create(NAMESPACES, {"metadata": {"name": name}})
    return name


def _pod(name: str, node: str, memory: int) -> dict[str, Any]:
    pod = gpu_pod(name, {"gpu": 1, "gpumem": memory}, nodeSelector={"kubernetes.io/hostname": node})
    pod["metadata"]["annotations"] = {"nvidia.com/vgpu-mode": "mig"}
    return pod


async def _create(api: LightkubeAPI, ns: str, name: str, node: str, memory: int) -> None:
    await api.create(PODS, _pod(name, node, memory), ns)


async def _phase(api: LightkubeAPI, ns: str, name: str, phase: str) -> dict[str, str] | None:
    notes = objects.annotations(await api.get(PODS, name, ns))
    return notes if notes.get(keys.BIND_PHASE) == phase else None


async def _realised(api: LightkubeAPI, ns: str, name: str, mig: Mig) -> MigAllocation:
    try:
        notes = await wait_until(
            lambda: _phase(api, ns, name, keys.BIND_PHASE_SUCCESS), 40, f"{name} to be allocated"
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{mig.stack.log('device-plugin')[-4000:]}") from exc
    (allocation,) = decode_mig_allocations(notes[keys.MIG_ALLOCATIONS])
    assert allocation.mig_uuid is not None
    return allocation


def _at(instances: list[MigInstance], a: MigAllocation) -> MigInstance | None:
    return next((i for i in instances if i.mig_uuid == a.mig_uuid), None)


@pytest.mark.timeout(180)
async def test_small_and_large_slices_get_instances_at_the_reserved_placements(
    api: LightkubeAPI, ns: str, mig: Mig
) -> None:
    await _create(api, ns, "small", "mig-a100", 9000)
    await _create(api, ns, "large", "mig-a100", 39000)
    small = await _realised(api, ns, "small", mig)
    large = await _realised(api, ns, "large", mig)
    assert (small.profile, large.profile) == ("1g.10gb", "3g.40gb")
    live = mig.instances("mig-a100")
    for a in (small, large):
        inst = _at(live, a)
        assert inst is not None, (a, live)
        assert (inst.gpu_uuid, inst.profile, inst.placement) == (a.gpu_uuid, a.profile, a.placement)
        assert (inst.gpu_instance_id, inst.compute_instance_id) == (
            a.gpu_instance_id,
            a.compute_instance_id,
        )


@pytest.mark.timeout(300)
async def test_burst_fills_the_gpu_then_deleting_frees_and_restart_adopts(
    api: LightkubeAPI, ns: str, mig: Mig
) -> None:
    names = [f"burst-{i}" for i in range(7)]
    for name in names:
        await _create(api, ns, name, "mig-h100", 9000)
    done = [await _realised(api, ns, n, mig) for n in names]
    assert sorted(a.placement.start for a in done) == list(range(7))  # 7 × 1g.10gb, as placed
    assert len(mig.instances("mig-h100")) == 7

    await _create(api, ns, "waiting", "mig-h100", 9000)
    await asyncio.sleep(4)
    pod = await api.get(PODS, "waiting", ns)
    assert not objects.spec(pod).get("nodeName")
    reason = await why_pending(api, ns, "waiting", pod)
    assert reason.startswith(FILTERING_FAILED) and "mig-h100" in reason, reason

    # the plugin restarts: live instances are adopted, none destroyed or recreated
    before = {i.mig_uuid for i in mig.instances("mig-h100")}
    mig.restart_plugin()
    await asyncio.sleep(6)
    assert {i.mig_uuid for i in mig.instances("mig-h100")} == before
    for name, a in zip(names, done, strict=True):
        notes = objects.annotations(await api.get(PODS, name, ns))
        assert notes[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS
        assert decode_mig_allocations(notes[keys.MIG_ALLOCATIONS]) == (a,)

    # deleting a pod frees its instance (the restarted plugin owns it) and the waiting pod runs
    freed = done[3]
    await api.delete(PODS, names[3], ns, grace_seconds=0)
    started = asyncio.get_running_loop().time()
    got = await _realised(api, ns, "waiting", mig)
    assert got.placement == freed.placement and got.mig_uuid != freed.mig_uuid

    for name in names[:3] + names[4:]:
        await api.delete(PODS, name, ns, grace_seconds=0)

    async def reclaimed() -> bool:
        return [i.mig_uuid for i in mig.instances("mig-h100")] == [got.mig_uuid]

    await wait_until(reclaimed, 30, "the deleted pods' instances to be destroyed")
    assert asyncio.get_running_loop().time() - started < 60


@pytest.mark.timeout(180)
async def test_failed_create_rolls_back_and_marks_the_pod_failed(
    api: LightkubeAPI, ns: str, mig: Mig
) -> None:
    await _create(api, ns, "doomed", "mig-broken", 9000)
    notes = await wait_until(
        lambda: _phase(api, ns, "doomed", keys.BIND_PHASE_FAILED), 40, "doomed to fail"
    )
    (a,) = decode_mig_allocations(notes[keys.MIG_ALLOCATIONS])
    assert a.mig_uuid is None  # no identity written
    assert mig.instances("mig-broken") == []  # the GPU instance was rolled back
    selector = "involvedObject.name=doomed,reason=GPUAllocateFailed"
    events = (await api.list(EVENTS, namespace=ns, field_selector=selector)).items
    assert events and "Insufficient Resources" in str(events[0]["message"]), events
