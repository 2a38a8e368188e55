"""The Kubernetes port of the agent, its typed views and the lightkube implementation.

The port speaks plain JSON-like dicts (the API's own shape) and small frozen views, so the fake
(:mod:`hami.agent.fake_kube`) needs no client library. Only this module imports lightkube.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import httpx
import httpx2
from lightkube import ALL_NS, ApiError, AsyncClient, KubeConfig, operators
from lightkube.core.exceptions import ConfigError as LightkubeConfigError
from lightkube.resources.core_v1 import Event, Node, Pod
from lightkube.types import PatchType

from hami.agent.errors import ConfigError, Conflict, KubeError

Json = dict[str, Any]

log = logging.getLogger(__name__)

GONE = 410  # the watch's resourceVersion was compacted away: list again


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What the agent reads from a pod. ``containers``: init containers first, then regular."""

    namespace: str
    name: str
    uid: str
    node_name: str
    phase: str
    annotations: Mapping[str, str]
    containers: tuple[ContainerInfo, ...]
    deleting: bool = False
    init_count: int = 0  # how many of ``containers`` are init containers

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> PodInfo:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        containers = [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]
        return cls(
            namespace=meta.get("namespace", ""),
            name=meta.get("name", ""),
            uid=meta.get("uid", ""),
            node_name=spec.get("nodeName") or "",
            phase=(obj.get("status") or {}).get("phase", ""),
            annotations=dict(meta.get("annotations") or {}),
            containers=tuple(_container(c) for c in containers),
            deleting=bool(meta.get("deletionTimestamp")),
            init_count=len(spec.get("initContainers") or ()),
        )


def _container(obj: Mapping[str, Any]) -> ContainerInfo:
    env = {e["name"]: str(e.get("value", "")) for e in obj.get("env") or () if "name" in e}
    limits = {k: str(v) for k, v in ((obj.get("resources") or {}).get("limits") or {}).items()}
    return ContainerInfo(name=obj.get("name", ""), env=env, limits=limits)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    annotations: Mapping[str, str]
    resource_version: str = ""
    uid: str = ""
    capacity: Mapping[str, str] = field(default_factory=dict)  # status.capacity
    allocatable: Mapping[str, str] = field(default_factory=dict)  # status.allocatable

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> NodeInfo:
        meta = obj.get("metadata") or {}
        status = obj.get("status") or {}
        return cls(
            name=meta.get("name", ""),
            annotations=dict(meta.get("annotations") or {}),
            resource_version=meta.get("resourceVersion", ""),
            uid=meta.get("uid", ""),
            capacity={k: str(v) for k, v in (status.get("capacity") or {}).items()},
            allocatable={k: str(v) for k, v in (status.get("allocatable") or {}).items()},
        )


@dataclass(frozen=True, slots=True)
class EventSpec:
    """A core/v1 Event about a pod or node."""

    kind: str  # "Pod" or "Node"
    namespace: str  # the object's namespace ("default" for nodes)
    name: str
    uid: str
    reason: str
    message: str
    type: str = "Warning"
    component: str = "hami-device-plugin"


@dataclass(frozen=True, slots=True)
class PodEvent:
    """One change seen by a pod watch: ``type`` is ADDED, MODIFIED or DELETED."""

    type: str
    pod: PodInfo
    resource_version: str = ""


@dataclass(frozen=True, slots=True)
class PodSelector:
    """Which pods a watch covers: those bound to ``node_name`` (None: any), or only bound ones."""

    node_name: str | None = None
    bound_only: bool = False

    def matches(self, pod: PodInfo) -> bool:
        if self.node_name is not None:
            return pod.node_name == self.node_name
        return bool(pod.node_name) or not self.bound_only


class KubePort(Protocol):
    """The Kubernetes calls the device plugin makes."""

    async def get_node(self, name: str) -> NodeInfo: ...

    async def create_node(self, node: Json) -> None:
        """Create a Node object (status included, as kubelet registers); `Conflict` if it
        exists. Only simulate mode creates nodes."""
        ...

    async def patch_node(self, name: str, patch: Json) -> None:
        """JSON merge patch of the node object (metadata, optionally resourceVersion-guarded)."""
        ...

    async def patch_node_status(self, name: str, patch: Json) -> None: ...

    async def get_pod(self, namespace: str, name: str) -> PodInfo | None: ...

    async def list_pods(self, node_name: str | None = None) -> Sequence[PodInfo]:
        """Pods bound to ``node_name`` (all pods when None), every namespace."""
        ...

    async def patch_pod(self, namespace: str, name: str, patch: Json) -> None: ...

    def watch_pods(self, selector: PodSelector) -> AsyncIterator[PodEvent]:
        """List, then watch from the list's resourceVersion, forever (see `list_and_watch`)."""
        ...

    async def create_event(self, event: EventSpec) -> None: ...


