"""The DRA plugin's Kubernetes port: its node, its ResourceSlices and the claims it prepares.

:class:`DraKube` is the protocol the plugin and the simulate twin use (an in-memory fake in
tests/dra); :class:`LightkubeDra` implements it over a lightkube ``AsyncClient``. Manifests are
plain dicts on both sides.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.resources.core_v1 import Event, Node
from lightkube.resources.resource_v1 import ResourceClaim, ResourceSlice

from hami.agent.dra.slices import next_generation
from hami.core.dra import names
from hami.k8s.views import EventSpec, event_json

Manifest = dict[str, Any]
FIELD_MANAGER = "hami-dra-plugin"


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What the plugin reads of its Node: the UID (owner of its slice) and the container
    runtime (``status.nodeInfo.containerRuntimeVersion``, "" before kubelet reports it)."""

    uid: str = ""
    runtime: str = ""


class DraKube(Protocol):
    async def node(self, name: str) -> NodeFacts:
        """The Node's facts (empty ones when it does not exist)."""
        ...

    async def record_event(self, event: EventSpec) -> None: ...

    async def get_slice(self, name: str) -> Manifest | None: ...

    async def put_slice(self, manifest: Mapping[str, Any], create: bool) -> None: ...

    async def delete_slice(self, name: str) -> None: ...

    async def get_claim(self, namespace: str, name: str) -> Manifest | None: ...

    async def close(self) -> None: ...


async def publish(kube: DraKube, wanted: Manifest) -> int | None:
    """Make the API hold slice ``wanted`` (its generation is chosen here): returns the pool
    generation published, or None when the slice was already current."""
    current = await kube.get_slice(wanted["metadata"]["name"])
    generation = next_generation(current, wanted)
    if generation is None:
        return None
    wanted["spec"]["pool"]["generation"] = generation
    if current is not None:
        wanted["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    await kube.put_slice(wanted, create=current is None)
    return generation


class LightkubeDra:
    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    @classmethod
    def from_kubeconfig(cls, path: str | None = None) -> LightkubeDra:
        config = KubeConfig.from_file(path) if path else KubeConfig.from_env()
        return cls(AsyncClient(config=config, field_manager=FIELD_MANAGER))

    async def close(self) -> None:
        await self.client.close()

    async def node(self, name: str) -> NodeFacts:
        try:
            node = await self.client.get(Node, name)
        except ApiError as exc:
            if exc.status.code == 404:
                return NodeFacts()
            raise
        info = node.status.nodeInfo if node.status else None
        return NodeFacts(
            uid=str(node.metadata.uid if node.metadata else "") or "",
            runtime=str(info.containerRuntimeVersion if info else "") or "",
        )

    async def record_event(self, event: EventSpec) -> None:
        await self.client.create(cast(Event, Event.from_dict(event_json(event))))

    async def get_slice(self, name: str) -> Manifest | None:
        try:
            found = await self.client.get(ResourceSlice, name)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise
        return dict(found.to_dict())

    async def put_slice(self, manifest: Mapping[str, Any], create: bool) -> None:
        obj = cast(ResourceSlice, ResourceSlice.from_dict(dict(manifest)))
        if create:
            await self.client.create(obj)
        else:
            await self.client.replace(obj)

    async def delete_slice(self, name: str) -> None:
        with contextlib.suppress(ApiError):
            await self.client.delete(ResourceSlice, name)

    async def get_claim(self, namespace: str, name: str) -> Manifest | None:
        try:
            found = await self.client.get(ResourceClaim, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise
        return dict(found.to_dict())

    async def list_slices(self) -> Sequence[Manifest]:
        return [
            dict(s.to_dict())
            async for s in self.client.list(
                ResourceSlice, labels={names.DRA_NODE_LABEL: names.DRA_NODE_VALUE}
            )
        ]
