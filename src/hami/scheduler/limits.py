"""Bounds on what one client can make the HTTP listeners hold (docs/security.md).

* `Bounded` (ASGI middleware): a request body over ``max_body`` bytes is refused with 413
  (kube-apiserver's own cap is 3 MiB), by its Content-Length before a byte is read, or as soon
  as a chunked body passes it; a body not received within ``body_timeout`` seconds of the
  request is refused with 408; more than ``max_in_flight`` requests at once (the probes and
  /metrics aside) are refused with 503 before their body is read, so the memory a listener
  holds is at most ``max_in_flight × max_body``.
* `guarded_protocol`: uvicorn's h11 protocol with a header deadline — a connection that has not
  sent a complete request head within ``header_timeout`` seconds of connecting (or of its last
  response) is closed; h11 already caps a request head at 16 KiB (``h11_max_incomplete_event_size``)
  and uvicorn closes idle keep-alive connections (``timeout_keep_alive``).

The probes (/healthz, /readyz) are never counted or delayed, so they keep answering while a
listener is under attack (tests/scheduler/test_security.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's request body cap
# a body this large (a simulation-mode /filter with full Nodes: ~850 bytes a node) is parsed and
# decided with the cyclic garbage collector paused (`gc_paused`)
LARGE_BODY = 256 * 1024
EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})


_gc_pauses = [0]  # large requests in progress (the event loop's thread only)


@contextlib.contextmanager
def gc_paused(body_bytes: int) -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a request of ``body_bytes`` (from its
    Content-Length) over LARGE_BODY is parsed and decided. Its parsed body (a 2,000-node
    simulation: some 10^5 dicts and lists, alive until the answer) would otherwise trigger full
    collections that scan them all and stop the event loop for 100-700 ms each, /healthz
    included (measured: tests/scheduler/test_security.py). Refcounting frees them when the
    request ends; collections resume when the last such request has finished."""
    if body_bytes <= LARGE_BODY:
        yield
        return
    if _gc_pauses[0] == 0:
        gc.disable()
    _gc_pauses[0] += 1
    try:
        yield
    finally:
        _gc_pauses[0] -= 1
        if _gc_pauses[0] == 0:
            gc.enable()


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Bounded:
    """Body cap, body deadline and in-flight cap around an ASGI app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int = MAX_BODY,
        body_timeout: float = 10.0,
        max_in_flight: int = 64,
        name: str = "http",
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.max_in_flight = max_in_flight
        self.name = name
        self.in_flight = 0
        self.refused: dict[int, int] = {}  # status -> count (logged, and read by tests)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT:
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_body:
            await self._refuse(send, 413, self._too_large(length))
            return
        if self.in_flight >= self.max_in_flight:
            await self._refuse(send, 503, f"too many requests in flight (> {self.max_in_flight})")
            return
        self.in_flight += 1
        try:
            try:
                body = await self._read_body(receive)
            except _Refused as exc:
                await self._refuse(send, exc.status, str(exc))
                return
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.in_flight -= 1

    async def _read_body(self, receive: Receive) -> bytes:
        """The whole body, within the cap and the deadline (else `_Refused`)."""
        chunks: list[bytes] = []
        received = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        break
                    chunk = message.get("body", b"")
                    received += len(chunk)
                    if received > self.max_body:
                        raise _Refused(413, self._too_large(received))
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise _Refused(
                408, f"request body not received within {self.body_timeout:g}s"
            ) from None
        return b"".join(chunks)

    def _too_large(self, size: int) -> str:
        return f"request body of {size} bytes is over the {self.max_body}-byte limit"

    async def _refuse(self, send: Send, status: int, message: str) -> None:
        self.refused[status] = self.refused.get(status, 0) + 1
        log.warning("%s listener: refused a request with %d: %s", self.name, status, message)
        body = orjson.dumps({"error": message})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read ahead, then the connection's own messages (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


PEER_CERT = "hami.peer_cert"  # scope key: the connection's verified client certificate


class ClientCertRequired:
    """Refuse, with 403 and a message, every request (the probes aside) whose connection did
    not present a client certificate the listener's CA verified. (A certificate from another
    CA already fails the TLS handshake; a missing one is allowed there so that the refusal can
    say why — an aborted handshake tells a client nothing.)"""

    def __init__(self, app: ASGIApp, who: str) -> None:
        self.app = app
        self.who = who

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") not in EXEMPT and not scope.get(PEER_CERT):
            log.warning(
                "refused %s %s from %s: no client certificate",
                scope.get("method"),
                scope.get("path"),
                scope.get("client"),
            )
            body = orjson.dumps(
                {"error": f"client certificate required: only {self.who} may call this listener"}
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def guarded_protocol(header_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol closing a connection whose request head is not complete within
    ``header_timeout`` seconds (a slow-header client, "slowloris")."""

    class Guarded(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _waiting_for: object = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                # no Nagle delay between the response head and body (else a client's delayed
                # ACK adds ~40 ms to every short reply)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # the verified client certificate (TLS with a client CA), for `require_client_cert`
            peer = transport.get_extra_info("peercert")
            inner = self.app

            async def app(scope: Scope, receive: Receive, send: Send) -> None:
                scope[PEER_CERT] = peer or None
                await inner(scope, receive, send)

            self.app = app
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._head_timer is not None and self.cycle is not self._waiting_for:
                self._disarm()  # a request head arrived: the app and Bounded take over

        def on_response_complete(self) -> None:
            self._arm()  # first: a pipelined request started by super() disarms nothing
            super().on_response_complete()
            if self.transport.is_closing():
                self._disarm()

        def _arm(self) -> None:
            self._disarm()
            self._waiting_for = self.cycle
            self._head_timer = self.loop.call_later(header_timeout, self._expired)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _expired(self) -> None:
            self._head_timer = None
            if self.cycle is self._waiting_for and not self.transport.is_closing():
                log.info("closed a connection: no request head within %gs", header_timeout)
                self.transport.close()

    return Guarded