class WatchSource(Protocol):
    """The two primitives `list_and_watch` builds a pod watch from."""

    async def list_pods_at(self, selector: PodSelector) -> tuple[list[PodInfo], str]:
        """The matching pods and the list's resourceVersion."""
        ...

    def watch_pods_from(self, selector: PodSelector, version: str) -> AsyncIterator[PodEvent]:
        """Changes after ``version``; ends when the server closes the stream, raises
        `KubeError` (status 410 when ``version`` is too old)."""
        ...


@dataclass(slots=True)
class Backoff:
    """Exponential reconnect delay: ``first`` doubled per consecutive failure, capped."""

    first: float = 0.2
    cap: float = 10.0
    failures: int = 0

    def next_delay(self) -> float:
        self.failures += 1
        return min(self.first * 2.0 ** min(self.failures - 1, 32), self.cap)

    def reset(self) -> None:
        self.failures = 0


def resync_events(known: dict[str, PodInfo], pods: Iterable[PodInfo]) -> list[PodEvent]:
    """After a (re-)list: ADDED for every listed pod, DELETED for known pods no longer there;
    ``known`` (uid → pod) is updated in place."""
    listed = {p.uid: p for p in pods}
    gone = [PodEvent("DELETED", known[uid]) for uid in known.keys() - listed.keys()]
    known.clear()
    known.update(listed)
    return [*gone, *(PodEvent("ADDED", p) for p in listed.values())]


