"""The pods of this node, as the monitor needs them (through the `KubeAPI` port): the typed
`hami.k8s.views.PodInfo` every service reads, and the MIG allocations on it."""

from __future__ import annotations

import functools
import logging

from hami.api import annotations as codec
from hami.api import keys
from hami.api.errors import WireFormatError
from hami.api.types import MigAllocation
from hami.k8s.api import PODS, KubeAPI
from hami.k8s.views import PodInfo

log = logging.getLogger(__name__)


def mig_allocations(pod: PodInfo) -> tuple[MigAllocation, ...]:
    """The pod's `hami.io/vgpu-mig-allocations`; none (logged once) when it does not decode."""
    value = pod.annotations.get(keys.MIG_ALLOCATIONS)
    return _decoded(pod.ref, value) if value else ()


@functools.lru_cache(maxsize=1024)
def _decoded(ref: str, value: str) -> tuple[MigAllocation, ...]:
    try:
        return codec.decode_mig_allocations(value)
    except WireFormatError as exc:
        log.warning("pod %s: ignoring its MIG allocations: %s", ref, exc)
        return ()


async def node_pods(kube: KubeAPI, node: str) -> dict[str, PodInfo]:
    """The pods bound to ``node`` by UID; raises `KubeAPIError`."""
    listed = await kube.list(PODS, field_selector=f"spec.nodeName={node}")
    infos = (PodInfo.from_json(p) for p in listed.items)
    return {info.uid: info for info in infos if info.uid}
