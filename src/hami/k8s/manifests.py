"""Node manifests of any vendor's nodes, for ``hami device-plugin --simulate --node-manifests``
and ``hami demo`` (here, below both).

A manifest is a Kubernetes Node as its vendor's device plugin leaves it — the format of
``hami sim``'s CLUSTER.yaml (e.g. ``examples/vendors/cluster.yaml``): registration annotations,
labels, and ``status.capacity`` for vendors that register through capacity. Pods in the file
(``hami sim``'s placed pods) are skipped. What a vendor needs beyond the manifest comes from
its vendor object (:func:`hami.vendors.registry.build` over the shared config file):

* its devices on the node (``node_devices``, ``capacity_devices``): a node registering no
  device of an enabled vendor is an error;
* its count resource (``registration_health``): when the manifest leaves it out it is
  advertised as kubelet would — capacity = every device's task count, allocatable = the
  healthy devices' — so the scheduler's liveness check holds;
* its handshake key (``registration_health``), answered by the player
  (:mod:`hami.agent.simulation.vendornodes`).

Every problem raises :class:`~hami.core.errors.ConfigError` naming the file, the document or
node, and the field.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from hami.api.errors import WireFormatError
from hami.api.quantity import parse_quantity
from hami.core.errors import ConfigError
from hami.core.model import Device
from hami.core.vendor import Vendor
from hami.k8s.files import ManifestFileError, documents

# What a kwok node needs besides its devices (NodeResourcesFit rejects a node without pods).
BASE_CAPACITY = {"cpu": "32", "memory": "256Gi", "pods": "110"}
KWOK_ANNOTATIONS = {"kwok.x-k8s.io/node": "fake"}  # kwok manages nodes carrying it


@dataclass(frozen=True, slots=True)
class ManifestNode:
    """One node to play: what it registers and advertises, and which handshakes to answer."""

    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    capacity: Mapping[str, str]
    allocatable: Mapping[str, str]
    vendors: tuple[str, ...]  # vendor keys with devices on the node
    handshakes: tuple[str, ...] = ()  # handshake annotation keys to answer

    def status(self) -> dict[str, Any]:
        """The status subresource patch (capacity and allocatable)."""
        return {"status": {"capacity": dict(self.capacity), "allocatable": dict(self.allocatable)}}

    def to_object(self, annotations: Mapping[str, str]) -> dict[str, Any]:
        """The kwok Node to create, with ``annotations`` added (handshake answers)."""
        labels = {"kubernetes.io/hostname": self.name, "type": "kwok", **self.labels}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": labels,
                "annotations": {**KWOK_ANNOTATIONS, **self.annotations, **annotations},
            },
            **self.status(),
        }


def load_manifests(paths: Sequence[Path], vendors: Mapping[str, Vendor]) -> list[ManifestNode]:
    """Every Node of the files, in order; a name defined twice is an error."""
    nodes: list[ManifestNode] = []
    seen: dict[str, Path] = {}
    for path in paths:
        for node in load_manifest(path, vendors):
            if node.name in seen:
                raise ConfigError(
                    f"{path}: Node {node.name}: defined more than once (also in {seen[node.name]})"
                )
            seen[node.name] = path
            nodes.append(node)
    return nodes


def load_manifest(path: Path, vendors: Mapping[str, Vendor]) -> list[ManifestNode]:
    nodes = []
    for number, doc in _documents(path):
        kind = doc.get("kind")
        if kind == "Pod":
            continue
        name = _name(doc)
        where = f"{path}: Node {name}" if name else f"{path}: document {number}"
        if kind != "Node":
            raise ConfigError(f"{where}: kind: {kind!r} is not supported (use Node)")
        if not name:
            raise ConfigError(f"{where}: metadata.name: a Node needs a name")
        nodes.append(parse_node(doc, where, vendors))
    return nodes


def _documents(path: Path) -> Iterator[tuple[int, Mapping[str, object]]]:
    try:
        yield from documents(path)
    except ManifestFileError as exc:
        raise ConfigError(str(exc)) from None


def _name(doc: Mapping[str, object]) -> str:
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return name if isinstance(name, str) else ""


def parse_node(
    doc: Mapping[str, object], where: str, vendors: Mapping[str, Vendor]
) -> ManifestNode:
    """One Node manifest; ``where`` prefixes every error message."""
    meta = _mapping(doc.get("metadata"), "metadata", where)
    status = _mapping(doc.get("status"), "status", where)
    name = str(meta.get("name"))
    labels = _text_map(meta.get("labels"), "metadata.labels", where)
    annotations = _text_map(meta.get("annotations"), "metadata.annotations", where)
    capacity = _quantities(status.get("capacity"), "status.capacity", where)
    allocatable = _quantities(status.get("allocatable"), "status.allocatable", where)
    found: dict[str, tuple[Device, ...]] = {}
    for key, vendor in vendors.items():
        try:
            devices = _vendor_devices(vendor, name, annotations, labels, capacity)
        except WireFormatError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if devices:
            found[key] = devices
    if not found:
        enabled = ", ".join(vendors) or "none"
        raise ConfigError(
            f"{where}: registers no device of an enabled vendor (enabled: {enabled}; "
            "vendor sections come from --config-file)"
        )
    capacity = {**BASE_CAPACITY, **capacity}
    allocatable = {**capacity, **allocatable}
    handshakes = []
    for key, devices in found.items():
        health = vendors[key].registration_health
        if health is None:
            continue
        if health.count_resource not in capacity:
            capacity[health.count_resource] = str(sum(d.count for d in devices))
            allocatable[health.count_resource] = str(sum(d.count for d in devices if d.health))
        if health.handshake_key:
            handshakes.append(health.handshake_key)
    return ManifestNode(
        name=name,
        labels=labels,
        annotations=annotations,
        capacity=capacity,
        allocatable=allocatable,
        vendors=tuple(found),
        handshakes=tuple(dict.fromkeys(handshakes)),
    )


def _vendor_devices(
    vendor: Vendor,
    name: str,
    annotations: Mapping[str, str],
    labels: Mapping[str, str],
    capacity: Mapping[str, str],
) -> tuple[Device, ...]:
    devices = tuple(vendor.node_devices(annotations))
    return devices + tuple(vendor.capacity_devices(name, capacity, labels, annotations))


def _mapping(value: object, field: str, where: str) -> Mapping[object, object]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: {field}: expected a mapping, got {type(value).__name__}")
    return cast(Mapping[object, object], value)


def _text_map(value: object, field: str, where: str) -> dict[str, str]:
    out = {}
    for key, item in _mapping(value, field, where).items():
        if not isinstance(item, str):
            raise ConfigError(f"{where}: {field}.{key}: must be a string (quote it), got {item!r}")
        out[str(key)] = item
    return out


def _quantities(value: object, field: str, where: str) -> dict[str, str]:
    out = {}
    for key, item in _mapping(value, field, where).items():
        try:
            parse_quantity(item, f"{field}.{key}")
        except WireFormatError:
            raise ConfigError(
                f"{where}: {field}.{key}: {item!r} is not a Kubernetes quantity"
            ) from None
        out[str(key)] = str(item)
    return out
