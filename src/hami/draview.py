"""The live cluster's DRA state for ``hami explain`` and the web UI (docs/dra.md): its
ResourceClaims and ResourceSlices read through the Kubernetes port, handed to the pure
:mod:`hami.core.dra.explain`. Beside :mod:`hami.devconfig`: below the services that use it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hami.core.dra import explain
from hami.k8s.api import Kind, KubeAPI

CLAIMS = Kind("resourceclaims", "apis/resource.k8s.io/v1", True, "ResourceClaim")
SLICES = Kind("resourceslices", "apis/resource.k8s.io/v1", False, "ResourceSlice")

Manifest = Mapping[str, Any]


async def explain_live(api: KubeAPI, pod: Manifest) -> str:
    """Read every claim and slice (other namespaces' claims consume the same devices), then
    :func:`explain_pod`."""
    claims, slices = await claims_and_slices(api)
    return "\n".join(explain.explain_pod(pod, claims, slices))


async def claims_and_slices(api: KubeAPI) -> tuple[list[Manifest], list[Manifest]]:
    """Every ResourceClaim and ResourceSlice of the cluster (the web UI's and the scheduler
    metrics' DRA source)."""
    claims = (await api.list(CLAIMS)).items
    slices = (await api.list(SLICES)).items
    return list(claims), list(slices)


async def allocations_live(api: KubeAPI) -> dict[str, Any]:
    """:func:`allocations_doc` over every claim and slice of the cluster."""
    claims = (await api.list(CLAIMS)).items
    slices = (await api.list(SLICES)).items
    return explain.allocations_doc(claims, slices)
