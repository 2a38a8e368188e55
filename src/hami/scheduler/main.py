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
import sys
from collections.abc import Iterator

import uvicorn

from hami import aio
from hami.k8s.api import KubeAPI
from hami.k8s.client import LightkubeAPI, load_kubeconfig
from hami.scheduler.app import ADMISSION, EXTENDER, create_app, create_metrics_app
from hami.scheduler.limits import ASGIApp, Bounded, ClientCertRequired, guarded_protocol
from hami.scheduler.service import SchedulerService
from hami.scheduler.settings import SchedulerSettings
from hami.scheduler.tls import PeerCertificate, ServerTLS
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


def listen_extender(settings: SchedulerSettings) -> socket.socket | None:
    """The /filter and /bind socket (``--extender-bind``), or None when they share http-bind."""
    return _listen_flag(
        settings, settings.extender_host_port, "--extender-bind", settings.extender_bind
    )


def listen_metrics(settings: SchedulerSettings) -> socket.socket | None:
    """The plain-HTTP /metrics socket (``--metrics-bind-address``), or None when off."""
    return _listen_flag(
        settings,
        settings.metrics_host_port,
        "--metrics-bind-address",
        settings.metrics_bind,
        " (another port, or '' for no plain-HTTP /metrics)",
    )


def _listen_flag(
    settings: SchedulerSettings,
    address: tuple[str, int] | None,
    flag: str,
    value: str,
    hint: str = "",
) -> socket.socket | None:
    """A socket for an optional listener, or None when ``flag`` turns it off; a bind error
    names the flag and its value."""
    if address is None:
        return None
    try:
        return bind_socket(*address, reuse_port=settings.reuse_port)
    except OSError as exc:
        raise ListenError(f"{flag} {value}: {exc.strerror or exc}{hint}") from None


def tls_for(settings: SchedulerSettings, *, client_auth: bool) -> ServerTLS | None:
    """The serving context of a listener (None without TLS); ``client_auth``: the extender
    listener, requiring a client certificate from ``--client-ca-file`` when one is given."""
    if settings.cert_file is None or settings.key_file is None:
        return None
    ca = settings.client_ca_file if client_auth else None
    return ServerTLS(settings.cert_file, settings.key_file, ca)


def server_for(
    service: SchedulerService,
    app: ASGIApp | None = None,
    tls: ServerTLS | None = None,
    *,
    name: str = "http",
) -> uvicorn.Server:
    """A bounded uvicorn server for ``app`` (default: every route) over ``tls``."""
    settings = service.settings
    bounded = Bounded(
        app or create_app(service),
        max_body=settings.max_body,
        body_timeout=settings.body_timeout,
        max_in_flight=settings.max_in_flight,
        name=name,
    )
    config = uvicorn.Config(
        bounded,
        lifespan="off",
        access_log=False,
        log_level="warning",
        http=guarded_protocol(settings.header_timeout),
        h11_max_incomplete_event_size=16 * 1024,
        timeout_keep_alive=max(1, round(settings.keep_alive)),
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace)),
        backlog=1024,
    )
    config.load()
    if tls is not None:
        config.ssl = tls.context  # ours, so that a rotated certificate is loaded in place
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
    # a simulation-mode /filter decides on a worker thread: the event loop gets the GIL back
    # within 1 ms instead of Python's default 5 ms, so probes stay fast meanwhile
    sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
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
    # bound first: a taken port fails before serving
    metrics_sock = listen_metrics(settings)
    try:
        extender_sock = listen_extender(settings)
    except BaseException:
        if metrics_sock is not None:
            metrics_sock.close()
        raise
    own = [s for s in (metrics_sock, extender_sock) if s is not None]
    try:
        sock = listen(settings)
        tls = tls_for(settings, client_auth=False)
        extender_tls = tls_for(settings, client_auth=True) if extender_sock else None
    except BaseException:
        for taken in own:
            taken.close()
        raise
    scheme = "https" if settings.tls else "http"
    servers: list[tuple[uvicorn.Server, socket.socket]] = []
    if extender_sock is None:
        servers.append((server_for(service, create_app(service), tls), sock))
        if not settings.client_ca_file:
            log.warning(
                "/filter and /bind are served on %s to any client: use --extender-bind with"
                " --client-ca-file so that only kube-scheduler can call them",
                settings.http_bind,
            )
        log.info("serving on %s (%s)", settings.http_bind, scheme)
    else:
        servers.append((server_for(service, create_app(service, ADMISSION), tls), sock))
        app: ASGIApp = create_app(service, EXTENDER)
        if extender_tls is not None and extender_tls.client_ca is not None:
            app = ClientCertRequired(app, "kube-scheduler (a client certificate from the CA)")
        servers.append((server_for(service, app, extender_tls, name="extender"), extender_sock))
        authenticated = settings.tls and settings.client_ca_file is not None
        log.info(
            "serving the webhook on %s (%s), /filter and /bind on %s (%s, %s)",
            settings.http_bind,
            scheme,
            settings.extender_bind,
            scheme,
            "client certificates required" if authenticated else "ANY client",
        )
    if metrics_sock is not None:
        servers.append((metrics_server_for(service), metrics_sock))
        log.info("serving /metrics on %s (http)", settings.metrics_bind)
    followers = []
    if settings.cert_reload_interval > 0:
        for context in (tls, extender_tls):
            if context is not None:
                followers.append(asyncio.create_task(context.follow(settings.cert_reload_interval)))
        if settings.kube_scheduler_client_cert is not None:
            peer = PeerCertificate(settings.kube_scheduler_client_cert)
            followers.append(asyncio.create_task(peer.follow(settings.cert_reload_interval)))
    try:
        await _until_done(service, background, stopped, servers)
    finally:
        for follower in followers:
            follower.cancel()


async def _until_done(
    service: SchedulerService,
    background: asyncio.Task[None],
    stopped: asyncio.Task[None],
    servers: list[tuple[uvicorn.Server, socket.socket]],
) -> None:
    tasks = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock in servers]
    watched = [background, stopped, *tasks]
    lost = None
    if service.elector is not None:
        lost = asyncio.create_task(_lost(service), name="leadership")
        watched.append(lost)
    done, _ = await asyncio.wait(watched, return_when=FIRST)
    if lost is not None and lost not in done:
        lost.cancel()
    grace = service.settings.shutdown_grace
    log.info("shutting down: up to %gs for the requests in flight", grace)
    for server, _sock in servers:
        server.should_exit = True  # stop listening; uvicorn lets requests in flight finish
    drained = asyncio.create_task(service.drain(grace))
    # the Lease goes as soon as nothing is in flight, not after uvicorn's wait for idle and
    # late connections (up to `grace`): a follower takes over within its next round
    handed = asyncio.create_task(service.hand_over(drained))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(grace + 1):  # uvicorn's own bound is `grace`
            await asyncio.gather(*tasks, drained, handed, return_exceptions=True)
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
