"""The one set of test builders for Kubernetes-shaped objects (issue 20): a container, a pod
manifest, a pod HAMi has placed, one device of a pod's allocation annotation.

Each test folder's own builders (``tests/core/builders.py``, ``tests/agent/builders.py``,
``tests/scheduler/harness.py``, ``tests/vendors/helpers.py``) only add their room's defaults on
top of these: resource names, typed-core objects, fakes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hami.api import keys
from hami.api.types import ContainerDevice


def container_device(
    uuid: str, mem: int = 3000, cores: int = 30, vendor: str = keys.NVIDIA_VENDOR
) -> ContainerDevice:
    """One device of a container's share, as the allocation annotations carry it."""
    return ContainerDevice(uuid=uuid, type=vendor, usedmem=mem, usedcores=cores)


def container(
    name: str = "c",
    limits: Mapping[str, object] | None = None,
    *,
    requests: Mapping[str, object] | None = None,
    image: str | None = None,
) -> dict[str, Any]:
    """A container: ``resources`` only when ``limits`` or ``requests`` is given (even empty)."""
    out: dict[str, Any] = {"name": name}
    if image is not None:
        out["image"] = image
    resources: dict[str, Any] = {}
    if limits is not None:
        resources["limits"] = dict(limits)
    if requests is not None:
        resources["requests"] = dict(requests)
    if limits is not None or requests is not None:
        out["resources"] = resources
    return out


def pod(
    name: str,
    *containers: Mapping[str, Any],
    namespace: str = "default",
    uid: str | None = None,
    annotations: Mapping[str, str] | None = None,
    node: str | None = None,
    scheduler: str | None = None,
    init: Sequence[Mapping[str, Any]] | None = None,
    phase: str | None = None,
    typed: bool = False,
    **metadata: Any,
) -> dict[str, Any]:
    """A pod manifest; each optional part (uid, annotations, nodeName, schedulerName,
    initContainers, status.phase, apiVersion/kind when ``typed``) only when given."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace, **metadata}
    if uid is not None:
        meta["uid"] = uid
    if annotations is not None:
        meta["annotations"] = dict(annotations)
    spec: dict[str, Any] = {}
    if scheduler is not None:
        spec["schedulerName"] = scheduler
    if node is not None:
        spec["nodeName"] = node
    if init is not None:
        spec["initContainers"] = list(init)
    spec["containers"] = list(containers)
    out: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod"} if typed else {}
    out.update(metadata=meta, spec=spec)
    if phase is not None:
        out["status"] = {"phase": phase}
    return out


def placed_pod(
    name: str,
    node: str,
    allocated: str,
    *containers: Mapping[str, Any],
    namespace: str = "default",
    phase: str = "Running",
    **options: Any,
) -> dict[str, Any]:
    """A pod HAMi's scheduler has placed on ``node`` (``hami.io/vgpu-node``) with the NVIDIA
    allocation annotation ``allocated``; the pod itself not bound unless ``options`` say so."""
    notes = {keys.VGPU_NODE: node, keys.NVIDIA_ALLOCATED: allocated}
    notes.update(options.pop("annotations", None) or {})
    return pod(name, *containers, namespace=namespace, annotations=notes, phase=phase, **options)


def dra_claim(
    pod: str, node: str, memory: str, cores: str, pod_claim: str = "gpu-0"
) -> dict[str, Any]:
    """A ResourceClaim owned by ``pod`` in namespace ``ml``, allocated on ``node``'s
    ``hami-gpu-0`` with ``memory`` and ``cores`` consumed (its pod claim ``pod_claim``)."""
    result = {
        "driver": "hami-core-gpu.project-hami.io",
        "pool": node,
        "device": "hami-gpu-0",
        "request": "gpu",
        "consumedCapacity": {"memory": memory, "cores": cores},
    }
    return {
        "metadata": {
            "name": f"{pod}-{pod_claim}-x",
            "namespace": "ml",
            "ownerReferences": [{"kind": "Pod", "name": pod}],
            "annotations": {"resource.kubernetes.io/pod-claim-name": pod_claim},
        },
        "status": {"allocation": {"devices": {"results": [result]}}},
    }


def dra_slice(
    node: str, uuid: str = "", product: str = "NVIDIA A100", minor: int | None = None
) -> dict[str, Any]:
    """``node``'s ResourceSlice of hami's DRA driver with one device ``hami-gpu-0`` (40 GiB,
    100 cores); its uuid ``GPU-<node>`` unless given, its ``minor`` attribute only if given."""
    attributes: dict[str, Any] = {
        "uuid": {"string": uuid or f"GPU-{node}"},
        "productName": {"string": product},
    }
    if minor is not None:
        attributes["minor"] = {"int": minor}
    device = {
        "name": "hami-gpu-0",
        "attributes": attributes,
        "capacity": {"memory": {"value": "40Gi"}, "cores": {"value": "100"}},
    }
    return {
        "metadata": {"name": f"{node}-hami-core-gpu"},
        "spec": {
            "driver": "hami-core-gpu.project-hami.io",
            "nodeName": node,
            "pool": {"name": node},
            "devices": [device],
        },
    }
