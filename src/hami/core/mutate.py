"""The admission decision for one Pod (wire-format.md §3.1): pure, no I/O.

Route pods that ask for a managed device to our scheduler, apply every vendor's container
defaults, add their environment, and refuse what cannot work: privileged containers that ask
for a device, pods already bound to a node, invalid requests and requests over a quota.

And refuse what would let a tenant decide instead of the scheduler (docs/security.md): allocation
annotations on any pod, a device pod routed around our scheduler (``nodeName`` or another
``schedulerName``), and isolation settings in a device container's own env.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from hami.api import keys
from hami.api.admission import PatchOp, pointer
from hami.core.errors import RequestInvalid
from hami.core.model import ContainerRequest
from hami.core.request import mapping
from hami.core.vendor import (
    PodAdmission,
    QuotaRoom,
    Vendor,
)

Manifest = Mapping[str, object]
DEFAULT_SCHEDULER = "default-scheduler"
IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class MutateSettings:
    """The scheduler flags the webhook consults."""

    scheduler_name: str = "hami-scheduler"
    force_overwrite_default_scheduler: bool = True
    runtime_class_name: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Allowed (with the JSON Patch to apply) or denied (with a status code and message)."""

    allowed: bool
    message: str = ""
    code: int = 200
    patch: tuple[PatchOp, ...] = ()
    uses_devices: bool = False

    @classmethod
    def deny(cls, message: str, code: int = 403) -> Verdict:
        return cls(allowed=False, message=message, code=code)


@dataclass(frozen=True, slots=True)
class _Container:
    section: str  # "initContainers" or "containers"
    index: int
    body: Manifest
    admitted: Manifest
    env: Mapping[str, str] = field(default_factory=dict)
    uses: bool = False

    @property
    def name(self) -> str:
        return str(self.body.get("name") or f"#{self.index}")


def _list(value: object) -> list[Manifest]:
    items = value if isinstance(value, list) else []
    return [cast(Manifest, c) for c in items if isinstance(c, Mapping)]


def mutate(
    pod: Manifest,
    vendors: Mapping[str, Vendor],
    settings: MutateSettings,
    quota: Mapping[str, QuotaRoom] | None = None,
) -> Verdict:
    """Decide on one Pod CREATE."""
    meta = mapping(pod.get("metadata"))
    forged = sorted(k for k in _annotations(meta) if keys.is_allocation_annotation(k))
    if forged:
        return Verdict.deny(
            f"annotation(s) {', '.join(forged)} are written only by the hami scheduler and "
            "device plugin; remove them from the pod (docs/security.md)"
        )
    if mapping(meta.get("labels")).get(keys.WEBHOOK_LABEL) == IGNORE:
        return Verdict(allowed=True, message=f"pod is labelled {keys.WEBHOOK_LABEL}={IGNORE}")
    spec = mapping(pod.get("spec"))
    if not _list(spec.get("containers")):
        return Verdict.deny("pod has no containers", 400)
    name = meta.get("name") or meta.get("generateName") or ""
    where = f"pod {meta.get('namespace') or 'default'}/{name}"
    annotations = _annotations(meta)
    other = _other_scheduler(spec, settings)
    routed = other and bool(settings.scheduler_name)  # a device pod must come to ours
    try:
        containers = list(_admit_all(spec, vendors, where, annotations))
        pod_level = _admit_pod(containers, vendors, where, annotations)
    except RequestInvalid as exc:
        if routed:  # not ours to judge: the scheduler is the real problem
            return Verdict.deny(_bypass(spec, settings))
        return Verdict.deny(str(exc), 400)
    if other:
        if routed and any(c.uses for c in containers):
            return Verdict.deny(_bypass(spec, settings))
        return Verdict(allowed=True, message="pod already has different scheduler assigned")
    return _decide(meta, spec, containers, pod_level, vendors, settings, quota or {})


def _bypass(spec: Manifest, settings: MutateSettings) -> str:
    return (
        f"pod asks for a shared device but names scheduler {spec.get('schedulerName')!r}: "
        f"device pods are placed by {settings.scheduler_name!r} only; an admin allows other "
        f"schedulers in a namespace by labelling it {keys.WEBHOOK_LABEL}={IGNORE} "
        "(docs/security.md)"
    )


