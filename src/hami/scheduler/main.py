"""Run the scheduler service: the HTTP(S) server plus the cache's background loops.

With ``--leader-elect`` a replica keeps its cache warm but listens only once it holds the
Lease (several replicas may share one address with ``--reuse-port``, so traffic reaches the
leader like a Service selecting it); losing the Lease ends the process, as kube-scheduler does.

SIGTERM (or SIGINT) shuts down gracefully within a bound: no new /filter or /bind is taken
(answered "scheduler is shutting down", /readyz 503), uvicorn stops listening and lets the
requests in flight finish — binds included, up to ``--shutdown-grace`` (its
``timeout_graceful_shutdown``) — then the background loops stop, the Lease is given up
(empty ``holderIdentity``, client-go's ``ReleaseOnCancel``) so a follower takes over at once,
queued Events are written and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator

import uvicorn

from hami import aio
from hami.k8s.api import KubeAPI
from hami.k8s.client import LightkubeAPI, load_kubeconfig
from hami.scheduler.app import create_app, create_metrics_app
from hami.scheduler.service import SchedulerService
from hami.scheduler.settings import SchedulerSettings
from hami.vendors import registry

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGTERM, signal.SIGINT)
FIRST = asyncio.FIRST_COMPLETED


class LeadershipLost(Exception):
    pass


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: `serve` handles SIGTERM/SIGINT itself (and
    uvicorn's would re-raise the signal after its shutdown, killing the process before the
    Lease is released)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ListenError(Exception):
    """An address of ours cannot be bound; the message names the flag."""


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def listen(settings: SchedulerSettings) -> socket.socket:
    return bind_socket(*settings.host_port, reuse_port=settings.reuse_port)


def listen_metrics(settings: SchedulerSettings) -> socket.socket | None:
    """The plain-HTTP /metrics socket (``--metrics-bind-address``), or None when off."""
    address = settings.metrics_host_port
    if address is None:
        return None
    try:
        return bind_socket(*address, reuse_port=settings.reuse_port)
    except OSError as exc:
        raise ListenError(
            f"--metrics-bind-address {settings.metrics_bind}: {exc.strerror or exc}"
            " (another port, or '' for no plain-HTTP /metrics)"
        ) from None


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
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace)),
        backlog=1024,
    )
    return _Server(config)


def metrics_server_for(service: SchedulerService) -> uvicorn.Server:
    """Plain HTTP, /metrics only: what HAMi serves on its metrics port (scrape configs
    written for HAMi's port 31993 -> 9395 keep working)."""
    config = uvicorn.Config(
        create_metrics_app(service.metrics),
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    return _Server(config)


@contextlib.contextmanager
def _signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` while inside (where the loop supports it)."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def serve(
    settings: SchedulerSettings,
    kube: KubeAPI | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until ``stop`` is set (SIGTERM/SIGINT set it), then shut down gracefully.

    ``kube`` defaults to the kubeconfig's API server; tests pass a fake and their own ``stop``.
    """
    kube = kube or LightkubeAPI(load_kubeconfig(settings.kubeconfig))
    stop = stop or asyncio.Event()
    service = SchedulerService(settings, kube, registry.build(settings.config))
    background = asyncio.create_task(service.run(), name="scheduler-loops")
    stopped = asyncio.create_task(_wait(stop), name="scheduler-stop")
    try:
        with _signals(stop):
            if service.elector is not None:
                log.info(
                    "waiting for the lease %s/%s", settings.lease_namespace, settings.lease_name
                )
                leading = asyncio.create_task(service.elector.wait_leader())
                await asyncio.wait([background, stopped, leading], return_when=FIRST)
                leading.cancel()
            if background.done():
                background.result()  # a loop failed before serving
            if not stop.is_set():
                await _serve(service, background, stopped)
    finally:
        stopped.cancel()
        background.cancel()
        await asyncio.gather(stopped, background, return_exceptions=True)
        await service.close()  # the Lease release and queued Events, bounded
        await kube.close()


async def _serve(
    service: SchedulerService, background: asyncio.Task[None], stopped: asyncio.Task[None]
) -> None:
    settings = service.settings
    metrics_sock = listen_metrics(settings)  # bound first: a taken port fails before serving
    server = server_for(service)
    log.info("serving on %s (%s)", settings.http_bind, "https" if settings.tls else "http")
    try:
        sock = listen(settings)
    except BaseException:
        if metrics_sock is not None:
            metrics_sock.close()
        raise
    servers = [asyncio.create_task(server.serve(sockets=[sock]), name="http")]
    metrics_server = None
    if metrics_sock is not None:
        metrics_server = metrics_server_for(service)
        log.info("serving /metrics on %s (http)", settings.metrics_bind)
        servers.append(
            asyncio.create_task(metrics_server.serve(sockets=[metrics_sock]), name="metrics")
        )
    watched = [background, stopped, *servers]
    lost = None
    if service.elector is not None:
        lost = asyncio.create_task(_lost(service), name="leadership")
        watched.append(lost)
    done, _ = await asyncio.wait(watched, return_when=FIRST)
    if lost is not None and lost not in done:
        lost.cancel()
    if metrics_server is not None:
        metrics_server.should_exit = True
    grace = settings.shutdown_grace
    log.info("shutting down: up to %gs for the requests in flight", grace)
    server.should_exit = True  # stop listening; uvicorn lets requests in flight finish
    drained = asyncio.create_task(service.drain(grace))
    # the Lease goes as soon as nothing is in flight, not after uvicorn's wait for idle and
    # late connections (up to `grace`): a follower takes over within its next round
    handed = asyncio.create_task(service.hand_over(drained))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(grace + 1):  # uvicorn's own bound is `grace`
            await asyncio.gather(*servers, drained, handed, return_exceptions=True)
    for task in done:
        task.result()  # a failed loop or server, or a lost Lease, ends the process with its error


async def _wait(event: asyncio.Event) -> None:
    await event.wait()


async def _lost(service: SchedulerService) -> None:
    assert service.elector is not None
    while service.elector.is_leader:
        await service.elector.changed.wait()
    raise LeadershipLost(f"{service.settings.identity} lost the lease")


def run(settings: SchedulerSettings) -> None:
    aio.run(serve(settings))
