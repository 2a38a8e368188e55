"""An in-memory `KubePort` for unit tests: merge-patch semantics, resourceVersion checks,
recorded events and injectable failures."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from hami.agent.errors import Conflict, KubeError
from hami.agent.kube import EventSpec, Json, NodeInfo, PodInfo


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
        self._version = 0

    # --- test helpers ----------------------------------------------------------------------

    def add_node(self, name: str, annotations: Mapping[str, str] | None = None) -> None:
        meta = {"name": name, "uid": f"uid-{name}", "annotations": dict(annotations or {})}
        self.nodes[name] = {"metadata": meta, "status": {}}
        self._bump(self.nodes[name])

    def add_pod(self, pod: Json) -> None:
        meta = pod.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        meta.setdefault("uid", f"uid-{meta['name']}")
        self.pods[(meta["namespace"], meta["name"])] = pod
        self._bump(pod)

    def node_annotations(self, name: str) -> dict[str, str]:
        return dict(self.nodes[name]["metadata"].get("annotations") or {})

    def pod_annotations(self, namespace: str, name: str) -> dict[str, str]:
        return dict(self.pods[(namespace, name)]["metadata"].get("annotations") or {})

    # --- the port ----------------------------------------------------------------------------

    async def get_node(self, name: str) -> NodeInfo:
        self._enter("get_node")
        return NodeInfo.from_json(self._node(name))

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

    def _bump(self, obj: Json) -> None:
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)
