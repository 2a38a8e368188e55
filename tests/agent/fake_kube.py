"""The device plugin's port for unit tests: `KubeAPIPort` over hami.k8s's one in-memory
`FakeKube`, with the agent tests' helpers — port calls recorded by name, a fault per port
method, the Events written, nodes and pods seeded and read back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from hami.k8s import fake, objects
from hami.k8s.api import NODES, PODS, KubeAPIError
from hami.k8s.port import KubeAPIPort
from hami.k8s.views import EventSpec, Json, NodeInfo, PodEvent, PodInfo, PodSelector
from hami.k8s.watch import Backoff


class FakeKube(KubeAPIPort):
    def __init__(
        self,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.store = fake.FakeKube()
        super().__init__(self.store, backoff, sleep)
        self.calls: list[str] = []  # port methods, in call order
        self.fail: dict[str, KubeAPIError] = {}  # port method -> the error it raises
        self.events: list[EventSpec] = []

    # --- seeding and reading back (no call recorded) -----------------------------------------

    def add_node(self, name: str, annotations: Mapping[str, str] | None = None) -> None:
        meta = {"name": name, "uid": f"uid-{name}", "annotations": dict(annotations or {})}
        self.store.put(NODES, {"metadata": meta, "status": {}})

    def add_pod(self, pod: Json) -> None:
        meta = pod.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        meta.setdefault("uid", f"uid-{meta['name']}")
        self.store.put(PODS, pod)

    def delete_pod(self, namespace: str, name: str) -> None:
        self.store.remove(PODS, name, namespace)

    def compact(self) -> None:
        """Forget the change log, as etcd compaction does: older versions become 410 Gone."""
        self.store.forget_history()

    @property
    def nodes(self) -> dict[str, dict[str, Any]]:
        return {objects.name(n): n for n in self.store.all(NODES)}

    @property
    def pods(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {(objects.namespace(p), objects.name(p)): p for p in self.store.all(PODS)}

    @property
    def pod_log(self) -> list[PodEvent]:
        """Every pod change since the last `compact`, oldest first."""
        return [
            PodEvent(e.type, PodInfo.from_json(e.object), objects.resource_version(e.object))
            for e in self.store.history(PODS)
        ]

    def node_annotations(self, name: str) -> dict[str, str]:
        return dict(self.nodes[name]["metadata"].get("annotations") or {})

    def pod_annotations(self, namespace: str, name: str) -> dict[str, str]:
        return dict(self.pods[(namespace, name)]["metadata"].get("annotations") or {})

    # --- the port, recorded ------------------------------------------------------------------

    def _enter(self, method: str) -> None:
        self.calls.append(method)
        error = self.fail.get(method)
        if error is not None:
            raise error

    async def get_node(self, name: str) -> NodeInfo:
        self._enter("get_node")
        return await super().get_node(name)

    async def create_node(self, node: Json) -> None:
        self._enter("create_node")
        await super().create_node(node)

    async def patch_node(self, name: str, patch: Json) -> None:
        self._enter("patch_node")
        await super().patch_node(name, patch)

    async def patch_node_status(self, name: str, patch: Json) -> None:
        self._enter("patch_node_status")
        await super().patch_node_status(name, patch)

    async def get_pod(self, namespace: str, name: str) -> PodInfo | None:
        self._enter("get_pod")
        return await super().get_pod(namespace, name)

    async def list_pods(self, node_name: str | None = None) -> Sequence[PodInfo]:
        self._enter("list_pods")
        return await super().list_pods(node_name)

    async def patch_pod(self, namespace: str, name: str, patch: Json) -> None:
        self._enter("patch_pod")
        await super().patch_pod(namespace, name, patch)

    async def create_event(self, event: EventSpec) -> None:
        self._enter("create_event")
        await super().create_event(event)
        self.events.append(event)

    def watch_pods(self, selector: PodSelector) -> AsyncIterator[PodEvent]:
        self._enter("watch_pods")
        return super().watch_pods(selector)

    def api_calls(self, op: str) -> int:
        """How often the port called ``op`` (``list``, ``watch``…) on pods of the API."""
        return sum(1 for verb, plural, _ in self.store.calls if verb == op and plural == "pods")
