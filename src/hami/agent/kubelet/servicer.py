"""The DevicePlugin gRPC service: thin handlers over the allocator and the health table.

Every handler parses the request, calls one method and serialises the result; exceptions are
mapped to gRPC status in exactly one place (:func:`_abort`, using `errors.grpc_status`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, NoReturn

import grpc

from hami.agent import devices as devlogic
from hami.agent.allocation.allocator import Allocator, PreferredRequest
from hami.agent.config.settings import NodeConfig
from hami.agent.discovery.health import HealthTable
from hami.agent.errors import grpc_status
from hami.agent.kubelet.wire import HEALTHY, UNHEALTHY, pb, pb_grpc
from hami.agent.values import ContainerAllocation, Gpu, KubeletDevice

log = logging.getLogger(__name__)


def device_message(device: KubeletDevice) -> Any:
    topology = None
    if device.numa is not None:
        topology = pb.TopologyInfo(nodes=[pb.NUMANode(ID=device.numa)])
    health = HEALTHY if device.healthy else UNHEALTHY
    return pb.Device(ID=device.id, health=health, topology=topology)


def allocation_message(result: ContainerAllocation) -> Any:
    return pb.ContainerAllocateResponse(
        envs=dict(result.envs),
        mounts=[
            pb.Mount(container_path=m.container_path, host_path=m.host_path, read_only=m.read_only)
            for m in result.mounts
        ],
        devices=[
            pb.DeviceSpec(
                container_path=d.container_path, host_path=d.host_path, permissions=d.permissions
            )
            for d in result.devices
        ],
        annotations=dict(result.annotations),
        cdi_devices=[pb.CDIDevice(name=n) for n in result.cdi_devices],
    )


async def _abort(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException) -> NoReturn:
    code, message = grpc_status(exc)
    log.warning("RPC failed (%s): %s", code.name, message)
    await context.abort(code, message)
    raise AssertionError("unreachable")  # context.abort always raises


class DevicePluginServicer(pb_grpc.DevicePluginServicer):  # type: ignore[misc,unused-ignore]
    """kubelet's view of one node's GPUs."""

    def __init__(
        self,
        allocator: Allocator,
        health: HealthTable,
        gpus: Callable[[], Sequence[Gpu]],
        config: NodeConfig,
        *,
        on_listed: Callable[[], None] | None = None,
    ) -> None:
        self._allocator = allocator
        self._on_listed = on_listed  # after every device list sent: kubelet holds our devices
        self._health = health
        self._gpus = gpus
        self._config = config

    async def GetDevicePluginOptions(self, request: Any, context: Any) -> Any:
        """kubelet takes the options from this answer, not from the registration: it calls
        GetPreferredAllocation only when the node setting enables it."""
        return pb.DevicePluginOptions(
            pre_start_required=False,
            get_preferred_allocation_available=self._config.preferred_allocation,
        )

    async def ListAndWatch(self, request: Any, context: Any) -> AsyncIterator[Any]:
        async for table in self._health.watch():
            listed = devlogic.kubelet_devices(self._gpus(), table, self._config)
            yield pb.ListAndWatchResponse(devices=[device_message(d) for d in listed])
            if self._on_listed is not None:
                self._on_listed()

    async def GetPreferredAllocation(self, request: Any, context: Any) -> Any:
        wanted = [
            PreferredRequest(
                tuple(r.available_deviceIDs), tuple(r.must_include_deviceIDs), r.allocation_size
            )
            for r in request.container_requests
        ]
        try:
            chosen = await self._allocator.preferred(wanted)
        except Exception as exc:  # the RPC boundary: every error becomes a gRPC status
            await _abort(context, exc)
        return pb.PreferredAllocationResponse(
            container_responses=[
                pb.ContainerPreferredAllocationResponse(deviceIDs=c) for c in chosen
            ]
        )

    async def Allocate(self, request: Any, context: Any) -> Any:
        ids = [list(r.devices_ids) for r in request.container_requests]
        try:
            results = await self._allocator.allocate(ids)
        except Exception as exc:  # the RPC boundary: every error becomes a gRPC status
            await _abort(context, exc)
        return pb.AllocateResponse(container_responses=[allocation_message(r) for r in results])

    async def PreStartContainer(self, request: Any, context: Any) -> Any:
        return pb.PreStartContainerResponse()
