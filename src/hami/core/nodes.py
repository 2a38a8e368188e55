"""Node inventories from node annotations, across every vendor."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import cast

from hami.api import annotations as codec
from hami.api import keys
from hami.api.errors import WireFormatError
from hami.core.model import Device, Node
from hami.core.request import mapping
from hami.core.vendor import Vendor


def node_from_annotations(
    name: str, annotations: Mapping[str, str], vendors: Mapping[str, Vendor]
) -> Node:
    """Decode every vendor's registration on the node (raises WireFormatError naming the vendor,
    the key and the field)."""
    devices: list[Device] = []
    for vendor in vendors.values():
        try:
            devices.extend(vendor.node_devices(annotations))
        except WireFormatError as exc:
            raise exc.for_vendor(vendor.key) from None
    cordoned = frozenset(codec.decode_comma_list(annotations.get(keys.DEVICE_CORDON)))
    return Node(name=name, devices=tuple(devices), cordoned=cordoned)


def _strings(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in cast(Mapping[object, object], value).items()}


def node_from_manifest(manifest: Mapping[str, object], vendors: Mapping[str, Vendor]) -> Node:
    """Every vendor's devices of a Node object: registration annotations, plus `status.capacity`
    for vendors that register that way (Cambricon, Moore Threads, MetaX GPU, Enflame, Kunlun).
    Raises WireFormatError naming the vendor, the key and the field."""
    meta = mapping(manifest.get("metadata"))
    name = str(meta.get("name") or "")
    annotations = _strings(meta.get("annotations"))
    labels = _strings(meta.get("labels"))
    capacity = _strings(mapping(manifest.get("status")).get("capacity"))
    node = node_from_annotations(name, annotations, vendors)
    extra: list[Device] = []
    for vendor in vendors.values():
        try:
            extra.extend(vendor.capacity_devices(name, capacity, labels, annotations))
        except WireFormatError as exc:
            raise exc.for_vendor(vendor.key) from None
    if not extra:
        return node
    return dataclasses.replace(node, devices=(*node.devices, *extra))
