"""``hami explain`` for a pod in DRA mode (docs/dra.md): each of its claims, allocated (which
device of which node, how much memory and cores) or why not (capacity reasons from the slices
and claims, then kube-scheduler's own)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hami.api import keys
from hami.core.dra import names, records

Manifest = Mapping[str, Any]


def is_dra_pod(pod: Manifest) -> bool:
    return bool((pod.get("spec") or {}).get("resourceClaims"))


def _split(annotations: Mapping[str, str], key: str) -> list[str]:
    return [v.strip() for v in annotations.get(key, "").split(",") if v.strip()]


def eligible(annotations: Mapping[str, str], slices: Sequence[Manifest]) -> set[records.DeviceKey]:
    """The published devices the pod's HAMi annotations allow (the selectors the webhook made
    of ``use-gpuuuid``/``nouse-gpuuuid``/``use-gputype``/``nouse-gputype``)."""
    uuids, not_uuids = (
        _split(annotations, keys.USE_GPUUUID),
        _split(annotations, keys.NOUSE_GPUUUID),
    )
    types = [t.lower() for t in _split(annotations, keys.USE_GPUTYPE)]
    not_types = [t.lower() for t in _split(annotations, keys.NOUSE_GPUTYPE)]
    out = set()
    for item in slices:
        spec = item.get("spec") or {}
        pool = str((spec.get("pool") or {}).get("name", ""))
        for device in spec.get("devices") or []:
            attrs = device.get("attributes") or {}
            uuid = str((attrs.get(names.ATTR_UUID) or {}).get("string", ""))
            product = str((attrs.get(names.ATTR_PRODUCT) or {}).get("string", "")).lower()
            if (uuids and uuid not in uuids) or uuid in not_uuids:
                continue
            if types and not any(t in product for t in types):
                continue
            if any(t in product for t in not_types):
                continue
            out.add((pool, str(device.get("name"))))
    return out


def explain_pod(pod: Manifest, claims: Sequence[Manifest], slices: Sequence[Manifest]) -> list[str]:
    """Pure: the lines ``hami explain`` prints for a DRA pod. ``claims``: every claim of the
    cluster (what other namespaces consume counts against the same devices). Capacity is judged
    on the devices its HAMi annotations allow (other selectors and constraints are
    kube-scheduler's)."""
    meta = pod.get("metadata") or {}
    namespace = meta.get("namespace", "default")
    key = f"{namespace}/{meta.get('name')}"
    by_name = {
        str(m.get("name")): c
        for c in claims
        if (m := c.get("metadata") or {}).get("namespace", "default") == namespace
    }
    allowed = eligible(meta.get("annotations") or {}, slices)
    capacity = {k: v for k, v in records.capacities(slices).items() if k in allowed}
    used = records.usage(records.allocations(claims))
    node = (pod.get("spec") or {}).get("nodeName")
    lines = [f"{key} uses DRA claims" + (f", on node {node}" if node else ", not scheduled")]
    wanted = records.claim_names(pod)
    for entry in (pod.get("spec") or {}).get("resourceClaims") or []:
        name = str(entry.get("name"))
        claim = by_name.get(wanted.get(name, ""))
        if claim is None:
            source = entry.get("resourceClaimTemplateName") or "?"
            lines.append(
                f"  {name}: no claim yet (template {source}; kube-controller-manager makes it)"
            )
            continue
        allocated = records.allocations([claim])
        if allocated:
            for a in allocated:
                lines.append(
                    f"  {name} ({a.claim}): {a.device} on {a.node}, {a.memory_mib} MiB, {a.cores} cores"
                )
            continue
        lines.append(f"  {name} ({(claim.get('metadata') or {}).get('name')}): not allocated")
        if not capacity:
            lines.append("    no published device matches the pod's use-/nouse- annotations")
            continue
        reasons = records.why_unallocatable(claim, capacity, used) or [
            "the devices' free capacity allows it: selectors or constraints decide"
        ]
        lines += [f"    {r}" for r in reasons]
    reason = records.pending_reason(pod)
    if reason:
        lines.append(f"kube-scheduler: {reason}")
    return lines


def allocations_doc(claims: Sequence[Manifest], slices: Sequence[Manifest]) -> dict[str, Any]:
    """Pure: the web UI's ``/api/v1/dra/allocations`` document — every DRA allocation, and per
    published device its capacity and what the claims consume of it."""
    allocated = records.allocations(claims)
    used = records.usage(allocated)
    devices = [
        {
            "node": node,
            "device": device,
            "memory_bytes": have.memory_bytes,
            "cores": have.cores,
            "used_memory_bytes": used.get((node, device), records.Usage()).memory_bytes,
            "used_cores": used.get((node, device), records.Usage()).cores,
            "claims": used.get((node, device), records.Usage()).claims,
        }
        for (node, device), have in sorted(records.capacities(slices).items())
    ]
    return {
        "allocations": [
            {
                "namespace": a.namespace,
                "claim": a.claim,
                "pod": a.owner,
                "node": a.node,
                "device": a.device,
                "request": a.request,
                "memory_bytes": a.memory_bytes,
                "cores": a.cores,
            }
            for a in allocated
        ],
        "devices": devices,
        "overcommitted": records.overcommitted(used, records.capacities(slices)),
    }
