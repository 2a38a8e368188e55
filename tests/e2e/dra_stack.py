"""Helpers for the DRA e2e modules: a control plane with kube-controller-manager (the
resource-claim controller), the DeviceClass, kwok nodes labelled for DRA, their slices."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from lightkube import AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Node, Pod
from lightkube.resources.resource_v1 import (
    DeviceClass,
    ResourceClaim,
    ResourceClaimTemplate,
    ResourceSlice,
)

from hami.agent.dra.slices import device_class
from hami.api.admission import PatchOp
from hami.cluster.binaries import find_node_binaries
from hami.cluster.control_plane import ClusterOptions, LocalCluster
from hami.core.dra import names
from tests.e2e.localcluster import create_gpu_node, gpu_node

Claim = ResourceClaim
ClaimTemplate = ResourceClaimTemplate
Slice = ResourceSlice


def dra_cluster(tmp: Path, name: str, **options: Any) -> Iterator[LocalCluster]:
    """A local control plane with kube-controller-manager (claims from templates)."""
    manager = find_node_binaries().kube_controller_manager
    cluster = LocalCluster(
        ClusterOptions(run_dir=tmp, name=name, controller_manager=manager, **options)
    ).start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def ensure_device_class(client: AsyncClient) -> None:
    try:
        await client.create(cast(DeviceClass, DeviceClass.from_dict(device_class())))
    except Exception as exc:  # already there (a second test in the module)
        if "AlreadyExists" not in str(exc) and "already exists" not in str(exc):
            raise


async def create_dra_nodes(client: AsyncClient, count: int, prefix: str = "dra-") -> list[str]:
    """kwok nodes labelled ``hami.io/dra=true``, without any extended GPU resource."""
    nodes = [f"{prefix}{i:03d}" for i in range(count)]
    labels = {names.DRA_NODE_LABEL: names.DRA_NODE_VALUE}
    gate = asyncio.Semaphore(16)

    async def one(node: str) -> None:
        async with gate:
            await create_gpu_node(client, node, gpus=0, labels=labels, wait_ready=False)

    await asyncio.gather(*(one(n) for n in nodes))
    return nodes


def apply_patch(manifest: dict[str, Any], ops: Sequence[PatchOp]) -> dict[str, Any]:
    """Apply the webhook's ``add`` operations (whole-value adds at existing parents)."""
    for op in ops:
        assert op.op == "add", op
        *parents, last = op.path.strip("/").split("/")
        target: Any = manifest
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[last] = op.value
    return manifest


def pod_manifest(
    name: str,
    namespace: str,
    containers: Mapping[str, Mapping[str, str]],
    annotations: Mapping[str, str] | None = None,
    node_selector: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A pod whose containers ask HAMi's resources (container name → limits)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "nodeSelector": dict(node_selector or {}),
            "containers": [
                {"name": c, "image": "busybox", "resources": {"limits": dict(limits)}}
                for c, limits in containers.items()
            ],
        },
    }


__all__ = [
    "Claim",
    "ClaimTemplate",
    "DeviceClass",
    "Node",
    "ObjectMeta",
    "Pod",
    "Slice",
    "apply_patch",
    "create_dra_nodes",
    "device_class",
    "dra_cluster",
    "ensure_device_class",
    "gpu_node",
    "pod_manifest",
    "pytest",
]
