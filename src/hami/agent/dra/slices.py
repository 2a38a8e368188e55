"""Pure: a node's GPUs → the ResourceSlice that publishes them (resource.k8s.io/v1).

One slice per node and driver; the pool is named after the node and its generation goes up
whenever the published devices change, so the scheduler never mixes two versions of a pool.
Each GPU is one device that may be allocated many times (``allowMultipleAllocations``) with
consumable ``cores`` and ``memory`` (KEP-5075): the scheduler itself keeps the sum of the
claims' ``consumedCapacity`` within each device's capacity.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hami.agent.discovery.port import NVLINK_SCORE
from hami.agent.values import Gpu
from hami.api.types import PairScores
from hami.core.dra import names

Manifest = dict[str, Any]
DEVICES_HASH = "hami.io/dra-devices-hash"  # annotation: what the slice's devices were built from


@dataclass(frozen=True, slots=True)
class SliceDevice:
    """One published GPU: what discovery said plus what the node settings add."""

    gpu: Gpu
    memory_bytes: int
    nvlink_group: int


def nvlink_groups(gpus: Sequence[Gpu], pairs: Sequence[PairScores]) -> dict[str, int]:
    """uuid → NVLink group: GPUs joined by NVLink (directly or through others) share a group,
    named by the smallest index in it; a GPU without NVLink is a group of its own."""
    index = {g.uuid: g.index for g in gpus}
    parent = {g.uuid: g.uuid for g in gpus}

    def root(uuid: str) -> str:
        while parent[uuid] != uuid:
            parent[uuid] = parent[parent[uuid]]
            uuid = parent[uuid]
        return uuid

    for pair in pairs:
        for peer, score in pair.scores.items():
            if score >= NVLINK_SCORE and pair.uuid in parent and peer in parent:
                a, b = root(pair.uuid), root(peer)
                if a != b:
                    parent[max(a, b, key=index.__getitem__)] = min(a, b, key=index.__getitem__)
    return {uuid: index[root(uuid)] for uuid in parent}


def slice_devices(
    gpus: Sequence[Gpu],
    pairs: Sequence[PairScores],
    *,
    healthy: Mapping[str, bool] | None = None,
    memory_scaling: float = 1.0,
    preconfigured_mib: int = 0,
) -> list[SliceDevice]:
    """The devices to publish: healthy GPUs only (an unhealthy GPU leaves the pool, so no new
    claim lands on it; claims already prepared keep running), in index order."""
    groups = nvlink_groups(gpus, pairs)
    out = []
    for gpu in sorted(gpus, key=lambda g: g.index):
        if not (healthy or {}).get(gpu.uuid, gpu.healthy):
            continue
        mib = gpu.memory_mib or preconfigured_mib
        out.append(SliceDevice(gpu, int(mib * memory_scaling) * names.MIB, groups[gpu.uuid]))
    return out


def device(item: SliceDevice) -> Manifest:
    """One ``spec.devices[]`` entry (HAMi-DRA's names and capacities, plus topology)."""
    gpu = item.gpu
    attributes: Manifest = {
        names.ATTR_UUID: {"string": gpu.uuid},
        names.ATTR_PRODUCT: {"string": gpu.model},
        names.ATTR_MINOR: {"int": gpu.index},
        names.ATTR_TYPE: {"string": names.DEVICE_TYPE},
        names.ATTR_NVLINK: {"int": item.nvlink_group},
        names.ATTR_NUMA: {"int": gpu.numa},
    }
    if gpu.bus_id:
        attributes[names.ATTR_BUS_ID] = {"string": gpu.bus_id}
    return {
        "name": names.device_name(gpu.index),
        "allowMultipleAllocations": True,
        "attributes": attributes,
        "capacity": {
            names.CORES: {
                "value": "100",
                "requestPolicy": {
                    "default": "0",
                    "validRange": {"min": "0", "max": "100", "step": "1"},
                },
            },
            names.MEMORY: {
                "value": str(item.memory_bytes),
                "requestPolicy": {
                    "default": str(item.memory_bytes),
                    "validRange": {
                        "min": str(names.MIB),
                        "max": str(item.memory_bytes),
                        "step": str(names.MIB),
                    },
                },
            },
        },
    }


def slice_name(node: str) -> str:
    return f"{node}-hami-core-gpu"


def resource_slice(
    node: str, devices: Sequence[SliceDevice], generation: int, node_uid: str = ""
) -> Manifest:
    """The node's one slice; owned by its Node (when ``node_uid`` is known), so it goes with it."""
    built = [device(d) for d in devices]
    meta: Manifest = {
        "name": slice_name(node),
        "labels": {names.DRA_NODE_LABEL: names.DRA_NODE_VALUE},
        "annotations": {DEVICES_HASH: devices_hash(built)},
    }
    if node_uid:
        meta["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid, "controller": True}
        ]
    return {
        "apiVersion": names.RESOURCE_API,
        "kind": "ResourceSlice",
        "metadata": meta,
        "spec": {
            "driver": names.DRIVER,
            "nodeName": node,
            "pool": {"name": node, "generation": generation, "resourceSliceCount": 1},
            "devices": built,
        },
    }


def devices_hash(devices: Sequence[Manifest]) -> str:
    """A digest of the devices as built here (the API server rewrites quantities, so the
    slice it returns cannot be compared with a fresh build field by field)."""
    text = json.dumps(list(devices), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def next_generation(current: Manifest | None, wanted: Manifest) -> int | None:
    """The pool generation to publish slice ``wanted`` with: None when ``current`` (the slice
    in the API) already publishes the same devices, else one more than its generation (1 for a
    new slice)."""
    if current is None:
        return 1
    have = ((current.get("metadata") or {}).get("annotations") or {}).get(DEVICES_HASH)
    if have == wanted["metadata"]["annotations"][DEVICES_HASH]:
        return None
    pool = (current.get("spec") or {}).get("pool") or {}
    return int(pool.get("generation", 0)) + 1


def device_class(extended_resource_name: str = "") -> Manifest:
    """The DeviceClass of the driver's devices (the chart renders the same one)."""
    spec: Manifest = {"selectors": [{"cel": {"expression": f'device.driver == "{names.DRIVER}"'}}]}
    if extended_resource_name:
        spec["extendedResourceName"] = extended_resource_name
    return {
        "apiVersion": names.RESOURCE_API,
        "kind": "DeviceClass",
        "metadata": {"name": names.DEVICE_CLASS},
        "spec": spec,
    }
