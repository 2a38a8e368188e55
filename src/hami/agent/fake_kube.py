"""An in-memory `KubePort` for unit tests: merge-patch semantics, resourceVersion checks,
recorded events, a pod watch (with compaction and broken streams) and injectable failures."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from hami.agent.errors import Conflict, KubeError
from hami.agent.kube import (
    EventSpec,
    Json,
    NodeInfo,
    PodEvent,
    PodInfo,
    PodSelector,
    list_and_watch,
)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeKube:
    """Nodes and pods as API-shaped dicts; ``fail`` maps a method name to the error it raises."""

    def __init__(self) -> None:
        self.nodes: dict[str, Json] = {}
        self.pods: dict[tuple[str, str], Json] = {}
        self.events: list[EventSpec] = []
        self.fail: dict[str, KubeError] = {}
        self.calls: list[str] = []
        self.pod_log: list[PodEvent] = []  # pod changes, oldest first, since the last compact()
        self._version = 0
        self._compacted = 0  # watches resuming from a version below this get 410 Gone
        self._breaks: list[int] = []  # HTTP status per break_watches() call
        self._changed = asyncio.Event()

    # --- test helpers ----------------------------------------------------------------------

    def add_node(self, name: str, annotations: Mapping[str, str] | None = None) -> None:
        meta = {"name": name, "uid": f"uid-{name}", "annotations": dict(annotations or {})}
        self.nodes[name] = {"metadata": meta, "status": {}}
        self._bump(self.nodes[name])

    def add_pod(self, pod: Json) -> None:
        meta = pod.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        meta.setdefault("uid", f"uid-{meta['name']}")
        key = (meta["namespace"], meta["name"])
        kind = "MODIFIED" if key in self.pods else "ADDED"
        self.pods[key] = pod
        self._bump(pod)
        self._record(kind, pod)

    def delete_pod(self, namespace: str, name: str) -> None:
        pod = self.pods.pop((namespace, name))
        self._bump(pod)
        self._record("DELETED", pod)

    def compact(self) -> None:
        """Forget the pod change log, as etcd compaction does: older versions become 410 Gone."""
        self.pod_log.clear()
        self._compacted = self._version

    def break_watches(self, status: int = 410) -> None:
        """Open pod watches fail with ``status`` once they have delivered what is logged
        (``0``: they end cleanly, as on a server timeout)."""
        self._breaks.append(status)
        self._wake()

    def node_annotations(self, name: str) -> dict[str, str]:
        return dict(self.nodes[name]["metadata"].get("annotations") or {})

    def pod_annotations(self, namespace: str, name: str) -> dict[str, str]:
        return dict(self.pods[(namespace, name)]["metadata"].get("annotations") or {})

    # --- the port ----------------------------------------------------------------------------

    async def get_node(self, name: str) -> NodeInfo:
        self._enter("get_node")
        return NodeInfo.from_json(self._node(name))

    async def create_node(self, node: Json) -> None:
        self._enter("create_node")
        created = copy.deepcopy(node)
        meta = created.setdefault("metadata", {})
        name = meta["name"]
        if name in self.nodes:
            raise Conflict(409, f'nodes "{name}" already exists')
        meta.setdefault("uid", f"uid-{name}")
        created.setdefault("status", {})
        self.nodes[name] = created
        self._bump(created)

    async def patch_node(self, name: str, patch: Json) -> None:
        self._enter("patch_node")
        self._patch_into(self.nodes, name, self._node(name), patch)

    async def patch_node_status(self, name: str, patch: Json) -> None:
        self._enter("patch_node_status")
        self._patch_into(self.nodes, name, self._node(name), {"status": patch.get("status", {})})

    async def get_pod(self, namespace: str, name: str) -> PodInfo | None:
        self._enter("get_pod")
        pod = self.pods.get((namespace, name))
        return None if pod is None else PodInfo.from_json(pod)

    async def list_pods(self, node_name: str | None = None) -> Sequence[PodInfo]:
        self._enter("list_pods")
        return [
            PodInfo.from_json(p)
            for p in self.pods.values()
            if node_name is None or (p.get("spec") or {}).get("nodeName") == node_name
        ]

    async def patch_pod(self, namespace: str, name: str, patch: Json) -> None:
        self._enter("patch_pod")
        pod = self.pods.get((namespace, name))
        if pod is None:
            raise KubeError(404, f'pods "{name}" not found')
        self._patch_into(self.pods, (namespace, name), pod, patch)
        self._record("MODIFIED", self.pods[(namespace, name)])

    def watch_pods(self, selector: PodSelector) -> AsyncIterator[PodEvent]:
        return list_and_watch(self, selector)

    async def list_pods_at(self, selector: PodSelector) -> tuple[list[PodInfo], str]:
        self._enter("list_pods")
        pods = [PodInfo.from_json(p) for p in self.pods.values()]
        return [p for p in pods if selector.matches(p)], str(self._version)

    async def watch_pods_from(self, selector: PodSelector, version: str) -> AsyncIterator[PodEvent]:
        self._enter("watch_pods")
        since = int(version or 0)
        if since < self._compacted:
            raise KubeError(410, f"too old resource version: {since} ({self._compacted})")
        breaks = len(self._breaks)
        while True:
            for event in [e for e in self.pod_log if int(e.resource_version) > since]:
                since = int(event.resource_version)
                if selector.matches(event.pod):
                    yield event
            if len(self._breaks) > breaks:
                status = self._breaks[breaks]
                if status:
                    raise KubeError(status, "watch broken by the test")
                return
            self._changed.clear()
            await self._changed.wait()

    async def create_event(self, event: EventSpec) -> None:
        self._enter("create_event")
        self.events.append(event)

    # --- internals ---------------------------------------------------------------------------

    def _enter(self, method: str) -> None:
        self.calls.append(method)
        error = self.fail.get(method)
        if error is not None:
            raise error

    def _node(self, name: str) -> Json:
        node = self.nodes.get(name)
        if node is None:
            raise KubeError(404, f'nodes "{name}" not found')
        return node

    def _patch_into(self, store: dict[Any, Json], key: Any, obj: Json, patch: Json) -> None:
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != obj["metadata"].get("resourceVersion"):
            raise Conflict(409, "the object has been modified; please apply your changes again")
        updated = merge_patch(obj, patch)
        self._bump(updated)
        store[key] = updated

    def _record(self, kind: str, pod: Json) -> None:
        version = pod["metadata"]["resourceVersion"]
        self.pod_log.append(PodEvent(kind, PodInfo.from_json(pod), version))
        self._wake()

    def _wake(self) -> None:
        self._changed.set()

    def _bump(self, obj: Json) -> None:
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)
