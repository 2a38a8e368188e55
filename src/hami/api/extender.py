"""kube-scheduler extender wire types (k8s.io/kube-scheduler/extender/v1).

The Go structs carry no JSON tags, so kube-scheduler sends capitalised field names
(``Pod``, ``NodeNames``) and decodes replies case-insensitively. We accept any key case on the
way in and answer with the capitalised names Go's ``json.Marshal`` writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from hami.api.errors import WireFormatError

Manifest = Mapping[str, object]


def _fields(body: object, what: str) -> dict[str, object]:
    """Top-level keys lower-cased (Go matches struct fields case-insensitively)."""
    if not isinstance(body, Mapping):
        raise WireFormatError(what, type(body).__name__, "expected a JSON object")
    return {str(k).lower(): v for k, v in cast(Mapping[object, object], body).items()}


def _names(what: str, raw: object) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
        raise WireFormatError(what, "NodeNames", "expected a list of node names")
    return tuple(cast(list[str], raw))


def _text(what: str, name: str, raw: object) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise WireFormatError(what, name, f"{raw!r} is not a string")
    return raw


@dataclass(frozen=True, slots=True)
class ExtenderArgs:
    """Body of ``/filter``: the pod plus either candidate names or full Node objects."""

    pod: Manifest | None
    node_names: tuple[str, ...] | None = None
    nodes: tuple[Manifest, ...] | None = None  # set only by callers with nodeCacheCapable=false

    @classmethod
    def from_json(cls, body: object) -> ExtenderArgs:
        what = "ExtenderArgs"
        fields = _fields(body, what)
        pod = fields.get("pod")
        if pod is not None and not isinstance(pod, Mapping):
            raise WireFormatError(what, "Pod", "expected a Pod object")
        nodes_raw = fields.get("nodes")
        nodes: tuple[Manifest, ...] | None = None
        if nodes_raw is not None:
            items = _fields(nodes_raw, f"{what}.Nodes").get("items") or []
            if not isinstance(items, list):
                raise WireFormatError(what, "Nodes.items", "expected a list of Node objects")
            nodes = tuple(cast(Manifest, n) for n in items if isinstance(n, Mapping))
        return cls(
            pod=cast(Manifest | None, pod),
            node_names=_names(what, fields.get("nodenames")),
            nodes=nodes,
        )


@dataclass(frozen=True, slots=True)
class ExtenderFilterResult:
    """Reply of ``/filter``. A non-empty ``error`` fails the scheduling attempt."""

    node_names: tuple[str, ...] | None = None
    nodes: tuple[Manifest, ...] | None = None
    failed_nodes: Mapping[str, str] = field(default_factory=dict)
    failed_and_unresolvable: Mapping[str, str] = field(default_factory=dict)
    error: str = ""

    def to_json(self) -> dict[str, object]:
        nodes: dict[str, object] | None = None
        if self.nodes is not None:
            nodes = {"metadata": {}, "items": list(self.nodes)}
        return {
            "Nodes": nodes,
            "NodeNames": None if self.node_names is None else list(self.node_names),
            "FailedNodes": dict(self.failed_nodes),
            "FailedAndUnresolvableNodes": dict(self.failed_and_unresolvable) or None,
            "Error": self.error,
        }

    @classmethod
    def from_json(cls, body: object) -> ExtenderFilterResult:
        what = "ExtenderFilterResult"
        fields = _fields(body, what)
        nodes_raw = fields.get("nodes")
        nodes = None
        if isinstance(nodes_raw, Mapping):
            items = _fields(nodes_raw, what).get("items") or []
            nodes = tuple(cast(Manifest, n) for n in cast(list[object], items))
        return cls(
            node_names=_names(what, fields.get("nodenames")),
            nodes=nodes,
            failed_nodes=_reasons(what, fields.get("failednodes")),
            failed_and_unresolvable=_reasons(what, fields.get("failedandunresolvablenodes")),
            error=_text(what, "Error", fields.get("error")),
        )


def _reasons(what: str, raw: object) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise WireFormatError(what, "FailedNodes", "expected a map of node name to reason")
    return {str(k): str(v) for k, v in cast(Mapping[object, object], raw).items()}


@dataclass(frozen=True, slots=True)
class ExtenderBindingArgs:
    """Body of ``/bind``."""

    pod_name: str
    pod_namespace: str
    pod_uid: str
    node: str

    @classmethod
    def from_json(cls, body: object) -> ExtenderBindingArgs:
        what = "ExtenderBindingArgs"
        fields = _fields(body, what)
        args = cls(
            pod_name=_text(what, "PodName", fields.get("podname")),
            pod_namespace=_text(what, "PodNamespace", fields.get("podnamespace")),
            pod_uid=_text(what, "PodUID", fields.get("poduid")),
            node=_text(what, "Node", fields.get("node")),
        )
        if not args.pod_name or not args.node:
            raise WireFormatError(what, "PodName/Node", "pod name and node are required")
        return args

    def to_json(self) -> dict[str, object]:
        return {
            "PodName": self.pod_name,
            "PodNamespace": self.pod_namespace,
            "PodUID": self.pod_uid,
            "Node": self.node,
        }


@dataclass(frozen=True, slots=True)
class ExtenderBindingResult:
    """Reply of ``/bind``: an empty error means the Binding was created."""

    error: str = ""

    def to_json(self) -> dict[str, object]:
        return {"Error": self.error}

    @classmethod
    def from_json(cls, body: object) -> ExtenderBindingResult:
        fields = _fields(body, "ExtenderBindingResult")
        return cls(error=_text("ExtenderBindingResult", "Error", fields.get("error")))


def filter_args_json(
    pod: Manifest, node_names: Sequence[str] | None, nodes: Sequence[Manifest] | None = None
) -> dict[str, object]:
    """An ExtenderArgs body as kube-scheduler sends it (for tests and benchmarks)."""
    body: dict[str, object] = {"Pod": pod, "Nodes": None, "NodeNames": None}
    if node_names is not None:
        body["NodeNames"] = list(node_names)
    if nodes is not None:
        body["Nodes"] = {"metadata": {}, "items": list(nodes)}
    return body
