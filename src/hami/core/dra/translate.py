"""Pure: the webhook's DRA mode. A pod that asks ``nvidia.com/gpu``/``gpumem``/``gpucores``
in a DRA-mode namespace, or that selects DRA nodes (nodeSelector ``hami.io/dra: "true"``), gets
a ResourceClaimTemplate reference per GPU container instead of the extended resources.

kube-controller-manager's resource-claim controller then creates each claim from its template
with the pod as owner, so a claim never outlives its pod. Templates are shared: one per request
shape and namespace, named by a digest of the shape, so the webhook only ever creates a
template that does not exist yet (:mod:`hami.scheduler.dra_admission`).

HAMi's annotations become CEL selectors and constraints: ``nvidia.com/use-gpuuuid`` /
``nouse-gpuuuid`` (UUID lists), ``use-gputype`` / ``nouse-gputype`` (model substrings, case
does not matter), ``nvidia.com/numa-bind: "true"`` (all GPUs on one NUMA node) and
``hami.io/gpu-scheduler-policy: topology-aware`` (all GPUs in one NVLink group). Values are
checked against a strict alphabet first, so no annotation can write CEL of its own; a bad value
is an admission denial that says which annotation and why.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hami.api import keys
from hami.api.admission import PatchOp, pointer
from hami.api.errors import WireFormatError
from hami.api.quantity import parse_int_quantity
from hami.core.dra import names

Manifest = Mapping[str, Any]
GPU_RESOURCES = (
    keys.NVIDIA_GPU,
    keys.NVIDIA_GPUMEM,
    keys.NVIDIA_GPUMEM_PERCENTAGE,
    keys.NVIDIA_GPUCORES,
)
TOPOLOGY_AWARE = "topology-aware"
REQUEST = "gpu"
TEMPLATE_PREFIX = "hami-gpu-"
_UUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,127}")
_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")
MAX_GPUS = 16


class TranslateError(ValueError):
    """The pod cannot be expressed as a claim; the message is the admission denial."""


@dataclass(frozen=True, slots=True)
class DraMode:
    """Which pods the webhook sends down the DRA path (chart: ``dra.namespaces``)."""

    namespaces: frozenset[str] = frozenset()
    device_class: str = names.DEVICE_CLASS

    def applies(self, pod: Manifest) -> bool:
        meta = pod.get("metadata") or {}
        if (meta.get("labels") or {}).get(keys.WEBHOOK_LABEL) == "ignore":
            return False
        if meta.get("namespace", "default") in self.namespaces:
            return True
        selector = (pod.get("spec") or {}).get("nodeSelector") or {}
        return names.is_dra_node(selector)


@dataclass(frozen=True, slots=True)
class Shape:
    """What one container asks for, in claim terms."""

    count: int
    memory_mib: int = 0  # 0: the device's default (all of its memory)
    cores: int = 0
    uuids: tuple[str, ...] = ()
    not_uuids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    not_types: tuple[str, ...] = ()
    numa: bool = False
    nvlink: bool = False


@dataclass(frozen=True, slots=True)
class Translation:
    patch: tuple[PatchOp, ...] = ()
    templates: tuple[Manifest, ...] = field(default_factory=tuple)


def _int(value: object, what: str) -> int:
    try:
        return parse_int_quantity(value, what)
    except WireFormatError as exc:
        raise TranslateError(f"{what}: {exc}") from None


def _listed(annotations: Mapping[str, str], key: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    raw = annotations.get(key)
    if raw is None:
        return ()
    items = tuple(v.strip() for v in raw.split(",") if v.strip())
    if not items:
        raise TranslateError(f"annotation {key}: empty list")
    for item in items:
        if not pattern.fullmatch(item):
            allowed = "-" if pattern is _UUID else "space . _ -"
            raise TranslateError(
                f"annotation {key}: {item!r} is not a valid value "
                f"(letters, digits and {allowed} only)"
            )
    return items


def shape_of(container: Manifest, annotations: Mapping[str, str]) -> Shape | None:
    """The container's claim shape, or None when it asks for no GPU."""
    resources = container.get("resources") or {}
    asked = {**(resources.get("requests") or {}), **(resources.get("limits") or {})}
    if not any(r in asked for r in GPU_RESOURCES):
        return None
    name = container.get("name", "?")
    _guard(container, name)
    count = _int(asked.get(keys.NVIDIA_GPU, 1), f"container {name}: {keys.NVIDIA_GPU}")
    if not 1 <= count <= MAX_GPUS:
        raise TranslateError(f"container {name}: {keys.NVIDIA_GPU} must be 1–{MAX_GPUS}")
    memory = _int(asked.get(keys.NVIDIA_GPUMEM, 0), f"container {name}: {keys.NVIDIA_GPUMEM}")
    percent = _int(
        asked.get(keys.NVIDIA_GPUMEM_PERCENTAGE, 100),
        f"container {name}: {keys.NVIDIA_GPUMEM_PERCENTAGE}",
    )
    if percent != 100 and not memory:
        raise TranslateError(
            f"container {name}: {keys.NVIDIA_GPUMEM_PERCENTAGE} other than 100 cannot be a "
            f"DRA capacity request; ask {keys.NVIDIA_GPUMEM} (MiB) instead"
        )
    cores = _int(asked.get(keys.NVIDIA_GPUCORES, 0), f"container {name}: {keys.NVIDIA_GPUCORES}")
    if not 0 <= cores <= 100:
        raise TranslateError(f"container {name}: {keys.NVIDIA_GPUCORES} must be 0–100")
    if memory < 0:
        raise TranslateError(f"container {name}: {keys.NVIDIA_GPUMEM} must not be negative")
    policy = annotations.get(keys.GPU_SCHEDULER_POLICY, "")
    return Shape(
        count=count,
        memory_mib=memory,
        cores=cores,
        uuids=_listed(annotations, keys.USE_GPUUUID, _UUID),
        not_uuids=_listed(annotations, keys.NOUSE_GPUUUID, _UUID),
        types=_listed(annotations, keys.USE_GPUTYPE, _TYPE),
        not_types=_listed(annotations, keys.NOUSE_GPUTYPE, _TYPE),
        numa=annotations.get(keys.NUMA_BIND, "").lower() == "true" and count > 1,
        nvlink=policy == TOPOLOGY_AWARE and count > 1,
    )


