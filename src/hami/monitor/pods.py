"""The pods of this node, as the monitor needs them (through the `KubeAPI` port)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from hami.api import annotations as codec
from hami.api import keys
from hami.api.errors import WireFormatError
from hami.api.types import MigAllocation
from hami.k8s import objects
from hami.k8s.api import PODS, KubeAPI, Manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PodInfo:
    uid: str
    namespace: str
    name: str
    containers: tuple[str, ...]  # init containers first, then regular (device-list order)
    mig: tuple[MigAllocation, ...] = ()

    def position(self, container: str) -> int | None:
        try:
            return self.containers.index(container)
        except ValueError:
            return None


def _names(spec: Manifest, field: str) -> list[str]:
    items = spec.get(field)
    if not isinstance(items, list):
        return []
    return [str(c.get("name", "")) for c in items if isinstance(c, Mapping)]


def pod_info(pod: Manifest) -> PodInfo:
    spec = objects.spec(pod)
    containers = (*_names(spec, "initContainers"), *_names(spec, "containers"))
    value = objects.annotations(pod).get(keys.MIG_ALLOCATIONS)
    mig: tuple[MigAllocation, ...] = ()
    if value:
        try:
            mig = codec.decode_mig_allocations(value)
        except WireFormatError as exc:
            log.warning("pod %s: ignoring its MIG allocations: %s", objects.key(pod), exc)
    return PodInfo(objects.uid(pod), objects.namespace(pod), objects.name(pod), containers, mig)


async def node_pods(kube: KubeAPI, node: str) -> dict[str, PodInfo]:
    """The pods bound to ``node`` by UID; raises `KubeAPIError`."""
    listed = await kube.list(PODS, field_selector=f"spec.nodeName={node}")
    infos = (pod_info(p) for p in listed.items)
    return {info.uid: info for info in infos if info.uid}
