"""The device plugin against the real local control plane (kube-apiserver + kwok nodes), with
the Go kubelet peer (upstream k8s.io/kubelet code) playing kubelet on the plugin's socket."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio
from lightkube import AsyncClient
from lightkube.resources.core_v1 import Event, Node, Pod
from lightkube.types import PatchType

from hami.agent.config.settings import NodeConfig, Settings
from hami.agent.discovery.fake import FakeSource, load_inventory
from hami.agent.plugin import NodeAgent
from hami.api import keys
from hami.api.annotations import decode_node_devices, decode_pair_scores, encode_node_lock
from hami.api.types import NodeLock
from hami.cluster import LocalCluster
from hami.k8s.client import LightkubeAPI, load_kubeconfig
from hami.k8s.port import KubeAPIPort
from hami.vendors.nvidia import NvidiaVendor
from tests.agent.builders import A100, A100_UUIDS, T4, bound_pod, install_hook
from tests.agent.kubelet_peer import KubeletPeer, build_peer
from tests.builders import container_device as dev
from tests.e2e.localcluster import create_gpu_node, wait_until

pytestmark = pytest.mark.e2e

U0, U1, U2, U3 = A100_UUIDS


@pytest.fixture(scope="session")
def peer_binary() -> Path:
    return build_peer()


@pytest.fixture
def sockdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dp-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Plugin:
    node: str
    peer: KubeletPeer
    source: FakeSource
    agent: NodeAgent


@pytest_asyncio.fixture(loop_scope="function")
async def plugin(
    kube: AsyncClient, k8s_cluster: LocalCluster, peer_binary: Path, sockdir: Path
) -> AsyncIterator[Plugin]:
    """A kwok GPU node with our plugin (4×A100 fake inventory) and the Go peer as kubelet."""
    node = f"dp-{uuid.uuid4().hex[:6]}"
    await create_gpu_node(kube, node, gpus=8)
    source = FakeSource(load_inventory(A100, node), A100, node)
    settings = install_hook(
        Settings(
            node_name=node,
            node=NodeConfig(split_count=2),
            socket_dir=sockdir,
            hook_path=sockdir / "hook",
            lock_dir=sockdir / "vgpulock",
            topology_score=True,
        )
    )
    port = KubeAPIPort(LightkubeAPI(load_kubeconfig(k8s_cluster.kubeconfig)))
    agent = NodeAgent(settings, source, port)
    peer = await KubeletPeer.start(peer_binary, sockdir, "nvidia.com/gpu")
    task = asyncio.create_task(agent.run())
    try:
        await peer.expect("devices")
        yield Plugin(node, peer, source, agent)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await peer.stop()
        await port.close()
        await kube.delete(Node, node)


async def node_annotations(kube: AsyncClient, node: str) -> dict[str, str]:
    obj = await kube.get(Node, node)
    return dict((obj.metadata.annotations if obj.metadata else None) or {})


async def registered_health(kube: AsyncClient, node: str) -> dict[str, bool]:
    value = (await node_annotations(kube, node)).get(keys.NVIDIA_REGISTER)
    return {d.id: d.health for d in decode_node_devices(value)} if value else {}


def health(event: dict[str, Any]) -> dict[str, str]:
    return {d["ID"]: d["health"] for d in event["devices"]}


@pytest.mark.timeout(120)
async def test_registration_annotations_decode_like_the_scheduler(
    kube: AsyncClient, plugin: Plugin
) -> None:
    notes = await wait_until(
        lambda: _with_register(kube, plugin.node), 15, "the registration annotation"
    )
    infos = decode_node_devices(notes[keys.NVIDIA_REGISTER])
    assert [i.id for i in infos] == A100_UUIDS
    assert all(i.count == 2 and i.devmem == 40960 and i.health for i in infos)
    devices = NvidiaVendor().node_devices(notes)  # what the scheduler core sees
    assert [(d.uuid, d.memory, d.count, d.numa, d.health) for d in devices] == [
        (i.id, i.devmem, i.count, i.numa, i.health) for i in infos
    ]
    assert devices[0].pair_scores[U1] == 1220
    assert {p.uuid for p in decode_pair_scores(notes[keys.NVIDIA_SCORE])} == set(A100_UUIDS)


async def _with_register(kube: AsyncClient, node: str) -> dict[str, str] | None:
    notes = await node_annotations(kube, node)
    return notes if keys.NVIDIA_REGISTER in notes else None


@pytest.mark.timeout(120)
async def test_xid_marks_gpu_unhealthy_and_recovery_healthy(
    kube: AsyncClient, plugin: Plugin
) -> None:
    await wait_until(lambda: _with_register(kube, plugin.node), 15, "the registration annotation")
    plugin.source.inject_xid(U2, 79)
    down = await plugin.peer.expect("devices", lambda e: health(e)[f"{U2}-0"] == "Unhealthy")
    assert health(down)[f"{U2}-1"] == "Unhealthy" and health(down)[f"{U0}-0"] == "Healthy"
    await wait_until(
        lambda: _health_is(kube, plugin.node, U2, False), 10, "health:false in the annotation"
    )
    plugin.source.recover(U2)
    up = await plugin.peer.expect("devices")
    assert set(health(up).values()) == {"Healthy"}
    await wait_until(
        lambda: _health_is(kube, plugin.node, U2, True), 10, "health:true in the annotation"
    )


async def _health_is(kube: AsyncClient, node: str, gpu: str, healthy: bool) -> bool:
    return (await registered_health(kube, node)).get(gpu) is healthy


@pytest.mark.timeout(120)
async def test_kubelet_restart_leads_to_re_registration_within_5s(plugin: Plugin) -> None:
    started = time.monotonic()
    await plugin.peer.send({"op": "restart"})
    await plugin.peer.expect("registered", timeout=5)
    assert time.monotonic() - started < 5
    await plugin.peer.expect("devices", timeout=5)


async def _create_bound_pod(
    kube: AsyncClient, plugin: Plugin, namespace: str, name: str, entries: Any, **kw: Any
) -> Pod:
    """A pod as HAMi's filter and bind leave it: annotations from our codec, node lock set."""
    body = bound_pod(name, entries, node=plugin.node, namespace=namespace, **kw)
    del body["metadata"]["uid"], body["status"]
    # lightkube's create overloads omit namespace= (the call accepts it)
    pod: Pod = await kube.create(cast(Pod, Pod.from_dict(body)), namespace=namespace)  # type: ignore[call-overload]
    await _lock_node(kube, plugin.node, namespace, name)
    return pod


