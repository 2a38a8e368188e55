"""The typed calls the device plugin makes, over any `KubeAPI` (the real `LightkubeAPI` or
the in-memory `FakeKube`): one port, one client, one fake, one watch loop for every service.
Errors are the `KubeAPIError` family; a missing pod is None."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Protocol

from hami.api.keys import NODE_LOCK
from hami.k8s import nodelock, objects
from hami.k8s.api import EVENTS, NODE_STATUS, NODES, PODS, KubeAPI, NotFound, ObjectList
from hami.k8s.views import EventSpec, Json, NodeInfo, PodEvent, PodInfo, PodSelector, event_json
from hami.k8s.watch import Backoff, list_then_watch


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
        """List, then watch, forever (`hami.k8s.watch.list_then_watch`): ADDED per listed
        pod, DELETED for a known pod missing from a re-list, then the changes."""
        ...

    async def create_event(self, event: EventSpec) -> None: ...

    async def release_node_lock(
        self, node_name: str, pod: PodInfo, node: NodeInfo | None = None, key: str = NODE_LOCK
    ) -> None:
        """Remove lock ``key`` from the node if ``pod`` holds it (`hami.k8s.nodelock`);
        ``node``: a recent read of the node, saving the first GET."""
        ...


class KubeAPIPort:
    """`KubePort` over a `KubeAPI`."""

    def __init__(
        self,
        api: KubeAPI,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.api = api
        self._backoff = backoff
        self._sleep = sleep

    async def close(self) -> None:
        await self.api.close()

    async def get_node(self, name: str) -> NodeInfo:
        return NodeInfo.from_json(await self.api.get(NODES, name))

    async def create_node(self, node: Json) -> None:
        await self.api.create(NODES, node)

    async def patch_node(self, name: str, patch: Json) -> None:
        await self.api.merge_patch(NODES, name, patch)

    async def patch_node_status(self, name: str, patch: Json) -> None:
        await self.api.merge_patch(NODE_STATUS, name, {"status": patch.get("status", {})})

    async def get_pod(self, namespace: str, name: str) -> PodInfo | None:
        try:
            return PodInfo.from_json(await self.api.get(PODS, name, namespace))
        except NotFound:
            return None

    async def list_pods(self, node_name: str | None = None) -> Sequence[PodInfo]:
        selector = PodSelector(node_name=node_name).field_selector() if node_name else None
        listed = await self.api.list(PODS, field_selector=selector)
        return [PodInfo.from_json(p) for p in listed.items]

    async def patch_pod(self, namespace: str, name: str, patch: Json) -> None:
        await self.api.merge_patch(PODS, name, patch, namespace)

    async def create_event(self, event: EventSpec) -> None:
        await self.api.create(EVENTS, event_json(event), event.namespace)

    async def release_node_lock(
        self, node_name: str, pod: PodInfo, node: NodeInfo | None = None, key: str = NODE_LOCK
    ) -> None:
        async def read() -> NodeInfo:
            return await self.get_node(node_name)

        async def patch(body: Json) -> None:
            await self.patch_node(node_name, body)

        await nodelock.release_node_lock(read, patch, pod.namespace, pod.name, key=key, node=node)

    async def watch_pods(self, selector: PodSelector) -> AsyncIterator[PodEvent]:
        known: dict[str, PodInfo] = {}
        stream = list_then_watch(
            self.api,
            PODS,
            field_selector=selector.field_selector(),
            backoff=self._backoff,
            sleep=self._sleep,
        )
        async for item in stream:
            if isinstance(item, ObjectList):
                for event in resync_events(known, map(PodInfo.from_json, item.items)):
                    yield event
                continue
            pod = PodInfo.from_json(item.object)
            if item.type == "DELETED":
                known.pop(pod.uid, None)
            else:
                known[pod.uid] = pod
            yield PodEvent(item.type, pod, objects.resource_version(item.object))


def resync_events(known: dict[str, PodInfo], pods: Iterable[PodInfo]) -> list[PodEvent]:
    """After a (re-)list: DELETED for known pods no longer there, then ADDED for every listed
    pod; ``known`` (uid → pod) is updated in place."""
    listed = {p.uid: p for p in pods}
    gone = [PodEvent("DELETED", known[uid]) for uid in known.keys() - listed.keys()]
    known.clear()
    known.update(listed)
    return [*gone, *(PodEvent("ADDED", p) for p in listed.values())]
