"""The plugin's gRPC servers, prepare/unprepare and slice publishing against an in-memory port."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import grpc
import pytest

from hami.agent.config.settings import Settings
from hami.agent.discovery.fake import FakeSource, load_inventory
from hami.agent.dra.kube import NodeFacts
from hami.agent.dra.plugin import NO_CDI_REASON, DraNode, Sockets, run
from hami.agent.dra.prepare import SpecStore
from hami.agent.dra.proto import dra_pb2, dra_pb2_grpc
from hami.agent.dra.proto import pluginregistration_pb2 as reg_pb2
from hami.agent.dra.proto import pluginregistration_pb2_grpc as reg_pb2_grpc
from hami.agent.errors import IsolationUnavailable
from hami.core.dra import names
from hami.k8s.views import EventSpec

INVENTORY = """\
gpus:
  - {uuid: GPU-aaaa, model: NVIDIA A10, memoryMiB: 23028, numa: 0}
  - {uuid: GPU-bbbb, model: NVIDIA A10, memoryMiB: 23028, numa: 1}
"""


class FakeDra:
    def __init__(self, runtime: str = "containerd://2.1.4") -> None:
        self.slices: dict[str, dict[str, Any]] = {}
        self.claims: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[EventSpec] = []
        self.runtime = runtime
        self.puts = 0

    async def node(self, name: str) -> NodeFacts:
        return NodeFacts("node-uid", self.runtime)

    async def record_event(self, event: EventSpec) -> None:
        self.events.append(event)

    async def get_slice(self, name: str) -> dict[str, Any] | None:
        found = self.slices.get(name)
        return json.loads(json.dumps(found)) if found else None

    async def put_slice(self, manifest: Any, create: bool) -> None:
        assert create == (manifest["metadata"]["name"] not in self.slices)
        self.puts += 1
        self.slices[manifest["metadata"]["name"]] = {
            **manifest,
            "metadata": {**manifest["metadata"], "resourceVersion": str(self.puts)},
        }

    async def delete_slice(self, name: str) -> None:
        self.slices.pop(name, None)

    async def get_claim(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.claims.get((namespace, name))

    async def close(self) -> None:
        pass


def _claim(uid: str, node: str = "n1", device: str = "hami-gpu-1") -> dict[str, Any]:
    return {
        "metadata": {"name": "c", "namespace": "ns", "uid": uid},
        "status": {
            "allocation": {
                "devices": {
                    "results": [
                        {
                            "driver": names.DRIVER,
                            "pool": node,
                            "device": device,
                            "request": "gpu",
                            "consumedCapacity": {"memory": "2Gi", "cores": "25"},
                            "shareID": "share-1",
                        }
                    ]
                }
            }
        },
    }


@pytest.fixture
def node(tmp_path: Path) -> DraNode:
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(INVENTORY)
    settings = Settings(
        node_name="n1",
        hook_path=tmp_path / "hook",
        lock_dir=tmp_path / "lock",
        cdi_spec_dir=tmp_path / "cdi",
    )
    return DraNode(
        settings, FakeSource(load_inventory(inventory, "n1"), inventory, "n1"), FakeDra()
    )


async def test_prepare_writes_cdi_spec_with_libvgpu_env_and_unprepare_removes_it(
    node: DraNode, tmp_path: Path
) -> None:
    kube: FakeDra = node.kube  # type: ignore[assignment]
    kube.claims[("ns", "c")] = _claim("u1")
    (device,) = await node.prepare("ns", "c", "u1")
    assert device.cdi_device_ids == [f"{names.CDI_KIND}=u1-hami-gpu-1"]
    assert (device.pool_name, device.device_name, device.share_id) == (
        "n1",
        "hami-gpu-1",
        "share-1",
    )
    spec = json.loads(SpecStore(tmp_path / "cdi").path("u1").read_text())
    env = dict(e.split("=", 1) for e in spec["containerEdits"]["env"])
    assert env["CUDA_DEVICE_MEMORY_LIMIT_0"] == "2048m"
    assert env["CUDA_DEVICE_SM_LIMIT"] == env["CUDA_DEVICE_SM_LIMIT_0"] == "25"
    assert env["NVIDIA_VISIBLE_DEVICES"] == "GPU-bbbb"
    assert env["CUDA_DEVICE_MEMORY_SHARED_CACHE"].endswith("/vgpu/u1.cache")
    targets = {m["containerPath"] for m in spec["containerEdits"]["mounts"]}
    assert {"/etc/ld.so.preload", "/tmp/vgpulock"} <= targets
    again = await node.prepare("ns", "c", "u1")  # idempotent
    assert again == [device]
    await node.unprepare("u1")
    await node.unprepare("u1")  # idempotent
    assert SpecStore(tmp_path / "cdi").prepared() == []


async def test_prepare_refuses_foreign_or_missing_claims(node: DraNode) -> None:
    kube: FakeDra = node.kube  # type: ignore[assignment]
    kube.claims[("ns", "c")] = _claim("u1", node="n2")
    with pytest.raises(Exception, match=r"no device .* on node n1"):
        await node.prepare("ns", "c", "u1")
    with pytest.raises(Exception, match="does not exist"):
        await node.prepare("ns", "c", "other-uid")
    kube.claims[("ns", "c")] = _claim("u1", device="hami-gpu-7")
    with pytest.raises(Exception, match="hami-gpu-7 is not on node n1"):
        await node.prepare("ns", "c", "u1")


async def test_servers_register_and_answer_kubelet(node: DraNode, tmp_path: Path) -> None:
    kube: FakeDra = node.kube  # type: ignore[assignment]
    kube.claims[("ns", "c")] = _claim("u1")
    stray = tmp_path / "cdi" / "hami-core-gpu.project-hami.io-claim_u0.tmp"
    stray.parent.mkdir(parents=True)
    stray.write_text("{")  # a prepare killed mid-write
    short = Path(tempfile.mkdtemp(prefix="dra-", dir="/tmp"))  # unix socket paths are short
    sockets = Sockets(short)
    task = asyncio.create_task(run(node, sockets, rediscover=0.05))
    for _ in range(100):
        if sockets.dra.exists() and kube.slices:
            break
        await asyncio.sleep(0.05)
    assert not stray.exists()
    async with grpc.aio.insecure_channel(f"unix:{sockets.registration}") as channel:
        info = await reg_pb2_grpc.RegistrationStub(channel).GetInfo(reg_pb2.InfoRequest())
    assert (info.type, info.name, list(info.supported_versions)) == (
        "DRAPlugin",
        names.DRIVER,
        ["v1.DRAPlugin"],
    )
    assert info.endpoint == str(sockets.dra)
    async with grpc.aio.insecure_channel(f"unix:{info.endpoint}") as channel:
        stub = dra_pb2_grpc.DRAPluginStub(channel)
        claims = [
            dra_pb2.Claim(namespace="ns", name="c", uid="u1"),
            dra_pb2.Claim(namespace="ns", name="gone", uid="u9"),
        ]
        reply = await stub.NodePrepareResources(dra_pb2.NodePrepareResourcesRequest(claims=claims))
        assert reply.claims["u1"].error == ""
        assert reply.claims["u1"].devices[0].device_name == "hami-gpu-1"
        assert "does not exist" in reply.claims["u9"].error
        gone = await stub.NodeUnprepareResources(
            dra_pb2.NodeUnprepareResourcesRequest(claims=claims)
        )
        assert gone.claims["u1"].error == "" and gone.claims["u9"].error == ""
    (published,) = kube.slices.values()
    assert [d["name"] for d in published["spec"]["devices"]] == ["hami-gpu-0", "hami-gpu-1"]
    puts = kube.puts
    node.healthy["GPU-aaaa"] = False  # the next re-discovery drops it, generation 2
    for _ in range(100):
        if kube.puts > puts:
            break
        await asyncio.sleep(0.05)
    (published,) = kube.slices.values()
    assert [d["name"] for d in published["spec"]["devices"]] == ["hami-gpu-1"]
    assert published["spec"]["pool"]["generation"] == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not sockets.dra.exists() and not sockets.registration.exists()
    shutil.rmtree(short)


async def test_rediscovery_swaps_in_added_gpus_and_health_still_flows(
    node: DraNode, tmp_path: Path
) -> None:
    kube: FakeDra = node.kube  # type: ignore[assignment]
    inventory = tmp_path / "inv.yaml"
    short = Path(tempfile.mkdtemp(prefix="dra-", dir="/tmp"))

    def reopen() -> FakeSource:
        return FakeSource(load_inventory(inventory, "n1"), inventory, "n1")

    task = asyncio.create_task(run(node, Sockets(short), rediscover=0.05, reopen=reopen))

    async def devices(count: int) -> list[str]:
        for _ in range(200):
            found = [d["name"] for s in kube.slices.values() for d in s["spec"]["devices"]]
            if len(found) == count:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"never {count} devices: {kube.slices}")

    assert await devices(2) == ["hami-gpu-0", "hami-gpu-1"]
    inventory.write_text(INVENTORY + "  - {uuid: GPU-cccc, model: NVIDIA A10, memoryMiB: 23028}\n")
    assert await devices(3) == ["hami-gpu-0", "hami-gpu-1", "hami-gpu-2"]
    (published,) = kube.slices.values()
    assert published["spec"]["pool"]["generation"] == 2
    node.source.inject_xid("GPU-cccc")  # type: ignore[attr-defined]  # the new source's events
    assert await devices(2) == ["hami-gpu-0", "hami-gpu-1"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    shutil.rmtree(short)


async def test_simulator_follows_edited_inventories(tmp_path: Path) -> None:
    from hami.agent.dra.simulate import DraSimulator
    from hami.agent.simulation.simulator import SimNode

    inventory = tmp_path / "inv.yaml"
    inventory.write_text(INVENTORY)
    kube = FakeDra()
    sim = DraSimulator(kube, [SimNode("a", inventory), SimNode("b", inventory)])
    assert await sim.publish_all() == 2
    assert await sim.publish_all() == 0
    inventory.write_text(INVENTORY.replace("numa: 1}", "numa: 1, healthy: false}"))
    assert await sim.publish_all() == 2
    for made in kube.slices.values():
        assert [d["name"] for d in made["spec"]["devices"]] == ["hami-gpu-0"]
        assert made["spec"]["pool"]["generation"] == 2


async def test_a_runtime_without_cdi_is_refused_loudly_before_anything_is_served(
    node: DraNode, tmp_path: Path
) -> None:
    kube: FakeDra = node.kube  # type: ignore[assignment]
    kube.runtime = "containerd://1.6.20"
    sockets = Sockets(tmp_path / "kubelet")
    with pytest.raises(IsolationUnavailable, match=r"containerd://1.6.20 .* >= 1.7"):
        await run(node, sockets, rediscover=0.05)
    assert not sockets.registration.exists() and not sockets.dra.exists()
    assert kube.slices == {}  # nothing allocatable on this node
    (event,) = kube.events
    assert (event.kind, event.name, event.uid, event.reason, event.type) == (
        "Node",
        "n1",
        "node-uid",
        NO_CDI_REASON,
        "Warning",
    )
    assert "without their GPU limits" in event.message
