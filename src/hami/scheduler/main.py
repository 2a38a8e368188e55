"""Run the scheduler service: the HTTP(S) server plus the cache's background loops.

With ``--leader-elect`` a replica keeps its cache warm but listens only once it holds the
Lease (several replicas may share one address with ``--reuse-port``, so traffic reaches the
leader like a Service selecting it); losing the Lease ends the process, as kube-scheduler does.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable

import uvicorn

from hami import aio
from hami.k8s.client import LightkubeAPI, load_kubeconfig
from hami.scheduler.app import create_app
from hami.scheduler.service import SchedulerService
from hami.scheduler.settings import SchedulerSettings
from hami.vendors import registry

log = logging.getLogger(__name__)


class LeadershipLost(Exception):
    pass


def listen(settings: SchedulerSettings) -> socket.socket:
    host, port = settings.host_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if settings.reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def server_for(service: SchedulerService) -> uvicorn.Server:
    settings = service.settings
    config = uvicorn.Config(
        create_app(service),
        ssl_certfile=str(settings.cert_file) if settings.tls else None,
        ssl_keyfile=str(settings.key_file) if settings.tls else None,
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=120,
        backlog=1024,
    )
    return uvicorn.Server(config)


async def serve(settings: SchedulerSettings) -> None:
    kube = LightkubeAPI(load_kubeconfig(settings.kubeconfig))
    service = SchedulerService(settings, kube, registry.build(settings.config))
    background = asyncio.create_task(service.run(), name="scheduler-loops")
    try:
        if service.elector is not None:
            log.info("waiting for the lease %s/%s", settings.lease_namespace, settings.lease_name)
            await _first(background, service.elector.wait_leader())
        server = server_for(service)
        log.info("serving on %s (%s)", settings.http_bind, "https" if settings.tls else "http")
        watched = [background, asyncio.ensure_future(server.serve(sockets=[listen(settings)]))]
        if service.elector is not None:
            watched.append(asyncio.ensure_future(_lost(service)))
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        for task in done:
            task.result()
    finally:
        background.cancel()
        await asyncio.gather(background, return_exceptions=True)
        await service.recorder.flush()
        await kube.close()


async def _first(background: asyncio.Task[None], awaitable: Awaitable[None]) -> None:
    waiter = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait([background, waiter], return_when=asyncio.FIRST_COMPLETED)
    if background in done:
        waiter.cancel()
        background.result()


async def _lost(service: SchedulerService) -> None:
    assert service.elector is not None
    while service.elector.is_leader:
        await service.elector.changed.wait()
    raise LeadershipLost(f"{service.settings.identity} lost the lease")


def run(settings: SchedulerSettings) -> None:
    aio.run(serve(settings))
