"""Reading `hami sim` inputs: Nodes and placed Pods (CLUSTER.yaml) and pods to place (PODS.yaml)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from hami import devconfig
from hami.api import keys
from hami.api.errors import WireFormatError
from hami.core import accounting
from hami.core.accounting import PlacedPod
from hami.core.config import SchedulerConfig
from hami.core.errors import RequestInvalid
from hami.core.model import Node, PodRequest
from hami.core.nodes import node_from_manifest
from hami.core.request import metadata_annotations, parse_pod, pod_identity
from hami.core.vendor import Vendor
from hami.k8s.files import ManifestFileError, documents

Manifest = Mapping[str, object]


class SimInputError(ValueError):
    """A bad input file: the message names the file, the object and the field."""


@dataclass(frozen=True, slots=True)
class Cluster:
    nodes: tuple[Node, ...]
    placed: tuple[PlacedPod, ...]
    # nodes skipped as the scheduler skips them (a registration it cannot read): one line each,
    # naming the file, the node, the key and why
    warnings: tuple[str, ...] = ()
    # DRA mode (docs/dra.md): the cluster's ResourceSlices and ResourceClaims, shown beside
    # the extender's nodes; kube-scheduler, not the simulation, places on their devices
    dra_slices: tuple[Manifest, ...] = ()
    dra_claims: tuple[Manifest, ...] = ()


def _documents(path: Path) -> Iterator[tuple[int, Manifest]]:
    try:
        yield from documents(path)
    except ManifestFileError as exc:
        raise SimInputError(str(exc)) from None


def _name(doc: Manifest, number: int) -> str:
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return str(name) if name else f"document {number}"


def node_manifests(path: Path) -> list[Manifest]:
    """The Node objects of a cluster file, as they are (for learning its vendors)."""
    return [doc for _, doc in _documents(path) if doc.get("kind") == "Node"]


def load_cluster(path: Path, vendors: Mapping[str, Vendor]) -> Cluster:
    nodes: list[Node] = []
    placed: list[PlacedPod] = []
    warnings: list[str] = []
    dra: dict[str, list[Manifest]] = {"ResourceSlice": [], "ResourceClaim": []}
    for number, doc in _documents(path):
        kind = doc.get("kind")
        if kind in dra:
            dra[str(kind)].append(doc)
        elif kind == "Node":
            try:
                nodes.append(node_from_manifest(doc, vendors))
            except WireFormatError as exc:
                warnings.append(
                    f"{path}: Node {_name(doc, number)} skipped, as the scheduler does: {exc}"
                )
        elif kind == "Pod" and _is_dra_pod(doc):
            continue  # its claims say what it holds
        elif kind == "Pod":
            pod = _placed_pod(path, doc, number, vendors)
            if pod is not None:
                placed.append(pod)
        else:
            raise SimInputError(
                f"{path}: {_name(doc, number)}: kind {kind!r} is not supported (use Node, Pod, "
                "ResourceSlice or ResourceClaim)"
            )
    names = [n.name for n in nodes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SimInputError(f"{path}: Node {duplicates[0]}: defined more than once")
    return Cluster(
        nodes=tuple(nodes),
        placed=tuple(placed),
        warnings=tuple(warnings),
        dra_slices=tuple(dra["ResourceSlice"]),
        dra_claims=tuple(dra["ResourceClaim"]),
    )


def _is_dra_pod(doc: Manifest) -> bool:
    spec = doc.get("spec")
    return isinstance(spec, Mapping) and bool(spec.get("resourceClaims"))


def _placed_pod(
    path: Path, doc: Manifest, number: int, vendors: Mapping[str, Vendor]
) -> PlacedPod | None:
    namespace, name = pod_identity(doc)
    spec = doc.get("spec")
    node = spec.get("nodeName") if isinstance(spec, Mapping) else None
    annotations = metadata_annotations(doc)
    node = node or annotations.get(keys.VGPU_NODE)
    if not node:
        raise SimInputError(
            f"{path}: Pod {namespace}/{name}: spec.nodeName: a placed pod needs one"
        )
    inits = spec.get("initContainers") if isinstance(spec, Mapping) else None
    count = len(inits) if isinstance(inits, list) else 0
    try:
        return accounting.placed_pod(f"{namespace}/{name}", str(node), annotations, vendors, count)
    except WireFormatError as exc:
        raise SimInputError(f"{path}: Pod {namespace}/{name}: {exc}") from None


def load_pods(
    path: Path, vendors: Mapping[str, Vendor], config: SchedulerConfig
) -> tuple[PodRequest, ...]:
    pods = []
    for number, doc in _documents(path):
        if doc.get("kind", "Pod") != "Pod":
            raise SimInputError(
                f"{path}: {_name(doc, number)}: kind {doc.get('kind')!r} is not supported (use Pod)"
            )
        problems = devconfig.unknown_resources(doc, vendors)
        if problems:
            namespace, name = pod_identity(doc)
            raise SimInputError(f"{path}: Pod {namespace}/{name}: {problems[0]}")
        try:
            pods.append(parse_pod(doc, vendors, config, admit=True))
        except RequestInvalid as exc:
            raise SimInputError(f"{path}: {exc}") from None
    return tuple(pods)
