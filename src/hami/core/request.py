"""From a Pod manifest to a `PodRequest` (wire-format.md §1.2, §2.1, §2.3, §3.4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

from hami.api import annotations as codec
from hami.api import keys
from hami.api.errors import WireFormatError
from hami.core.config import GPU_POLICIES, NODE_POLICIES, SchedulerConfig
from hami.core.errors import RequestInvalid
from hami.core.model import ContainerRequest, PodOptions, PodRequest
from hami.core.policy import parse_gpu_policy
from hami.core.vendor import Vendor

Manifest = Mapping[str, object]


def mapping(value: object) -> Mapping[str, object]:
    """``value`` if it is a mapping (a JSON object), else an empty one."""
    return cast(Mapping[str, object], value) if isinstance(value, Mapping) else {}


def _containers(spec: Mapping[str, object], field: str) -> list[Manifest]:
    items = spec.get(field) or []
    if not isinstance(items, list):
        return []
    return [cast(Manifest, c) for c in items if isinstance(c, Mapping)]


def pod_identity(pod: Manifest) -> tuple[str, str]:
    meta = mapping(pod.get("metadata"))
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def metadata_annotations(obj: Manifest) -> dict[str, str]:
    raw = mapping(mapping(obj.get("metadata")).get("annotations"))
    return {str(k): str(v) for k, v in raw.items()}


def parse_options(
    annotations: Mapping[str, str], config: SchedulerConfig, where: str
) -> PodOptions:
    """Per-pod options from the pod's annotations, with the configured defaults."""
    node_policy = annotations.get(keys.NODE_SCHEDULER_POLICY, "").strip()
    node_policy = node_policy or config.node_scheduler_policy
    if node_policy not in NODE_POLICIES:
        raise RequestInvalid(
            where, keys.NODE_SCHEDULER_POLICY, f"{node_policy!r} is not one of {NODE_POLICIES}"
        )
    gpu_value = annotations.get(keys.GPU_SCHEDULER_POLICY, "").strip()
    gpu_policy = parse_gpu_policy(gpu_value or config.gpu_scheduler_policy)
    unknown = [t for t in gpu_policy if t not in GPU_POLICIES]
    if unknown:
        raise RequestInvalid(
            where, keys.GPU_SCHEDULER_POLICY, f"unknown policy {unknown[0]!r} (use {GPU_POLICIES})"
        )
    try:
        weights = codec.decode_scoring_weights(annotations.get(keys.DEVICE_SCORING_WEIGHTS))
        numa_raw = annotations.get(keys.NUMA_BIND, "").strip()
        numa_bind = codec.parse_go_bool(keys.NUMA_BIND, numa_raw) if numa_raw else False
    except WireFormatError as exc:
        raise RequestInvalid(where, exc.key, f"{exc.piece!r}: {exc.why}") from None
    mode = annotations.get(keys.VGPU_MODE, "").strip() or None
    return PodOptions(
        node_policy=node_policy,
        gpu_policy=gpu_policy,
        weights=weights,
        use_types=codec.decode_comma_list(annotations.get(keys.USE_GPUTYPE)),
        nouse_types=codec.decode_comma_list(annotations.get(keys.NOUSE_GPUTYPE)),
        use_uuids=codec.decode_comma_list(annotations.get(keys.USE_GPUUUID)),
        nouse_uuids=codec.decode_comma_list(annotations.get(keys.NOUSE_GPUUUID)),
        numa_bind=numa_bind,
        vgpu_mode=mode,
    )


def _container_requests(
    container: Manifest, vendors: Sequence[Vendor], where: str, admit: bool
) -> tuple[ContainerRequest, ...]:
    found = []
    for vendor in vendors:
        subject = container
        if admit:
            subject = vendor.admit_container(container, where).container
        request = vendor.parse_container(subject, where)
        if request is not None:
            found.append(request)
    return tuple(found)


def parse_pod(
    pod: Manifest,
    vendors: Mapping[str, Vendor],
    config: SchedulerConfig,
    *,
    admit: bool = False,
) -> PodRequest:
    """The pod's requests, init containers first. ``admit`` applies the webhook's defaults first
    (for manifests that did not pass through the admission webhook, e.g. in `hami sim`)."""
    namespace, name = pod_identity(pod)
    spec = mapping(pod.get("spec"))
    inits = _containers(spec, "initContainers")
    apps = _containers(spec, "containers")
    ordered = list(vendors.values())
    requests = []
    names = []
    for container in [*inits, *apps]:
        cname = str(container.get("name") or "?")
        where = f"pod {namespace}/{name} container {cname}"
        requests.append(_container_requests(container, ordered, where, admit))
        names.append(cname)
    meta = mapping(pod.get("metadata"))
    annotations = metadata_annotations(pod)
    return PodRequest(
        namespace=namespace,
        name=name,
        uid=str(meta.get("uid") or ""),
        containers=tuple(requests),
        init_count=len(inits),
        container_names=tuple(names),
        options=parse_options(annotations, config, f"pod {namespace}/{name}"),
        annotations=annotations,
    )
