"""Wire compatibility with upstream: the Go kubelet peer (generated client/server of
k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1 v0.36.3) registers, watches and allocates against
our plugin. Its output uses the .proto field names, so names and numbers are checked too."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from hami.agent.discovery.fake import FakeSource
from hami.agent.plugin import NodeAgent
from tests.agent.builders import A100_UUIDS, NODE, a100_source, bound_pod, install_hook, locked_node
from tests.agent.builders import settings as make_settings
from tests.agent.fake_kube import FakeKube
from tests.agent.kubelet_peer import Event, KubeletPeer, build_peer
from tests.builders import container_device as dev

U0, U1, U2, U3 = A100_UUIDS


@pytest.fixture(scope="session")
def peer_binary() -> Path:
    return build_peer()


class Setup:
    def __init__(self, peer: KubeletPeer, kube: FakeKube, source: FakeSource, agent: NodeAgent):
        self.peer, self.kube, self.source, self.agent = peer, kube, source, agent


@pytest_asyncio.fixture(loop_scope="function")
async def setup(peer_binary: Path, sockdir: Path) -> AsyncIterator[Setup]:
    peer = await KubeletPeer.start(peer_binary, sockdir, "nvidia.com/gpu")
    kube = FakeKube()
    kube.add_node(NODE)
    source = a100_source()
    settings = install_hook(
        make_settings(sockdir, split_count=2, enable_numa_topology=True, preferred_allocation=True)
    )
    agent = NodeAgent(settings, source, kube)
    task = asyncio.create_task(agent.run())
    try:
        yield Setup(peer, kube, source, agent)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await peer.stop()


def health(event: Event) -> dict[str, str]:
    return {d["ID"]: d["health"] for d in event["devices"]}


def numa(event: Event) -> dict[str, int]:
    # protojson writes int64 as a string and omits zero values
    return {d["ID"]: int(d["topology"]["nodes"][0].get("ID", 0)) for d in event["devices"]}


async def test_registration_and_list_and_watch(setup: Setup) -> None:
    registered = await setup.peer.expect("registered")
    assert registered["request"] == {
        "version": "v1beta1",
        "endpoint": "nvidia-gpu.sock",
        "resource_name": "nvidia.com/gpu",
        "options": {"get_preferred_allocation_available": True},
    }
    options = await setup.peer.expect("options")
    assert options["options"] == {"get_preferred_allocation_available": True}
    listed = await setup.peer.expect("devices")
    assert health(listed) == {f"{u}-{i}": "Healthy" for u in A100_UUIDS for i in range(2)}
    assert numa(listed)[f"{U0}-1"] == 0 and numa(listed)[f"{U3}-0"] == 1


async def test_health_changes_reach_kubelet(setup: Setup) -> None:
    await setup.peer.expect("devices")
    setup.source.inject_xid(U2, 48)  # double-bit ECC
    down = await setup.peer.expect("devices", lambda e: health(e)[f"{U2}-0"] == "Unhealthy")
    assert health(down)[f"{U2}-1"] == "Unhealthy" and health(down)[f"{U1}-0"] == "Healthy"
    setup.source.recover(U2)
    up = await setup.peer.expect("devices")
    assert set(health(up).values()) == {"Healthy"}


async def test_preferred_and_allocate_for_a_codec_written_pod(setup: Setup) -> None:
    pod = bound_pod(
        "gpu-pod",
        [[], [dev(U1, 3000, 30), dev(U3, 3000, 30)]],
        init=["setup"],
        containers=["cuda"],
        env={"cuda": {"CUDA_DISABLE_CONTROL": "false"}},
    )
    setup.kube.add_pod(pod)
    locked_node(setup.kube, pod)
    await setup.peer.expect("devices")
    available = [f"{u}-{i}" for u in A100_UUIDS for i in range(2)]
    preferred = await setup.peer.call({"op": "preferred", "available": available, "size": 2})
    (choice,) = preferred["response"]["container_responses"]
    assert choice["deviceIDs"] == [f"{U1}-0", f"{U3}-0"]

    result = await setup.peer.call({"op": "allocate", "containers": [choice["deviceIDs"]]})
    assert result["event"] == "result", result
    (container,) = result["response"]["container_responses"]
    envs = container["envs"]
    assert envs["NVIDIA_VISIBLE_DEVICES"] == f"{U1},{U3}"
    assert envs["CUDA_DEVICE_MEMORY_LIMIT_0"] == envs["CUDA_DEVICE_MEMORY_LIMIT_1"] == "3000m"
    assert envs["CUDA_DEVICE_SM_LIMIT"] == "30"
    assert envs["CUDA_DEVICE_MEMORY_SHARED_CACHE"].endswith(".cache")
    mounts = {m["container_path"]: m for m in container["mounts"]}
    vgpu = str(setup.agent.settings.hook_path / "vgpu")
    assert mounts[vgpu]["host_path"] == f"{vgpu}/containers/uid-gpu-pod_cuda"
    assert "read_only" not in mounts[vgpu]  # false is omitted on the wire
    assert mounts[f"{vgpu}/libvgpu.so"]["read_only"] is True
    assert mounts["/etc/ld.so.preload"]["host_path"] == f"{vgpu}/ld.so.preload"
    assert mounts["/tmp/vgpulock"]["host_path"] == str(setup.agent.settings.lock_dir)
    notes = setup.kube.pod_annotations("default", "gpu-pod")
    assert notes["hami.io/bind-phase"] == "success"
    assert notes["hami.io/vgpu-devices-to-allocate"] == ";;"


async def test_allocate_without_pod_is_a_grpc_error(setup: Setup) -> None:
    await setup.peer.expect("devices")
    answer = await setup.peer.call({"op": "allocate", "containers": [[f"{U0}-0"]]})
    assert answer["event"] == "error" and answer["code"] == "NotFound"
    assert f"no pod waiting for GPU allocation on node {NODE}" in answer["message"]


async def test_re_registration_after_kubelet_restart(setup: Setup) -> None:
    await setup.peer.expect("devices")
    started = time.monotonic()
    await setup.peer.send({"op": "restart"})  # kubelet.sock and the plugin socket go away
    await setup.peer.expect("ready")
    await setup.peer.expect("registered", timeout=5)
    assert time.monotonic() - started < 5
    await setup.peer.expect("devices", timeout=5)  # and ListAndWatch resumes
    pre = await setup.peer.call({"op": "prestart", "devices": [f"{U0}-0"]})
    assert pre["event"] == "result"
