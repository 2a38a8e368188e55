"""Every response of the web UI: a Host header check (DNS rebinding) and security headers.

A pure ASGI middleware (no per-request task, unlike Starlette's BaseHTTPMiddleware). A request
whose Host is not allowed gets 400 with a message; every response, errors and static files
included, carries a Content-Security-Policy (scripts only from the UI itself, no framing),
X-Content-Type-Options, X-Frame-Options and Referrer-Policy.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8090
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host  # wire-ok: a Host header


class Guard:
    """``allowed_hosts``: host names (no port) a request may name; ``*`` allows any."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] = ("*",)) -> None:
        self.app = app
        self.allowed = frozenset(h.lower() for h in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in HEADERS.items():
                    headers.setdefault(key, value)
            await send(message)

        host = _hostname(Headers(scope=scope).get("host", ""))
        if "*" not in self.allowed and host not in self.allowed:
            response = PlainTextResponse(
                f"Host {host!r} is not allowed: open the UI by an allowed name "
                "(hami webui --allowed-host)",
                status_code=400,
            )
            await response(scope, receive, with_headers)
            return
        await self.app(scope, receive, with_headers)
