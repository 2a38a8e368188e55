"""The `KubeAPI` port: the few Kubernetes calls hami's services make, on plain JSON objects.

Objects are the API server's JSON as mappings; nothing here knows about devices. Errors are
`KubeAPIError` subclasses by HTTP status, so callers catch what they can handle.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol

Manifest = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Kind:
    """A REST resource: ``/api/v1/pods`` or ``/apis/coordination.k8s.io/v1/namespaces/x/leases``."""

    plural: str
    prefix: str  # "api/v1" or "apis/<group>/<version>"
    namespaced: bool
    kind: str
    subresource: str = ""  # "status": PATCH /api/v1/nodes/<name>/status

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        parts = [self.prefix]
        if self.namespaced and namespace:
            parts += ["namespaces", namespace]
        parts.append(self.plural)
        if name:
            parts.append(name)
            if self.subresource:
                parts.append(self.subresource)
        return "/" + "/".join(parts)

    @property
    def api_version(self) -> str:
        return self.prefix.removeprefix("apis/").removeprefix("api/")


PODS = Kind("pods", "api/v1", True, "Pod")
NODES = Kind("nodes", "api/v1", False, "Node")
NODE_STATUS = Kind("nodes", "api/v1", False, "Node", "status")
EVENTS = Kind("events", "api/v1", True, "Event")
NAMESPACES = Kind("namespaces", "api/v1", False, "Namespace")
LEASES = Kind("leases", "apis/coordination.k8s.io/v1", True, "Lease")
RESOURCE_QUOTAS = Kind("resourcequotas", "api/v1", True, "ResourceQuota")


class KubeAPIError(Exception):
    """An API call failed; ``status`` is the HTTP status (0 when the server was not reached)."""

    status = 0

    def __init__(self, message: str, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.reason = reason


class NotFound(KubeAPIError):
    status = 404


class Conflict(KubeAPIError):
    """409: a resourceVersion precondition failed or the object already exists."""

    status = 409


class Gone(KubeAPIError):
    """410: the watch's resourceVersion is too old; list again."""

    status = 410


class Unavailable(KubeAPIError):
    """The API server could not be reached (connection refused, timeout, 5xx)."""


def error_for(status: int, message: str, reason: str = "") -> KubeAPIError:
    """The exception class for an HTTP status."""
    by_status: dict[int, type[KubeAPIError]] = {404: NotFound, 409: Conflict, 410: Gone}
    cls = by_status.get(status)
    if cls is not None:
        return cls(message, reason=reason)
    if status >= 500 or status in (0, 429):
        return Unavailable(message, status, reason)
    return KubeAPIError(message, status, reason)


@dataclass(frozen=True, slots=True)
class ObjectList:
    items: tuple[Manifest, ...]
    resource_version: str


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """``ADDED``, ``MODIFIED``, ``DELETED`` or ``BOOKMARK`` with the object (or its bookmark)."""

    type: str
    object: Manifest


class KubeAPI(Protocol):
    """The calls hami makes. Implementations: `LightkubeAPI` (real) and `FakeKube` (tests)."""

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> Manifest: ...

    async def list(
        self,
        kind: Kind,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> ObjectList: ...

    def watch(
        self,
        kind: Kind,
        *,
        resource_version: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        """Events after ``resource_version`` (bookmarks included); raises `Gone` when too old."""
        ...

    async def merge_patch(
        self, kind: Kind, name: str, patch: Manifest, namespace: str | None = None
    ) -> Manifest:
        """RFC 7386 merge patch; a ``metadata.resourceVersion`` in it is a precondition (409)."""
        ...

    async def create(
        self, kind: Kind, body: Manifest, namespace: str | None = None
    ) -> Manifest: ...

    async def replace(
        self, kind: Kind, name: str, body: Manifest, namespace: str | None = None
    ) -> Manifest:
        """PUT; the body's ``metadata.resourceVersion`` guards it (409 when stale)."""
        ...

    async def bind(
        self,
        namespace: str,
        name: str,
        node: str,
        uid: str = "",
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        """Create ``pods/binding``; the API server copies ``annotations`` onto the pod."""
        ...

    async def close(self) -> None: ...
