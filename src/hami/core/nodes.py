"""Node inventories from node annotations, across every vendor."""

from __future__ import annotations

from collections.abc import Mapping

from hami.api import annotations as codec
from hami.api import keys
from hami.core.model import Device, Node
from hami.core.vendor import Vendor


def node_from_annotations(
    name: str, annotations: Mapping[str, str], vendors: Mapping[str, Vendor]
) -> Node:
    """Decode every vendor's registration on the node (raises WireFormatError naming the key)."""
    devices: list[Device] = []
    for vendor in vendors.values():
        devices.extend(vendor.node_devices(annotations))
    cordoned = frozenset(codec.decode_comma_list(annotations.get(keys.DEVICE_CORDON)))
    return Node(name=name, devices=tuple(devices), cordoned=cordoned)