async def list_and_watch(
    source: WatchSource,
    selector: PodSelector,
    backoff: Backoff | None = None,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> AsyncIterator[PodEvent]:
    """A pod watch that never ends: list (ADDED per pod), watch from the list's
    resourceVersion, resume from the last seen version when the stream closes, list again on
    410 Gone (DELETED for pods that vanished meanwhile), back off on other errors."""
    backoff = backoff or Backoff()
    known: dict[str, PodInfo] = {}
    version = ""
    while True:
        try:
            if not version:
                pods, version = await source.list_pods_at(selector)
                backoff.reset()
                for event in resync_events(known, pods):
                    yield event
            async for event in source.watch_pods_from(selector, version):
                backoff.reset()
                version = event.resource_version or version
                _track(known, event)
                yield event
        except KubeError as exc:
            if exc.status == GONE:
                log.info("pod watch: %s; listing again", exc)
                version = ""
                continue
            delay = backoff.next_delay()
            log.warning("pod watch: %s; retrying in %.1f s", exc, delay)
            await sleep(delay)


def _track(known: dict[str, PodInfo], event: PodEvent) -> None:
    if event.type == "DELETED":
        known.pop(event.pod.uid, None)
    else:
        known[event.pod.uid] = event.pod


def annotations_patch(values: Mapping[str, str | None], resource_version: str = "") -> Json:
    """A merge patch setting (or, for None, removing) annotations."""
    meta: Json = {"annotations": dict(values)}
    if resource_version:
        meta["resourceVersion"] = resource_version
    return {"metadata": meta}


def event_json(event: EventSpec, now: datetime | None = None) -> Json:
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {"generateName": f"{event.name}.", "namespace": event.namespace},
        "involvedObject": {
            "kind": event.kind,
            "name": event.name,
            "namespace": event.namespace if event.kind == "Pod" else "",
            "uid": event.uid,
            "apiVersion": "v1",
        },
        "reason": event.reason,
        "message": event.message,
        "type": event.type,
        "source": {"component": event.component},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


WATCH_SERVER_TIMEOUT = 300  # seconds; the stream is resumed from the last resourceVersion


class LightkubePort:
    """`KubePort` over a lightkube ``AsyncClient``; API errors become `KubeError`."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def from_kubeconfig(cls, path: str | None = None) -> LightkubePort:
        try:
            config = KubeConfig.from_file(path) if path else KubeConfig.from_env()
        except (LightkubeConfigError, OSError) as exc:
            where = path or "in-cluster service account / ~/.kube/config"
            raise ConfigError(f"cannot load kubeconfig ({where}): {exc}") from None
        return cls(AsyncClient(config=config))

    async def close(self) -> None:
        await self._client.close()

    async def get_node(self, name: str) -> NodeInfo:
        obj = await self._call(self._client.get(Node, name))
        return NodeInfo.from_json(obj.to_dict())

    async def create_node(self, node: Json) -> None:
        await self._call(self._client.create(Node.from_dict(node)))

    async def patch_node(self, name: str, patch: Json) -> None:
        await self._merge(Node, name, patch)

    async def patch_node_status(self, name: str, patch: Json) -> None:
        await self._merge(Node.Status, name, patch)

    async def get_pod(self, namespace: str, name: str) -> PodInfo | None:
        try:
            obj = await self._call(self._client.get(Pod, name, namespace=namespace))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return PodInfo.from_json(obj.to_dict())

    async def list_pods(self, node_name: str | None = None) -> Sequence[PodInfo]:
        fields = {"spec.nodeName": node_name} if node_name else None

        async def collect() -> list[PodInfo]:
            found = self._client.list(Pod, namespace=ALL_NS, fields=fields)
            return [PodInfo.from_json(p.to_dict()) async for p in found]

        return cast(list[PodInfo], await self._call(collect()))

    async def patch_pod(self, namespace: str, name: str, patch: Json) -> None:
        await self._merge(Pod, name, patch, namespace=namespace)

    def watch_pods(self, selector: PodSelector) -> AsyncIterator[PodEvent]:
        return list_and_watch(self, selector)

    async def list_pods_at(self, selector: PodSelector) -> tuple[list[PodInfo], str]:
        found = self._client.list(Pod, namespace=ALL_NS, fields=_fields(selector))

        async def collect() -> list[PodInfo]:
            return [PodInfo.from_json(p.to_dict()) async for p in found]

        pods = cast(list[PodInfo], await self._call(collect()))
        return pods, found.resourceVersion

    async def watch_pods_from(self, selector: PodSelector, version: str) -> AsyncIterator[PodEvent]:
        stream = self._client.watch(
            Pod,
            namespace=ALL_NS,
            fields=_fields(selector),
            resource_version=version,
            server_timeout=WATCH_SERVER_TIMEOUT,
        )
        try:
            async for kind, obj in stream:
                raw = obj.to_dict()
                version = (raw.get("metadata") or {}).get("resourceVersion", version)
                yield PodEvent(kind, PodInfo.from_json(raw), version)
        except ApiError as exc:
            raise _kube_error(exc) from exc
        except (httpx.HTTPStatusError, httpx2.HTTPStatusError) as exc:
            raise KubeError(exc.response.status_code, str(exc)) from exc
        except (httpx.HTTPError, httpx2.HTTPError, OSError) as exc:  # lightkube 1.x: httpx2
            raise KubeError(0, f"watch connection: {exc}") from exc
        finally:
            await stream.aclose()

    async def create_event(self, event: EventSpec) -> None:
        await self._call(self._client.create(Event.from_dict(event_json(event))))

    async def _merge(self, res: Any, name: str, patch: Json, namespace: str | None = None) -> None:
        await self._call(
            self._client.patch(res, name, patch, namespace=namespace, patch_type=PatchType.MERGE)
        )

    @staticmethod
    async def _call(awaitable: Any) -> Any:
        """The one place lightkube errors are translated: API errors keep their status; a
        connection that fails (lightkube 1.x raises httpx2's errors) is status 0, so callers
        back off and retry instead of ending."""
        try:
            return await awaitable
        except ApiError as exc:
            raise _kube_error(exc) from exc
        except (httpx.HTTPError, httpx2.HTTPError, OSError) as exc:
            raise KubeError(0, f"connection: {exc}") from exc


def _fields(selector: PodSelector) -> dict[str, Any] | None:
    if selector.node_name is not None:
        return {"spec.nodeName": selector.node_name}
    return {"spec.nodeName": operators.not_equal("")} if selector.bound_only else None


def _kube_error(exc: ApiError) -> KubeError:
    status = int(getattr(exc.status, "code", 0) or 0)
    message = str(getattr(exc.status, "message", "") or exc)
    return (Conflict if status == 409 else KubeError)(status, message)
