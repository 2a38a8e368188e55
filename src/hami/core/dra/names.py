"""The names DRA mode shares with HAMi-DRA (driver, devices, capacities) and its own label."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

DRIVER: Final = "hami-core-gpu.project-hami.io"
DEVICE_CLASS: Final = DRIVER  # the DeviceClass that selects the driver's devices
DEVICE_PREFIX: Final = "hami-gpu-"  # device name: hami-gpu-<minor>
CORES: Final = "cores"  # consumable capacity: percent of the GPU's SMs, 0–100
MEMORY: Final = "memory"  # consumable capacity: bytes, in steps of 1 MiB
MIB: Final = 1024 * 1024

# attributes (unqualified ones belong to the driver's domain)
ATTR_UUID: Final = "uuid"
ATTR_PRODUCT: Final = "productName"
ATTR_MINOR: Final = "minor"
ATTR_TYPE: Final = "type"
ATTR_BUS_ID: Final = "pcieBusID"
ATTR_NVLINK: Final = "nvlinkGroup"
ATTR_NUMA: Final = "resource.kubernetes.io/numaNode"
DEVICE_TYPE: Final = "hami-gpu"

# The node label that puts a node in DRA mode: the DRA plugin serves it, the extender skips it,
# and a pod whose nodeSelector carries it is translated to a ResourceClaimTemplate.
DRA_NODE_LABEL: Final = "hami.io/dra"
DRA_NODE_VALUE: Final = "true"

# CDI: one spec file per prepared claim, kind <vendor>/<class>
CDI_VENDOR: Final = DRIVER
CDI_CLASS: Final = "claim"
CDI_KIND: Final = f"{CDI_VENDOR}/{CDI_CLASS}"

RESOURCE_API: Final = "resource.k8s.io/v1"


def qualified(attribute: str) -> str:
    """The attribute's full name, as `matchAttribute` needs it."""
    return attribute if "/" in attribute else f"{DRIVER}/{attribute}"


def device_name(minor: int) -> str:
    return f"{DEVICE_PREFIX}{minor}"


def is_dra_node(labels: Mapping[str, str] | None) -> bool:
    """True for a node labelled :data:`DRA_NODE_LABEL` = :data:`DRA_NODE_VALUE`."""
    return bool(labels) and labels.get(DRA_NODE_LABEL) == DRA_NODE_VALUE  # type: ignore[union-attr]