def _guard(container: Manifest, name: str) -> None:
    """What the extender path refuses a device container refuses here too (docs/security.md):
    privileged, or setting libvgpu's variables itself (its value could override the claim's)."""
    if (container.get("securityContext") or {}).get("privileged") is True:
        raise TranslateError(f"container {name} is privileged")
    own = [
        str(e.get("name"))
        for e in container.get("env") or []
        if keys.is_isolation_env(str(e.get("name")))
    ]
    if own:
        raise TranslateError(
            f"container {name} sets {', '.join(own)}: the claim's CDI spec sets the GPU limits "
            "and a container's own value would override them"
        )
    for source in container.get("envFrom") or []:
        if keys.env_prefix_reaches_isolation(str(source.get("prefix") or "")):
            raise TranslateError(
                f"container {name} takes env from a ConfigMap or Secret without a prefix that "
                "keeps out libvgpu's variables (CUDA_DEVICE_MEMORY_LIMIT*, ...); give it one "
                "such as APP_"
            )


def _attr(name: str) -> str:
    return f'device.attributes["{names.DRIVER}"].{name}'


def _strings(values: Sequence[str]) -> str:
    return json.dumps(list(values))  # validated values: a JSON list is a CEL list literal


def selectors(shape: Shape) -> list[str]:
    """The CEL expressions of the shape's annotations (each value already validated)."""
    out = []
    if shape.uuids:
        out.append(f"{_attr(names.ATTR_UUID)} in {_strings(shape.uuids)}")
    if shape.not_uuids:
        out.append(f"!({_attr(names.ATTR_UUID)} in {_strings(shape.not_uuids)})")
    product = f"{_attr(names.ATTR_PRODUCT)}.lowerAscii()"
    if shape.types:
        wanted = _strings([t.lower() for t in shape.types])
        out.append(f"{wanted}.exists(t, {product}.contains(t))")
    if shape.not_types:
        unwanted = _strings([t.lower() for t in shape.not_types])
        out.append(f"!{unwanted}.exists(t, {product}.contains(t))")
    return out


