"""Where each pod landed and which device slices it got (every vendor), and the MIG GPUs with
their instances, read back from the API server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hami.api import annotations as codec
from hami.api import keys
from hami.api.errors import WireFormatError
from hami.api.keys import FILTERING_FAILED
from hami.core.config import SchedulerConfig
from hami.core.migview import MigGpu, MigInstance, gpus_of, safe_from_annotations
from hami.core.migview import render as render_gpus
from hami.core.nodes import node_from_manifest
from hami.core.vendor import Vendor
from hami.k8s import objects
from hami.k8s.api import EVENTS, NODES, PODS, KubeAPI, Manifest, NotFound
from hami.k8s.objects import TERMINAL_PHASES
from hami.vendors import registry

_NVIDIA_ONLY = registry.build(SchedulerConfig())


@dataclass(frozen=True, slots=True)
class Placement:
    """One pod: its node (or None while pending) and, per GPU container, its slices."""

    namespace: str
    name: str
    node: str | None
    phase: str  # the device plugin's hami.io/bind-phase, or the reason it is not placed
    slices: tuple[tuple[str, str], ...] = ()  # (container, "uuid (type) mem MiB, cores %")
    rejected: bool = False  # the API server refused to create it (the webhook, a quota, …)

    @property
    def decided(self) -> bool:
        """Bound and allocated (or failed) by the device plugin, refused by the filter or by
        kube-scheduler (its PodScheduled condition says why), or never created."""
        if self.rejected:
            return True
        if self.node is None:
            return self.phase != "" and self.phase != "pending"
        return self.phase in ("success", "failed")


def container_names(pod: Manifest) -> list[str]:
    """Init containers first, then containers: the order of the devices annotation."""
    spec = objects.spec(pod)
    names = []
    for section in ("initContainers", "containers"):
        raw = spec.get(section)
        for container in raw if isinstance(raw, list) else []:
            if isinstance(container, Mapping):
                names.append(str(container.get("name", "?")))
    return names


def slices_of(
    pod: Manifest, models: Mapping[str, str], vendors: Mapping[str, Vendor] | None = None
) -> tuple[tuple[str, str], ...]:
    """Per device of each container, for every vendor's allocation (``vendors``; NVIDIA alone
    when None): ``uuid (model) mem MiB, cores %``."""
    annotations = objects.annotations(pod)
    names = container_names(pod)
    out: list[tuple[str, str]] = []
    for vendor in (vendors if vendors is not None else _NVIDIA_ONLY).values():
        try:
            decoded = vendor.allocated_devices(annotations)
        except WireFormatError as exc:
            out.append(("?", f"unreadable {vendor.key} allocation: {exc}"))
            continue
        if not decoded:
            continue
        labels = names if len(names) == len(decoded) else [f"#{i}" for i in range(len(decoded))]
        out += [
            (
                container,
                f"{d.uuid} ({models.get(d.uuid, d.type)}) {vendor.describe(d)}",
            )
            for container, devices in zip(labels, decoded, strict=True)
            for d in devices
        ]
    return tuple(out)


async def why_pending(api: KubeAPI, namespace: str, name: str, pod: Manifest | None = None) -> str:
    """Why the pod waits: the newest FilteringFailed event's message (our extender's reasons),
    else the default scheduler's reason from the pod's PodScheduled condition, else
    "pending"."""
    selector = f"involvedObject.name={name},reason={FILTERING_FAILED}"
    found = (await api.list(EVENTS, namespace=namespace, field_selector=selector)).items
    if found:
        newest = max(found, key=lambda e: str(e.get("lastTimestamp") or ""))
        return f"{FILTERING_FAILED}: {newest.get('message', '')}"
    return scheduling_condition(pod) if pod is not None else "pending"


def scheduling_condition(pod: Manifest) -> str:
    """``REASON: message`` of a PodScheduled condition that is not True (kube-scheduler's
    word on a pod it cannot place), or "pending" when there is none yet."""
    conditions = objects.status(pod).get("conditions")
    for condition in conditions if isinstance(conditions, list) else []:
        if not isinstance(condition, Mapping) or condition.get("type") != "PodScheduled":
            continue
        if condition.get("status") == "True":
            break
        reason = str(condition.get("reason") or "Unschedulable")
        message = str(condition.get("message") or "").strip()
        return f"{reason}: {message}" if message else reason
    return "pending"


async def placement(
    api: KubeAPI, namespace: str, name: str, vendors: Mapping[str, Vendor] | None = None
) -> Placement:
    """Where the pod is, with the slices of every vendor in ``vendors`` (None: NVIDIA)."""
    try:
        pod = await api.get(PODS, name, namespace)
    except NotFound:
        return Placement(namespace, name, None, "deleted")
    node = objects.spec(pod).get("nodeName")
    if not node:
        return Placement(namespace, name, None, await why_pending(api, namespace, name, pod))
    phase = objects.annotations(pod).get(keys.BIND_PHASE, "bound")
    slices = slices_of(pod, await models(api, node), vendors)
    return Placement(namespace, name, str(node), phase, slices)


async def models(api: KubeAPI, node: object) -> dict[str, str]:
    """GPU uuid → model, from the node's registration (empty when unreadable)."""
    try:
        value = objects.annotations(await api.get(NODES, str(node))).get(keys.NVIDIA_REGISTER)
        return {d.id: d.type for d in codec.decode_node_devices(value or "")}
    except (NotFound, WireFormatError):
        return {}


