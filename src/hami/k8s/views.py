"""Small frozen views of API objects for the services that want typed fields (the device
plugin), and the JSON they write back (annotation merge patches, Events)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What the device plugin reads from a pod. ``containers``: init containers first."""

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

    def position(self, container: str) -> int | None:
        """The container's index in ``containers`` (HAMi's device-list order), None if absent."""
        names = [c.name for c in self.containers]
        return names.index(container) if container in names else None

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

    def field_selector(self) -> str | None:
        if self.node_name is not None:
            return f"spec.nodeName={self.node_name}"
        return "spec.nodeName!=" if self.bound_only else None


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