def _tampered_env(c: _Container) -> list[str]:
    """The isolation variables a device container sets itself. A value the webhook would set
    (priority from the resource, the configured core policy) is this webhook's own earlier
    patch (reinvocation), not the user's."""

    def ours(item: Manifest) -> bool:
        return "valueFrom" not in item and c.env.get(str(item.get("name"))) == str(
            item.get("value", "")
        )

    names = [str(item.get("name") or "") for item in _list(c.body.get("env"))]
    return [
        name
        for name, item in zip(names, _list(c.body.get("env")), strict=True)
        if keys.is_isolation_env(name) or (name in keys.WEBHOOK_ENV and not ours(item))
    ]


def _open_env_sources(c: _Container) -> list[str]:
    """The container's ``envFrom`` sources whose keys could become isolation variables (no
    prefix, or a prefix such a name starts with); each named as ``configMapRef app``."""
    found: list[str] = []
    for item in _list(c.body.get("envFrom")):
        if keys.env_prefix_reaches_isolation(str(item.get("prefix") or "")):
            kind = next((k for k in ("configMapRef", "secretRef") if k in item), "source")
            found.append(f"{kind} {mapping(item.get(kind)).get('name', '')}".strip())
    return found


def _annotations(meta: Manifest) -> dict[str, str]:
    return {str(k): str(v) for k, v in mapping(meta.get("annotations")).items()}


def _other_scheduler(spec: Manifest, settings: MutateSettings) -> bool:
    current = str(spec.get("schedulerName") or "")
    if not current:
        return False
    if current == DEFAULT_SCHEDULER and settings.force_overwrite_default_scheduler:
        return False
    return not settings.scheduler_name or settings.scheduler_name != current


def _admit_all(
    spec: Manifest, vendors: Mapping[str, Vendor], where: str, annotations: Mapping[str, str]
) -> Iterator[_Container]:
    for field_name in ("initContainers", "containers"):
        for index, body in enumerate(_list(spec.get(field_name))):
            name = str(body.get("name") or f"#{index}")
            admitted: Manifest = body
            env: dict[str, str] = {}
            uses = False
            for vendor in vendors.values():
                at = f"{where} container {name}"
                result = vendor.admit_container_in_pod(admitted, at, annotations)
                admitted = result.container
                env.update(result.env)
                uses = uses or result.uses_vendor
            yield _Container(field_name, index, body, admitted, env, uses)


def _admit_pod(
    containers: Sequence[_Container],
    vendors: Mapping[str, Vendor],
    where: str,
    annotations: Mapping[str, str],
) -> PodAdmission:
    """Every vendor's pod-level rules, merged in registry order (first RuntimeClass wins)."""
    admitted = [c.admitted for c in containers]
    added: dict[str, str] = {}
    runtime = ""
    for vendor in vendors.values():
        result = vendor.pod_admission(annotations, admitted, where)
        added.update(result.annotations)
        runtime = runtime or result.runtime_class_name
    return PodAdmission(annotations=added, runtime_class_name=runtime)


def _decide(
    meta: Manifest,
    spec: Manifest,
    containers: Sequence[_Container],
    pod_level: PodAdmission,
    vendors: Mapping[str, Vendor],
    settings: MutateSettings,
    quota: Mapping[str, QuotaRoom],
) -> Verdict:
    for c in containers:
        if c.uses and _privileged(c.body):
            return Verdict.deny(f"container {c.name} is privileged")
        tampered = _tampered_env(c) if c.uses else []
        if tampered:
            return Verdict.deny(
                f"container {c.name} sets {', '.join(tampered)}: the device plugin sets a "
                "device container's isolation (memory and core limits, priority, control) and "
                "a container's own value would override it; an admin allows it in a namespace "
                f"by labelling it {keys.WEBHOOK_LABEL}={IGNORE} (docs/security.md)"
            )
        sources = _open_env_sources(c) if c.uses else []
        if sources:
            return Verdict.deny(
                f"container {c.name} takes env from {', '.join(sources)} without a prefix that "
                "keeps out the isolation variables (CUDA_DEVICE_MEMORY_LIMIT*, "
                "CUDA_DEVICE_SM_LIMIT*, CUDA_DISABLE_CONTROL, ...): their keys could override "
                "the device plugin's limits; give each envFrom a prefix such as APP_, or an "
                f"admin allows it in a namespace by labelling it {keys.WEBHOOK_LABEL}={IGNORE} "
                "(docs/security.md)"
            )
    uses = any(c.uses for c in containers)
    ops = [op for c in containers for op in _container_ops(c)]
    if uses and settings.scheduler_name:
        if spec.get("nodeName"):
            return Verdict.deny(
                f"pod has node assigned ({spec.get('nodeName')}): device pods are placed by "
                f"{settings.scheduler_name!r}, never by spec.nodeName; an admin allows it in a "
                f"namespace by labelling it {keys.WEBHOOK_LABEL}={IGNORE} (docs/security.md)"
            )
        ops.append(PatchOp("add", pointer("spec", "schedulerName"), settings.scheduler_name))
    runtime = settings.runtime_class_name or pod_level.runtime_class_name
    if uses and runtime and not spec.get("runtimeClassName"):
        ops.append(PatchOp("add", pointer("spec", "runtimeClassName"), runtime))
    ops.extend(_annotation_ops(meta, pod_level.annotations))
    over = _over_quota(containers, vendors, quota)
    if over:
        return Verdict.deny(f"exceeding resource quota: {over}")
    return Verdict(allowed=True, patch=tuple(ops), uses_devices=uses)