def mig_gpus(
    nodes: Sequence[Manifest], pods: Sequence[Manifest], vendors: Mapping[str, Vendor] | None = None
) -> tuple[list[MigGpu], list[str]]:
    """The MIG-mode GPUs of ``nodes`` with the instances the live ``pods`` reserve on them
    (identity included once the device plugin realised them), and a line per unreadable
    registration or MIG annotation."""
    problems = []
    decoded = []
    for manifest in sorted(nodes, key=objects.name):
        try:
            decoded.append(node_from_manifest(manifest, vendors or _NVIDIA_ONLY))
        except WireFormatError as exc:
            problems.append(f"node {objects.name(manifest)}: unreadable registration: {exc}")
    by_gpu: dict[tuple[str, str], list[MigInstance]] = {}
    for pod in pods:
        annotations = objects.annotations(pod)
        node = annotations.get(keys.VGPU_NODE)
        if not node or objects.status(pod).get("phase") in TERMINAL_PHASES:
            continue
        key = f"{objects.namespace(pod) or 'default'}/{objects.name(pod)}"
        found, problem = safe_from_annotations(key, annotations)
        problems += [problem] if problem else []
        for uuid, instance in found:
            by_gpu.setdefault((node, uuid), []).append(instance)
    return gpus_of(decoded, by_gpu), problems


def render_mig(gpus: Sequence[MigGpu], problems: Sequence[str] = ()) -> list[str]:
    """Text lines: "MIG GPUs", then per GPU its slice map and instances (empty: none)."""
    if not gpus and not problems:
        return []
    return ["MIG GPUs (a letter per instance, . free):", *render_gpus(gpus)] + [
        f"  ! {p}" for p in problems
    ]


def render(placements: Sequence[Placement]) -> list[str]:
    """Text lines: one per pod, then one per GPU slice (or the reason it waits)."""
    width = max((len(f"{p.namespace}/{p.name}") for p in placements), default=0)
    lines = []
    for p in placements:
        who = f"{p.namespace}/{p.name}".ljust(width)
        if p.rejected:
            lines.append(f"  {who}  REJECTED")
            lines.append(f"      {p.phase}")
            continue
        if p.node is None:
            lines.append(f"  {who}  PENDING")
            lines.append(f"      {p.phase}")
            continue
        lines.append(f"  {who}  -> {p.node}  (bind-phase {p.phase})")
        lines += [f"      {container}: {text}" for container, text in p.slices]
    return lines
