"""A Python stand-in for kubelet's Registration service (the Go peer is the real wire test)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import grpc

from hami.agent.kubelet.wire import KUBELET_SOCKET, pb, pb_grpc


class FakeKubelet(pb_grpc.RegistrationServicer):  # type: ignore[misc]
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.requests: asyncio.Queue[Any] = asyncio.Queue()
        self._server: grpc.aio.Server | None = None

    @property
    def socket(self) -> Path:
        return self.directory / KUBELET_SOCKET

    async def Register(self, request: Any, context: Any) -> Any:
        await self.requests.put(request)
        return pb.Empty()

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        server = grpc.aio.server()
        pb_grpc.add_RegistrationServicer_to_server(self, server)
        server.add_insecure_port(f"unix:{self.socket}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
            self._server = None

    async def restart(self) -> None:
        """What a kubelet restart looks like to plugins: every socket in the dir is re-created."""
        await self.stop()
        for path in self.directory.glob("*.sock"):
            path.unlink()
        await self.start()


def plugin_stub(directory: Path, name: str = "nvidia-gpu.sock") -> tuple[grpc.aio.Channel, Any]:
    channel = grpc.aio.insecure_channel(f"unix:{directory / name}")
    return channel, pb_grpc.DevicePluginStub(channel)
