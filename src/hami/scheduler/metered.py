"""A `KubeAPI` that counts its failed calls (`hami_scheduler_kube_api_errors_total`).

The service wraps its client once, so every call the scheduler makes — informer lists and
watches, filter patches, node locks, Bindings, Events, the Lease — is counted where it fails,
by Kubernetes verb (get, list, watch, patch, create, update), resource and HTTP status (0 when
the server was not reached). Expected statuses count too (a 404 for a gone lock owner, a 409
for a lost resourceVersion race, a 410 for an expired watch): the ``status`` label tells them
apart. The error itself is re-raised unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

from hami.k8s.api import Kind, KubeAPI, KubeAPIError, Manifest, ObjectList, WatchEvent

ErrorHook = Callable[[str, str, int], None]  # (verb, resource, status)
BINDINGS = "pods/binding"


class MeteredKube:
    """Delegates every `KubeAPI` call to ``inner``; reports each `KubeAPIError` to ``on_error``."""

    def __init__(self, inner: KubeAPI, on_error: ErrorHook) -> None:
        self.inner = inner
        self._on_error = on_error

    def _failed(self, verb: str, resource: str, exc: KubeAPIError) -> None:
        self._on_error(verb, resource, exc.status)

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> Manifest:
        try:
            return await self.inner.get(kind, name, namespace)
        except KubeAPIError as exc:
            self._failed("get", kind.plural, exc)
            raise

    async def list(
        self,
        kind: Kind,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> ObjectList:
        try:
            return await self.inner.list(
                kind,
                namespace=namespace,
                label_selector=label_selector,
                field_selector=field_selector,
            )
        except KubeAPIError as exc:
            self._failed("list", kind.plural, exc)
            raise

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
        try:
            stream = self.inner.watch(
                kind,
                resource_version=resource_version,
                namespace=namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                timeout_seconds=timeout_seconds,
            )
            async for event in stream:
                yield event
        except KubeAPIError as exc:
            self._failed("watch", kind.plural, exc)
            raise

    async def merge_patch(
        self, kind: Kind, name: str, patch: Manifest, namespace: str | None = None
    ) -> Manifest:
        try:
            return await self.inner.merge_patch(kind, name, patch, namespace)
        except KubeAPIError as exc:
            self._failed("patch", kind.plural, exc)
            raise

    async def create(self, kind: Kind, body: Manifest, namespace: str | None = None) -> Manifest:
        try:
            return await self.inner.create(kind, body, namespace)
        except KubeAPIError as exc:
            self._failed("create", kind.plural, exc)
            raise

    async def replace(
        self, kind: Kind, name: str, body: Manifest, namespace: str | None = None
    ) -> Manifest:
        try:
            return await self.inner.replace(kind, name, body, namespace)
        except KubeAPIError as exc:
            self._failed("update", kind.plural, exc)
            raise

    async def bind(
        self,
        namespace: str,
        name: str,
        node: str,
        uid: str = "",
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        try:
            await self.inner.bind(namespace, name, node, uid=uid, annotations=annotations)
        except KubeAPIError as exc:
            self._failed("create", BINDINGS, exc)
            raise

    async def close(self) -> None:
        await self.inner.close()