async def _lock_node(kube: AsyncClient, node: str, namespace: str, name: str) -> None:
    """Set `hami.io/mutex.lock` the way the scheduler's bind does (value from the codec)."""
    lock = NodeLock(time=datetime.now(UTC), namespace=namespace, name=name)
    patch = {"metadata": {"annotations": {keys.NODE_LOCK: encode_node_lock(lock)}}}
    await kube.patch(Node, node, patch, patch_type=PatchType.MERGE)


@pytest.mark.timeout(120)
async def test_pod_with_two_gpu_containers_gets_each_entry(
    kube: AsyncClient, plugin: Plugin, namespace: str
) -> None:
    entries = [[dev(U0, 1000, 10)], [dev(U1, 2000, 20), dev(U3, 2000, 20)]]
    pod = await _create_bound_pod(kube, plugin, namespace, "two", entries, containers=["a", "b"])
    uid = pod.metadata.uid if pod.metadata else ""
    first = await plugin.peer.call({"op": "allocate", "containers": [[f"{U0}-1"]]})
    second = await plugin.peer.call({"op": "allocate", "containers": [[f"{U1}-0", f"{U3}-1"]]})
    (a,) = first["response"]["container_responses"]
    (b,) = second["response"]["container_responses"]
    assert a["envs"]["NVIDIA_VISIBLE_DEVICES"] == U0
    assert (
        a["envs"]["CUDA_DEVICE_MEMORY_LIMIT_0"] == "1000m"
        and a["envs"]["CUDA_DEVICE_SM_LIMIT"] == "10"
    )
    assert b["envs"]["NVIDIA_VISIBLE_DEVICES"] == f"{U1},{U3}"
    assert b["envs"]["CUDA_DEVICE_MEMORY_LIMIT_1"] == "2000m"
    vgpu = str(plugin.agent.settings.hook_path / "vgpu")
    assert {m["container_path"]: m["host_path"] for m in a["mounts"]}[vgpu].endswith(f"/{uid}_a")
    assert {m["container_path"]: m["host_path"] for m in b["mounts"]}[vgpu].endswith(f"/{uid}_b")
    fresh = await kube.get(Pod, "two", namespace=namespace)
    notes = fresh.metadata.annotations if fresh.metadata else {}
    assert notes is not None
    assert notes[keys.NVIDIA_TO_ALLOCATE] == ";;"
    assert notes[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS
    assert keys.NODE_LOCK not in await node_annotations(kube, plugin.node)


@pytest.mark.timeout(120)
async def test_failed_allocate_marks_pod_failed_with_an_event(
    kube: AsyncClient, plugin: Plugin, namespace: str
) -> None:
    await _create_bound_pod(kube, plugin, namespace, "bad", [[dev(U0), dev(U1)]])
    answer = await plugin.peer.call({"op": "allocate", "containers": [[f"{U0}-0"]]})
    assert answer["event"] == "error" and answer["code"] == "FailedPrecondition"
    assert "device number not matched" in answer["message"]
    fresh = await kube.get(Pod, "bad", namespace=namespace)
    assert fresh.metadata is not None
    assert (fresh.metadata.annotations or {})[keys.BIND_PHASE] == keys.BIND_PHASE_FAILED
    assert keys.NODE_LOCK not in await node_annotations(kube, plugin.node)
    events = [
        e
        async for e in kube.list(Event, namespace=namespace, fields={"involvedObject.name": "bad"})
    ]
    assert any(
        e.reason == "GPUAllocateFailed" and "device number not matched" in (e.message or "")
        for e in events
    )


@pytest.mark.timeout(120)
async def test_allocate_with_no_pod_is_a_clear_grpc_error(plugin: Plugin) -> None:
    answer = await plugin.peer.call({"op": "allocate", "containers": [[f"{U0}-0"]]})
    assert answer["event"] == "error" and answer["code"] == "NotFound"
    assert f"no pod waiting for GPU allocation on node {plugin.node}" in answer["message"]


# ---- simulate mode, as the demo runs it -------------------------------------------------------


@pytest.mark.timeout(180)
async def test_simulate_registers_kwok_nodes_and_allocates(
    kube: AsyncClient, k8s_cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    node = f"sim-{uuid.uuid4().hex[:6]}"
    await create_gpu_node(kube, node, gpus=0)
    inventory = tmp_path / "t4.yaml"
    inventory.write_text(T4.read_text())
    log = (tmp_path / "simulate.log").open("wb")
    process = await _start_simulator(node, inventory, k8s_cluster, log)
    try:
        await _check_simulated_node(kube, node, inventory, namespace)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nsimulate log:\n{_tail(tmp_path / 'simulate.log')}") from exc
    finally:
        log.close()
        await _stop(process)
        await kube.delete(Node, node)


async def _start_simulator(
    node: str, inventory: Path, cluster: LocalCluster, log: Any
) -> asyncio.subprocess.Process:
    command = [
        str(Path(sys.executable).parent / "hami"),
        "device-plugin",
        "--simulate",
        "--nodes",
        f"{node}={inventory}",
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--register-interval",
        "1",
    ]
    return await asyncio.create_subprocess_exec(
        *command, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), 10)
    if process.returncode is None:
        process.kill()
        await process.wait()


BURST = 150


@pytest.mark.timeout(300)
async def test_simulate_restart_mid_burst_never_fails_an_allocated_pod(
    kube: AsyncClient, k8s_cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    """SIGKILL + restart of `--simulate` while bound pods keep arriving: kwok turns allocated
    pods Running, the new process lists them all, and must allocate only what is left — no pod
    ever shows `bind-phase: failed` (a watch audits every change), every one ends `success`."""
    node = f"sim-{uuid.uuid4().hex[:6]}"
    await create_gpu_node(kube, node, gpus=0)
    inventory = tmp_path / "t4.yaml"
    inventory.write_text(T4.read_text())
    uuids = [g.uuid for g in load_inventory(inventory, node).gpus]
    log = (tmp_path / "simulate.log").open("wb")
    failed: dict[str, str] = {}
    audit = asyncio.create_task(_audit_failures(kube, namespace, failed))
    first = await _start_simulator(node, inventory, k8s_cluster, log)
    second = None
    try:
        await wait_until(lambda: _is(_allocatable(kube, node), "20"), 30, "allocatable 20")
        burst = asyncio.create_task(_create_burst(kube, namespace, node, uuids))
        await wait_until(
            lambda: _count_success(kube, namespace, BURST // 4), 60, f"{BURST // 4} pods allocated"
        )
        first.kill()  # SIGKILL: no clean-up of any kind
        await first.wait()
        assert not await _count_success(kube, namespace, BURST), "killed too late: raise BURST"
        second = await _start_simulator(node, inventory, k8s_cluster, log)
        await burst

        async def settled() -> bool:
            return bool(failed) or await _count_success(kube, namespace, BURST)

        await wait_until(settled, 120, f"all {BURST} pods allocated")
        await asyncio.sleep(2)  # the restarted process has seen every pod again by now
        assert not failed, f"pods turned failed: {failed}"
        pods = [p async for p in kube.list(Pod, namespace=namespace)]
        assert len(pods) == BURST
        for pod in pods:
            notes = (pod.metadata.annotations if pod.metadata else None) or {}
            assert notes[keys.BIND_PHASE] == keys.BIND_PHASE_SUCCESS
            assert notes[keys.NVIDIA_TO_ALLOCATE] == ";"
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nsimulate log:\n{_tail(tmp_path / 'simulate.log')}") from exc
    finally:
        audit.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await audit
        log.close()
        for process in (first, second):
            if process is not None:
                await _stop(process)
        await kube.delete(Node, node)


async def _create_burst(kube: AsyncClient, namespace: str, node: str, uuids: list[str]) -> None:
    """BURST one-GPU pods as the scheduler's binds leave them, one at a time per node as its
    node lock makes them: lock naming the pod, the pod bound, then — once the plugin released
    the lock after allocating it (Allocate answers only for the lock owner) — the next."""
    for i in range(BURST):
        name = f"burst-{i:03d}"
        body = bound_pod(
            name,
            [[dev(uuids[i % len(uuids)], 100, 1)]],
            node=node,
            namespace=namespace,
            gpus={"main": 1},
        )
        del body["metadata"]["uid"], body["status"]
        await _lock_node(kube, node, namespace, name)
        # lightkube's create overloads omit namespace= (the call accepts it)
        await kube.create(cast(Pod, Pod.from_dict(body)), namespace=namespace)  # type: ignore[call-overload]

        async def released() -> bool:
            return keys.NODE_LOCK not in await node_annotations(kube, node)

        await wait_until(released, 60, f"{name} allocated and the lock released")


async def _count_success(kube: AsyncClient, namespace: str, at_least: int) -> bool:
    done = 0
    async for pod in kube.list(Pod, namespace=namespace):
        notes = (pod.metadata.annotations if pod.metadata else None) or {}
        done += int(notes.get(keys.BIND_PHASE) == keys.BIND_PHASE_SUCCESS)
    return done >= at_least


async def _audit_failures(kube: AsyncClient, namespace: str, failed: dict[str, str]) -> None:
    """Record every pod any watch event shows with `bind-phase: failed` (and the phase it had
    before), reconnecting until cancelled."""
    last: dict[str, str] = {}
    while True:
        with contextlib.suppress(Exception):
            async for _, pod in kube.watch(Pod, namespace=namespace):
                name = pod.metadata.name if pod.metadata and pod.metadata.name else ""
                phase = ((pod.metadata.annotations if pod.metadata else None) or {}).get(
                    keys.BIND_PHASE, ""
                )
                if phase == keys.BIND_PHASE_FAILED:
                    failed.setdefault(name, f"was {last.get(name, '?')}")
                last[name] = phase
        await asyncio.sleep(0.2)


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


async def _allocatable(kube: AsyncClient, node: str) -> str | None:
    obj = await kube.get(Node, node)
    return (obj.status.allocatable or {}).get("nvidia.com/gpu") if obj.status else None


async def _check_simulated_node(
    kube: AsyncClient, node: str, inventory: Path, namespace: str
) -> None:
    await wait_until(
        lambda: _is(_allocatable(kube, node), "20"), 30, "allocatable nvidia.com/gpu 20"
    )
    gpus = load_inventory(inventory, node).gpus
    uuids = [g.uuid for g in gpus]
    assert set((await registered_health(kube, node)).values()) == {True}
    body = bound_pod(
        "sim", [[dev(uuids[1], 4000, 25)]], node=node, namespace=namespace, gpus={"main": 1}
    )
    del body["metadata"]["uid"], body["status"]
    await _lock_node(kube, node, namespace, "sim")  # Allocate answers only for the lock owner
    # lightkube's create overloads omit namespace= (the call accepts it)
    await kube.create(cast(Pod, Pod.from_dict(body)), namespace=namespace)  # type: ignore[call-overload]
    await wait_until(
        lambda: _bind_phase(kube, namespace, "sim", "success"), 30, "bind-phase success"
    )
    inventory.write_text(
        T4.read_text().replace(
            '    busId: "0000:3c:00.0"\n', '    busId: "0000:3c:00.0"\n    healthy: false\n'
        )
    )
    await wait_until(
        lambda: _is(_allocatable(kube, node), "10"), 30, "allocatable 10 after a fault"
    )
    assert (await registered_health(kube, node))[uuids[1]] is False


async def _is(value: Awaitable[object], expected: str) -> bool:
    return (await value) == expected


async def _bind_phase(kube: AsyncClient, namespace: str, name: str, phase: str) -> bool:
    pod = await kube.get(Pod, name, namespace=namespace)
    return ((pod.metadata.annotations if pod.metadata else None) or {}).get(
        keys.BIND_PHASE
    ) == phase
