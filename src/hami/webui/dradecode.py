"""DRA in a snapshot (docs/dra.md): the devices nodes publish in ResourceSlices, pods whose
allocated ResourceClaims place them, and Pending pods whose hami claims are not allocated (or
not created) yet, explained in `hami.webui.drapending`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import cast

from hami.core.dra import placement as dra_placement
from hami.core.dra import records as dra_records
from hami.core.dra.names import DEVICE_CLASS
from hami.core.dra.translate import TEMPLATE_PREFIX
from hami.core.model import Node, PodOptions, PodRequest
from hami.k8s import objects
from hami.k8s.api import Manifest
from hami.k8s.objects import TERMINAL_PHASES
from hami.webui.snapshot import DraState, NodeEntry, PodEntry


def _with_dra(
    nodes: Sequence[NodeEntry],
    found: Sequence[PodEntry | None],
    pods: Iterable[Manifest],
    dra: DraState,
) -> tuple[list[NodeEntry], list[PodEntry | None], frozenset[str]]:
    """The nodes with their published DRA devices (a node registering none of its own), the
    pods with their allocated claims as placed pods (`hami.core.dra.placement`), and the
    Pending pods whose hami claims are not allocated yet (`_dra_waiting`)."""
    published = dra_placement.devices(dra.slices)
    out_nodes, dra_nodes = [], set()
    for info in nodes:
        devices = published.get(info.name)
        if devices and not info.node.devices:
            info = replace(info, node=Node(info.name, devices), problem="")
            dra_nodes.add(info.name)
        out_nodes.append(info)
    manifests = {
        f"{objects.namespace(m) or 'default'}/{objects.name(m)}": m
        for m in pods
        if objects.spec(m).get("resourceClaims")
    }
    placed = dra_placement.placed_pods(manifests.values(), dra.claims, dra.slices)
    out_pods = [p for p in found if p is None or p.key not in placed]
    for key, pod in placed.items():
        manifest = manifests[key]
        phase = str(objects.status(manifest).get("phase") or "Pending")
        if phase in TERMINAL_PHASES:
            continue
        namespace, name = key.split("/", 1)
        request = _dra_request(manifest, namespace, name)
        started = _started(manifest)
        out_pods.append(PodEntry(namespace, name, phase, pod.node, pod, request, "", started))
    listed = {p.key for p in out_pods if p is not None}
    claims = {(objects.namespace(c), objects.name(c)): c for c in dra.claims}
    for key, manifest in manifests.items():
        if key not in listed and _dra_waiting(manifest, claims):
            namespace, name = key.split("/", 1)
            node = str(objects.spec(manifest).get("nodeName") or "") or None
            request = _dra_request(manifest, namespace, name)
            started = _started(manifest)
            waiting = PodEntry(
                namespace, name, "Pending", node, None, request, "", started, manifest
            )
            out_pods.append(waiting)
    return out_nodes, out_pods, frozenset(dra_nodes)


def _dra_request(manifest: Manifest, namespace: str, name: str) -> PodRequest:
    """A DRA pod's request in the extender's terms: its containers, asking for nothing (its
    claims ask)."""
    containers = dra_placement.containers(manifest)
    inits = objects.spec(manifest).get("initContainers")
    return PodRequest(
        namespace,
        name,
        tuple(() for _ in containers),
        len(inits) if isinstance(inits, list) else 0,
        container_names=tuple(c for c, _ in containers),
        options=PodOptions(),
    )


def _started(manifest: Manifest) -> str:
    status, metadata = objects.status(manifest), objects.meta(manifest)
    return str(status.get("startTime") or metadata.get("creationTimestamp") or "")


def _dra_waiting(manifest: Manifest, claims: Mapping[tuple[str, str], Manifest]) -> bool:
    """A Pending pod (none of whose hami claims is allocated: the caller checked) with a claim
    of hami's: from a template the webhook names (``hami-gpu-…``), or a claim asking for hami's
    DeviceClass. Pods with other drivers' claims only are not GPU pods."""
    if str(objects.status(manifest).get("phase") or "Pending") != "Pending":
        return False
    namespace = objects.namespace(manifest) or "default"
    made = dra_records.claim_names(manifest)
    for entry in mappings(objects.spec(manifest).get("resourceClaims")):
        template = str(entry.get("resourceClaimTemplateName") or "")
        if template.startswith(TEMPLATE_PREFIX):
            return True
        claim = claims.get((namespace, made.get(str(entry.get("name")), "")))
        if claim is not None and _asks_hami(claim):
            return True
    return False


def _asks_hami(claim: Manifest) -> bool:
    requests = mappings(objects.section(objects.spec(claim), "devices").get("requests"))
    return any(
        (objects.section(r, "exactly").get("deviceClassName") or r.get("deviceClassName"))
        == DEVICE_CLASS
        for r in requests
    )


def mappings(value: object) -> list[Manifest]:
    """The objects of a list field (a missing or malformed field: none)."""
    if not isinstance(value, list):
        return []
    return [cast(Manifest, v) for v in value if isinstance(v, Mapping)]
