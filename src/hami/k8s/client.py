"""`KubeAPI` over the real API server: lightkube reads the kubeconfig (in-cluster, KUBECONFIG,
~/.kube/config; certificates, tokens, exec plugins) and gives an authenticated async HTTP
client, on which we speak plain JSON (orjson) — no model classes on the hot path."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import cast

import httpx2
import orjson
from lightkube.config import client_adapter
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ConfigError as LightkubeConfigError

from hami.k8s import objects
from hami.k8s.api import (
    PODS,
    Gone,
    Kind,
    KubeAPIError,
    Manifest,
    ObjectList,
    Unavailable,
    WatchEvent,
    error_for,
)

MERGE_PATCH = "application/merge-patch+json"
JSON = "application/json"


class KubeconfigError(KubeAPIError):
    """The kubeconfig cannot be loaded (named in the message)."""


def load_kubeconfig(path: Path | None = None) -> KubeConfig:
    """The kubeconfig at ``path``, else in-cluster, ``$KUBECONFIG`` or ``~/.kube/config``."""
    try:
        return KubeConfig.from_file(path) if path is not None else KubeConfig.from_env()
    except (LightkubeConfigError, OSError) as exc:
        where = path or "in-cluster service account / $KUBECONFIG / ~/.kube/config"
        raise KubeconfigError(f"cannot load kubeconfig ({where}): {exc}") from None


class LightkubeAPI:
    """The real `KubeAPI`. One connection pool; no client-side rate limit."""

    def __init__(
        self,
        config: KubeConfig,
        *,
        context: str | None = None,
        timeout: float = 10.0,
        max_connections: int = 200,
        user_agent: str = "hami-scheduler",
    ) -> None:
        single = config.get(context)
        if single is None:
            raise KubeAPIError(f"kubeconfig has no context {context or '(current)'}")
        conn = client_adapter.ConnectionParams(timeout=httpx2.Timeout(timeout), trust_env=False)
        params = conn.httpx_params(single)
        self._http = httpx2.AsyncClient(
            **params,
            limits=httpx2.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"User-Agent": user_agent},
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
        content_type: str = JSON,
    ) -> Manifest:
        content = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": content_type} if content is not None else None
        try:
            response = await self._http.request(
                method, path, content=content, params=params, headers=headers
            )
        except httpx2.HTTPError as exc:
            raise Unavailable(f"{method} {path}: {exc!r}") from exc
        if response.status_code >= 400:
            raise _error(method, path, response.status_code, response.content)
        return cast(Manifest, orjson.loads(response.content)) if response.content else {}

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> Manifest:
        return await self._call("GET", kind.path(namespace, name))

    async def list(
        self,
        kind: Kind,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> ObjectList:
        items: list[Manifest] = []
        params = _selectors(label_selector, field_selector)
        params["limit"] = "500"
        while True:
            page = await self._call("GET", kind.path(namespace), params=params)
            items.extend(cast(list[Manifest], page.get("items") or []))
            meta = objects.meta(page)
            token = str(meta.get("continue") or "")
            if not token:
                return ObjectList(tuple(items), str(meta.get("resourceVersion") or ""))
            params["continue"] = token

    async def watch(
        self,
        kind: Kind,
        *,
        resource_version: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        params = _selectors(label_selector, field_selector)
        params.update(
            watch="true",
            resourceVersion=resource_version,
            allowWatchBookmarks="true",
            timeoutSeconds=str(timeout_seconds),
        )
        path = kind.path(namespace)
        timeout = httpx2.Timeout(10.0, read=timeout_seconds + 30.0)
        try:
            async with self._http.stream("GET", path, params=params, timeout=timeout) as response:
                if response.status_code >= 400:
                    raise _error("WATCH", path, response.status_code, await response.aread())
                async for line in response.aiter_lines():
                    if line:
                        yield _event(path, line)
        except httpx2.HTTPError as exc:
            raise Unavailable(f"WATCH {path}: {exc!r}") from exc

    async def merge_patch(
        self, kind: Kind, name: str, patch: Manifest, namespace: str | None = None
    ) -> Manifest:
        path = kind.path(namespace, name)
        return await self._call("PATCH", path, body=patch, content_type=MERGE_PATCH)

    async def create(
        self, kind: Kind, body: Manifest, namespace: str | None = None, *, dry_run: bool = False
    ) -> Manifest:
        ns = namespace or objects.namespace(body) or None
        params = {"dryRun": "All"} if dry_run else None
        return await self._call("POST", kind.path(ns), body=body, params=params)

    async def delete(
        self,
        kind: Kind,
        name: str,
        namespace: str | None = None,
        *,
        grace_seconds: int | None = None,
    ) -> None:
        params = {} if grace_seconds is None else {"gracePeriodSeconds": str(grace_seconds)}
        await self._call("DELETE", kind.path(namespace, name), params=params)

    async def replace(
        self, kind: Kind, name: str, body: Manifest, namespace: str | None = None
    ) -> Manifest:
        return await self._call("PUT", kind.path(namespace, name), body=body)

    async def bind(
        self,
        namespace: str,
        name: str,
        node: str,
        uid: str = "",
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        meta: dict[str, object] = {"name": name, "namespace": namespace}
        if uid:
            meta["uid"] = uid
        if annotations:
            meta["annotations"] = dict(annotations)
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": meta,
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        await self._call("POST", PODS.path(namespace, name) + "/binding", body=body)


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


def _error(method: str, path: str, status: int, content: bytes) -> KubeAPIError:
    message, reason = content.decode(errors="replace")[:300], ""
    try:
        body = orjson.loads(content)
        if isinstance(body, dict):
            message = str(body.get("message") or message)
            reason = str(body.get("reason") or "")
    except orjson.JSONDecodeError:
        pass
    return error_for(status, f"{method} {path}: {status} {message}", reason)


def _event(path: str, line: str) -> WatchEvent:
    raw = orjson.loads(line)
    kind = str(raw.get("type") or "")
    obj = cast(Manifest, raw.get("object") or {})
    if kind == "ERROR":
        code = int(cast(int, obj.get("code") or 0))
        if code == 410:
            raise Gone(f"WATCH {path}: {obj.get('message')}")
        raise error_for(code, f"WATCH {path}: {obj.get('message')}", str(obj.get("reason") or ""))
    return WatchEvent(kind, obj)