def _annotation_ops(meta: Manifest, added: Mapping[str, str]) -> Iterator[PatchOp]:
    """Add (or overwrite) pod annotations; one op for the whole map when the pod has none."""
    current = _annotations(meta)
    changed = {k: v for k, v in added.items() if current.get(k) != v}
    if not changed:
        return
    if not isinstance(meta.get("annotations"), Mapping):
        yield PatchOp("add", pointer("metadata", "annotations"), changed)
        return
    for key, value in changed.items():
        yield PatchOp("add", pointer("metadata", "annotations", key), value)


def _privileged(container: Manifest) -> bool:
    return mapping(container.get("securityContext")).get("privileged") is True


def _container_ops(c: _Container) -> Iterator[PatchOp]:
    base = ("spec", c.section, c.index)
    resources = _quantities(c.admitted.get("resources"))
    if resources != _quantities(c.body.get("resources")):
        yield PatchOp("add", pointer(*base, "resources"), resources)
    existing = _list(c.body.get("env"))
    present = {str(e.get("name")) for e in existing}
    added = [{"name": k, "value": v} for k, v in c.env.items() if k not in present]
    if not added:
        return
    if not existing and "env" not in c.body:
        yield PatchOp("add", pointer(*base, "env"), added)
        return
    for item in added:
        yield PatchOp("add", pointer(*base, "env", "-"), item)


def _quantities(resources: object) -> dict[str, object]:
    """Resources with integer quantities written as strings, the API server's canonical form."""
    out: dict[str, object] = {}
    for section, values in mapping(resources).items():
        if isinstance(values, Mapping):
            items = cast(Mapping[str, object], values).items()
            if items:  # an empty section is the same as none
                out[section] = {k: str(v) if isinstance(v, int) else v for k, v in items}
        else:
            out[section] = values
    return out


def _over_quota(
    containers: Sequence[_Container],
    vendors: Mapping[str, Vendor],
    quota: Mapping[str, QuotaRoom],
) -> str:
    """The first vendor resource whose pod-level request exceeds the namespace's room."""
    for key, room in sorted(quota.items()):
        vendor = vendors.get(key)
        if vendor is None or (room.memory is None and room.cores is None):
            continue
        init: list[ContainerRequest] = []
        app: list[ContainerRequest] = []
        for c in containers:
            request = vendor.parse_container(c.admitted, c.name)
            if request is not None:
                (init if c.section == "initContainers" else app).append(request)
        memory = _effective(init, app, lambda r: r.memreq * r.nums)
        cores = _effective(init, app, lambda r: r.coresreq * r.nums)
        if room.memory is not None and memory > room.memory:
            return f"{key} memory {memory} > {room.memory} left"
        if room.cores is not None and cores > room.cores:
            return f"{key} cores {cores} > {room.cores} left"
    return ""


def _effective(
    init: Sequence[ContainerRequest],
    app: Sequence[ContainerRequest],
    amount: Callable[[ContainerRequest], int],
) -> int:
    """Init containers run one at a time before the app containers (§7.3)."""
    return max(sum(amount(r) for r in app), max((amount(r) for r in init), default=0))