def claim_spec(shape: Shape, device_class: str = names.DEVICE_CLASS) -> dict[str, Any]:
    """The ResourceClaim spec of one container."""
    capacity: dict[str, str] = {}
    if shape.memory_mib:
        capacity[names.MEMORY] = f"{shape.memory_mib}Mi"
    if shape.cores:
        capacity[names.CORES] = str(shape.cores)
    exactly: dict[str, Any] = {
        "deviceClassName": device_class,
        "allocationMode": "ExactCount",
        "count": shape.count,
    }
    if cel := selectors(shape):
        exactly["selectors"] = [{"cel": {"expression": e}} for e in cel]
    if capacity:
        exactly["capacity"] = {"requests": capacity}
    devices: dict[str, Any] = {"requests": [{"name": REQUEST, "exactly": exactly}]}
    constraints: list[dict[str, Any]] = []
    if shape.count > 1:  # HAMi's gpu: N means N different GPUs
        constraints.append(
            {"requests": [REQUEST], "distinctAttribute": names.qualified(names.ATTR_UUID)}
        )
    if shape.numa:
        constraints.append({"requests": [REQUEST], "matchAttribute": names.ATTR_NUMA})
    if shape.nvlink:
        constraints.append(
            {"requests": [REQUEST], "matchAttribute": names.qualified(names.ATTR_NVLINK)}
        )
    if constraints:
        devices["constraints"] = constraints
    return {"devices": devices}


def template(
    shape: Shape, namespace: str, device_class: str = names.DEVICE_CLASS
) -> dict[str, Any]:
    """The shared ResourceClaimTemplate of a shape in a namespace, named by its digest."""
    spec = {"spec": claim_spec(shape, device_class)}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return {
        "apiVersion": names.RESOURCE_API,
        "kind": "ResourceClaimTemplate",
        "metadata": {
            "name": f"{TEMPLATE_PREFIX}{digest}",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "hami"},
        },
        "spec": spec,
    }


def _without_gpu(resources: Manifest, claim: str) -> dict[str, Any]:
    out = dict(resources)
    for section in ("limits", "requests"):
        if section in out:
            kept = {k: v for k, v in (out[section] or {}).items() if k not in GPU_RESOURCES}
            if kept:
                out[section] = kept
            else:
                del out[section]
    out["claims"] = [*(out.get("claims") or []), {"name": claim}]
    return out


def translate(pod: Manifest, mode: DraMode) -> Translation:
    """The patch that gives each GPU container a claim from a template, and the templates it
    needs. Raises :class:`TranslateError` for what a claim cannot express."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    namespace = str(meta.get("namespace") or "default")
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    ops: list[PatchOp] = []
    claims: list[dict[str, str]] = []
    templates: dict[str, Manifest] = {}
    for section in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(section) or []):
            shape = shape_of(container, annotations)
            if shape is None:
                continue
            made = template(shape, namespace, mode.device_class)
            name = made["metadata"]["name"]
            templates[name] = made
            claim = f"{REQUEST}-{'init-' if section == 'initContainers' else ''}{index}"
            claims.append({"name": claim, "resourceClaimTemplateName": name})
            resources = _without_gpu(container.get("resources") or {}, claim)
            ops.append(PatchOp("add", pointer("spec", section, index, "resources"), resources))
    if not claims:
        return Translation()
    existing = spec.get("resourceClaims") or []
    taken = {c.get("name") for c in existing}
    clash = sorted(c["name"] for c in claims if c["name"] in taken)
    if clash:
        raise TranslateError(f"pod already has resourceClaims named {', '.join(clash)}")
    ops.append(PatchOp("add", "/spec/resourceClaims", [*existing, *claims]))
    return Translation(patch=tuple(ops), templates=tuple(templates.values()))
