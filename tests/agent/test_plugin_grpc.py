"""The plugin over real gRPC on a unix socket: registration, re-registration after a kubelet
restart, ListAndWatch health down and recovery, Allocate and its error mapping."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

from hami.agent.discovery.fake import FakeSource
from hami.agent.errors import (
    AgentError,
    AllocationError,
    PodNotFound,
    UnknownDevice,
    grpc_status,
)
from hami.agent.kubelet.wire import HEALTHY, UNHEALTHY, pb, pb_grpc
from hami.agent.plugin import NodeAgent
from hami.api import keys
from hami.k8s.api import error_for
from tests.agent.builders import A100_UUIDS, NODE, a100_source, bound_pod, install_hook, locked_node
from tests.agent.builders import settings as make_settings
from tests.agent.fake_kube import FakeKube
from tests.agent.fake_kubelet import FakeKubelet, plugin_stub
from tests.builders import container_device as dev

U0, U1, U2, U3 = A100_UUIDS


class Running:
    """A NodeAgent running in the background with a fake kubelet beside it."""

    def __init__(self, agent: NodeAgent, kubelet: FakeKubelet, source: FakeSource) -> None:
        self.agent, self.kubelet, self.source = agent, kubelet, source


@pytest_asyncio.fixture(loop_scope="function")
async def running(sockdir: Path) -> AsyncIterator[Running]:
    kube = FakeKube()
    kube.add_node(NODE)
    source = a100_source()
    settings = install_hook(make_settings(sockdir, split_count=2, enable_numa_topology=True))
    agent = NodeAgent(settings, source, kube)
    kubelet = FakeKubelet(sockdir)
    await kubelet.start()
    task = asyncio.create_task(agent.run())
    try:
        yield Running(agent, kubelet, source)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await kubelet.stop()


async def test_registers_with_kubelet(running: Running) -> None:
    request = await asyncio.wait_for(running.kubelet.requests.get(), 5)
    assert request.version == "v1beta1"
    assert request.endpoint == "nvidia-gpu.sock"
    assert request.resource_name == "nvidia.com/gpu"
    assert request.options.get_preferred_allocation_available is False


async def test_re_registers_within_5s_after_kubelet_restart(running: Running) -> None:
    await asyncio.wait_for(running.kubelet.requests.get(), 5)
    started = time.monotonic()
    await running.kubelet.restart()
    request = await asyncio.wait_for(running.kubelet.requests.get(), 5)
    assert time.monotonic() - started < 5
    assert request.endpoint == "nvidia-gpu.sock"
    await asyncio.wait_for(running.agent.session.registered.wait(), 5)
    assert running.agent.session.registrations == 2
    # the plugin socket was re-created too, so kubelet can dial it again
    channel, stub = plugin_stub(running.kubelet.directory)
    async with channel:
        options = await stub.GetDevicePluginOptions(pb.Empty(), timeout=5)
    assert options.get_preferred_allocation_available is False  # the node setting


@pytest.mark.parametrize("enabled", [False, True])
async def test_options_answer_the_preferred_allocation_setting(
    sockdir: Path, enabled: bool
) -> None:
    """kubelet reads GetDevicePluginOptions (not the registration) to decide whether to call
    GetPreferredAllocation, so the answer must be the node setting."""
    settings = make_settings(sockdir, preferred_allocation=enabled)
    agent = NodeAgent(settings, a100_source(), FakeKube())
    options = await agent.servicer.GetDevicePluginOptions(pb.Empty(), None)
    assert options.get_preferred_allocation_available is enabled
    assert options.pre_start_required is False


async def next_devices(stream: Any) -> dict[str, tuple[str, list[int]]]:
    response = await asyncio.wait_for(stream.read(), 5)
    return {d.ID: (d.health, [n.ID for n in d.topology.nodes]) for d in response.devices}


async def test_list_and_watch_reports_health_down_and_recovery(running: Running) -> None:
    await asyncio.wait_for(running.kubelet.requests.get(), 5)
    channel, stub = plugin_stub(running.kubelet.directory)
    async with channel:
        stream = stub.ListAndWatch(pb.Empty())
        first = await next_devices(stream)
        assert len(first) == 8 and {h for h, _ in first.values()} == {HEALTHY}
        assert first[f"{U2}-1"] == (HEALTHY, [1])
        running.source.inject_xid(U2, 79)
        down = await next_devices(stream)
        assert down[f"{U2}-0"][0] == down[f"{U2}-1"][0] == UNHEALTHY
        assert down[f"{U0}-0"][0] == HEALTHY
        running.source.inject_xid(U0, 13)  # an application XID: ignored, no update
        running.source.recover(U2)
        up = await next_devices(stream)
        assert {h for h, _ in up.values()} == {HEALTHY}
        stream.cancel()


async def test_allocate_over_grpc(running: Running) -> None:
    kube = running.agent.allocator.kube
    assert isinstance(kube, FakeKube)
    pod = bound_pod("gpu-pod", [[dev(U1, 3000, 30)]], containers=["cuda"])
    kube.add_pod(pod)
    locked_node(kube, pod)
    await asyncio.wait_for(running.kubelet.requests.get(), 5)
    channel, stub = plugin_stub(running.kubelet.directory)
    async with channel:
        request = pb.AllocateRequest(
            container_requests=[pb.ContainerAllocateRequest(devices_ids=[f"{U1}-1"])]
        )
        response = await stub.Allocate(request, timeout=5)
    (container,) = response.container_responses
    assert container.envs["NVIDIA_VISIBLE_DEVICES"] == U1
    assert container.envs["CUDA_DEVICE_MEMORY_LIMIT_0"] == "3000m"
    assert {m.container_path for m in container.mounts} >= {"/tmp/vgpulock", "/etc/ld.so.preload"}


async def test_allocate_without_ld_so_preload_fails_naming_the_file(running: Running) -> None:
    """A missing bind source would be created as a directory by the runtime and the container
    would start without libvgpu: Allocate fails instead, the pod says why."""
    kube = running.agent.allocator.kube
    assert isinstance(kube, FakeKube)
    preload = running.agent.settings.hook_path / "vgpu" / "ld.so.preload"
    preload.unlink()
    preload.mkdir()  # what containerd leaves behind for a missing bind source
    pod = bound_pod("gpu-pod", [[dev(U1, 3000, 30)]], containers=["cuda"])
    kube.add_pod(pod)
    locked_node(kube, pod)
    await asyncio.wait_for(running.kubelet.requests.get(), 5)
    channel, stub = plugin_stub(running.kubelet.directory)
    async with channel:
        request = pb.AllocateRequest(
            container_requests=[pb.ContainerAllocateRequest(devices_ids=[f"{U1}-1"])]
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Allocate(request, timeout=5)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"{preload} is a directory" in (info.value.details() or "")
    notes = kube.pod_annotations("default", "gpu-pod")
    assert notes[keys.BIND_PHASE] == keys.BIND_PHASE_FAILED
    assert keys.NODE_LOCK not in kube.node_annotations(NODE)
    (event,) = kube.events
    assert event.reason == "GPUAllocateFailed" and f"{preload} is a directory" in event.message


async def test_allocate_without_pod_is_not_found(running: Running) -> None:
    await asyncio.wait_for(running.kubelet.requests.get(), 5)
    channel, stub = plugin_stub(running.kubelet.directory)
    async with channel:
        request = pb.AllocateRequest(
            container_requests=[pb.ContainerAllocateRequest(devices_ids=[f"{U1}-1"])]
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Allocate(request, timeout=5)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert f"no pod waiting for GPU allocation on node {NODE}" in (info.value.details() or "")


async def test_preferred_allocation_over_grpc(running: Running) -> None:
    kube = running.agent.allocator.kube
    assert isinstance(kube, FakeKube)
    pod = bound_pod("p", [[dev(U3)]])
    kube.add_pod(pod)
    locked_node(kube, pod)
    await asyncio.wait_for(running.kubelet.requests.get(), 5)
    channel, stub = plugin_stub(running.kubelet.directory)
    async with channel:
        request = pb.PreferredAllocationRequest(
            container_requests=[
                pb.ContainerPreferredAllocationRequest(
                    available_deviceIDs=[f"{U0}-0", f"{U3}-1"], allocation_size=1
                )
            ]
        )
        response = await stub.GetPreferredAllocation(request, timeout=5)
        assert list(response.container_responses[0].deviceIDs) == [f"{U3}-1"]
        await stub.PreStartContainer(pb.PreStartContainerRequest(devices_ids=["x"]), timeout=5)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (PodNotFound("x"), grpc.StatusCode.NOT_FOUND),
        (UnknownDevice("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (AllocationError("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (error_for(500, "x"), grpc.StatusCode.UNAVAILABLE),
        (AgentError("x"), grpc.StatusCode.INTERNAL),
        (RuntimeError("boom"), grpc.StatusCode.INTERNAL),
    ],
)
def test_every_exception_maps_to_one_status(exc: BaseException, code: grpc.StatusCode) -> None:
    mapped, message = grpc_status(exc)
    assert mapped == code and message


def test_unexpected_errors_say_what_they_are() -> None:
    assert grpc_status(RuntimeError("boom"))[1] == "internal error: RuntimeError: boom"


async def test_refused_registration_is_retried_later(sockdir: Path) -> None:
    from hami.agent.kubelet import session as kubelet_mod
    from hami.agent.kubelet.session import KubeletSession, PluginServer

    class Refusing(FakeKubelet):
        async def Register(self, request: Any, context: Any) -> Any:
            await self.requests.put(request)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "resource name taken")

    kubelet = Refusing(sockdir)
    await kubelet.start()
    settings = make_settings(sockdir)
    server = PluginServer(pb_grpc.DevicePluginServicer(), sockdir / settings.socket_name)
    session = KubeletSession(settings, server)
    try:
        await session.step()
        await session.step()  # within the retry delay: no second attempt
        assert kubelet.requests.qsize() == 1 and session.registrations == 0
        assert kubelet_mod.RETRY_SECONDS >= 1
    finally:
        await kubelet.stop()
        await server.stop()
