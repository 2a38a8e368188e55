"""A real HTTP API server for reconnect tests: hami.k8s's in-memory `FakeKube` served over
HTTP/1.1 (list, get, watch as JSON lines, 410 as a watch ERROR event), behind a TCP port that
a test can close — refusing new connections and cutting open ones — and reopen."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import orjson
import uvicorn
from lightkube.config.kubeconfig import KubeConfig
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from hami.k8s.api import NODES, PODS, RESOURCE_QUOTAS, Gone, Kind, KubeAPIError
from hami.k8s.fake import FakeKube

KINDS = {k.plural: k for k in (PODS, NODES, RESOURCE_QUOTAS)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kubeconfig(port: int) -> KubeConfig:
    return KubeConfig.from_dict(
        {
            "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
    )


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def app(kube: FakeKube) -> Starlette:
    async def collection(request: Request) -> Response:
        kind: Kind = KINDS[request.path_params["plural"]]
        q = request.query_params
        namespace = request.path_params.get("ns")
        label_selector, field_selector = q.get("labelSelector"), q.get("fieldSelector")
        if q.get("watch") != "true":
            listed = await kube.list(
                kind,
                namespace=namespace,
                label_selector=label_selector,
                field_selector=field_selector,
            )
            meta = {"resourceVersion": listed.resource_version}
            return _json({"metadata": meta, "items": list(listed.items)})

        async def lines() -> AsyncIterator[bytes]:
            stream = kube.watch(
                kind,
                resource_version=q.get("resourceVersion", ""),
                namespace=namespace,
                label_selector=label_selector,
                field_selector=field_selector,
            )
            try:
                async for event in stream:
                    yield orjson.dumps({"type": event.type, "object": event.object}) + b"\n"
            except Gone as exc:
                error = {"code": 410, "reason": "Expired", "message": str(exc)}
                yield orjson.dumps({"type": "ERROR", "object": error}) + b"\n"

        return StreamingResponse(lines(), media_type="application/json")

    async def item(request: Request) -> Response:
        kind = KINDS[request.path_params["plural"]]
        try:
            found = await kube.get(kind, request.path_params["name"], request.path_params.get("ns"))
        except KubeAPIError as exc:
            return _json({"kind": "Status", "code": exc.status, "message": str(exc)}, exc.status)
        return _json(found)

    return Starlette(
        routes=[
            Route("/api/v1/{plural}", collection),
            Route("/api/v1/namespaces/{ns}/{plural}", collection),
            Route("/api/v1/{plural}/{name}", item),
            Route("/api/v1/namespaces/{ns}/{plural}/{name}", item),
        ]
    )


class DroppableAPI:
    """`FakeKube` over HTTP on a private port, reached through ``port``: `drop` closes that
    port and cuts every connection through it, `reopen` listens on it again."""

    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube
        self.port = free_port()
        self._backend = free_port()
        self._server = uvicorn.Server(
            uvicorn.Config(
                app(kube), host="127.0.0.1", port=self._backend, log_level="warning", lifespan="off"
            )
        )
        self._serving: asyncio.Task[None] | None = None
        self._listener: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._serving = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)
        await self.reopen()

    async def stop(self) -> None:
        await self.drop()
        self._server.should_exit = True
        self._server.force_exit = True
        if self._serving is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._serving, 5)

    async def reopen(self) -> None:
        self._listener = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def drop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        back_r, back_w = await asyncio.open_connection("127.0.0.1", self._backend)
        self._pipes |= {client_w, back_w}
        await asyncio.gather(self._pipe(client_r, back_w), self._pipe(back_r, client_w))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
            self._pipes.discard(writer)
