"""Serving the plugin socket and registering with kubelet, again whenever kubelet restarts.

kubelet re-creates ``kubelet.sock`` when it starts and wipes the plugin sockets beside it, so
the session watches the socket's identity (inode and change time); when it changes — or our
own socket disappears — it restarts the gRPC server and registers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import grpc

from hami.agent.config.settings import Settings
from hami.agent.errors import AgentError
from hami.agent.kubelet.wire import KUBELET_SOCKET, VERSION, pb, pb_grpc

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
REGISTER_TIMEOUT = 5.0
RETRY_SECONDS = 5.0  # after a refused registration, unless kubelet restarts again


class KubeletUnavailable(AgentError):
    """kubelet's Registration service could not be reached or refused us."""


def socket_identity(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_ctime_ns)


class PluginServer:
    """The grpc.aio server on ``<socket_dir>/<socket_name>``."""

    def __init__(self, servicer: Any, path: Path) -> None:
        self._servicer = servicer
        self.path = path
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        await self.stop()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        server = grpc.aio.server()
        pb_grpc.add_DevicePluginServicer_to_server(self._servicer, server)
        server.add_insecure_port(f"unix:{self.path}")
        await server.start()
        self._server = server

    async def stop(self, grace: float = 0.5) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


async def register(settings: Settings) -> None:
    """One `Registration.Register` call to kubelet."""
    request = pb.RegisterRequest(
        version=VERSION,
        endpoint=settings.socket_name,
        resource_name=settings.node.resource_name,
        options=pb.DevicePluginOptions(
            pre_start_required=False,
            get_preferred_allocation_available=settings.node.preferred_allocation,
        ),
    )
    target = f"unix:{settings.socket_dir / KUBELET_SOCKET}"
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            await pb_grpc.RegistrationStub(channel).Register(request, timeout=REGISTER_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            raise KubeletUnavailable(
                f"registering {settings.node.resource_name} with kubelet at {target} failed: "
                f"{exc.code().name}: {exc.details()}"
            ) from None


class KubeletSession:
    """Keeps the plugin served and registered for as long as `run` runs."""

    def __init__(self, settings: Settings, server: PluginServer) -> None:
        self._settings = settings
        self._server = server
        self._kubelet = settings.socket_dir / KUBELET_SOCKET
        self._registered_for: tuple[int, int] | None = None
        self._failed: tuple[tuple[int, int], float] | None = None
        self.registrations = 0
        self.registered = asyncio.Event()

    async def run(self) -> None:
        try:
            while True:
                await self.step()
                await asyncio.sleep(POLL_SECONDS)
        finally:
            await self._server.stop()

    async def step(self) -> None:
        """Register if kubelet is new (or our socket vanished); otherwise do nothing."""
        kubelet = socket_identity(self._kubelet)
        if kubelet is None:
            return
        if kubelet == self._registered_for and self._server.path.exists():
            return
        if self._failed and self._failed[0] == kubelet and time.monotonic() < self._failed[1]:
            return
        self.registered.clear()
        await self._server.start()
        try:
            await register(self._settings)
        except KubeletUnavailable as exc:
            log.warning("%s (retrying in %.0f s)", exc, RETRY_SECONDS)
            self._failed = (kubelet, time.monotonic() + RETRY_SECONDS)
            return
        self._failed = None
        self._registered_for = kubelet
        self.registrations += 1
        self.registered.set()
        log.info(
            "registered %s with kubelet (%d)", self._settings.node.resource_name, self.registrations
        )
