"""The `--format table` rendering of a simulation report, for a person."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from rich.console import Console
from rich.table import Table

from hami.api.errors import WireFormatError
from hami.core.migview import instance_text, letter
from hami.core.vendor import Vendor


def _devices(annotations: Mapping[str, str], vendors: Mapping[str, Vendor]) -> str:
    """Each vendor's allocation, decoded by the vendor itself, one line per container."""
    lines = []
    for key, vendor in vendors.items():
        try:
            found = vendor.allocated_devices(annotations)
        except WireFormatError as exc:
            lines.append(f"{key}: unreadable ({exc})")
            continue
        if found is None or not any(found):
            continue
        for position, container in enumerate(found):
            parts = [f"{d.uuid} {vendor.describe(d)}" for d in container]
            lines.append(f"{key} [{position}] " + (", ".join(parts) if parts else "-"))
    return "\n".join(lines)


def _reason(result: Mapping[str, object]) -> str:
    if "note" in result:
        return str(result["note"])
    reasons = cast(Mapping[str, str], result.get("reasons") or {})
    if result.get("node"):
        return ""
    if not reasons:
        return "no node with devices"
    return "\n".join(f"{node}: {text}" for node, text in reasons.items())


def _render_mig(nodes: Mapping[str, Mapping[str, object]], console: Console) -> None:
    """MIG GPUs after placement: the slice map (a letter per instance, ``.`` free) and each
    instance (profile, slices, pod, MIG UUID once realised)."""
    gpus = [(name, g) for name, info in nodes.items() for g in _docs(info.get("mig"))]
    if not gpus:
        return
    table = Table(title="MIG GPUs after placement", show_lines=True)
    for column in ("node", "GPU", "slices", "instances"):
        table.add_column(column)
    for name, gpu in gpus:
        listed = _docs(gpu.get("instances"))
        lines = [f"{letter(n)}  {instance_text(i)}" for n, i in enumerate(listed)]
        table.add_row(
            name,
            f"{gpu['index']} {gpu['uuid']}\n{gpu['model']}",
            f"[{gpu['slice_map']}]\n{gpu['slices_used']}/{gpu['slices']} used",
            "\n".join(lines) or "no instances",
        )
    console.print(table)


def _render_dra(summary: Mapping[str, object], console: Console) -> None:
    """DRA mode's allocations (kube-scheduler's, from the ResourceClaims: docs/dra.md)."""
    if "dra_allocations" not in summary:
        return
    table = Table(title="DRA allocations (ResourceClaims, placed by kube-scheduler)")
    for column in ("pod", "claim", "node", "device", "memory", "cores"):
        table.add_column(column)
    for a in _docs(summary["dra_allocations"]):
        table.add_row(
            f"{a['namespace']}/{a['pod'] or '-'}",
            str(a["claim"]),
            str(a["node"]),
            str(a["device"]),
            f"{a['memory_mib']} MiB",
            str(a["cores"]),
        )
    console.print(table)


def _docs(value: object) -> list[Mapping[str, object]]:
    return cast(list[Mapping[str, object]], value) if isinstance(value, list) else []


def render(document: Mapping[str, object], console: Console, vendors: Mapping[str, Vendor]) -> None:
    placements = Table(title="Placements", show_lines=True)
    for column in ("pod", "node", "devices per container", "why not placed"):
        placements.add_column(column)
    for result in cast(list[Mapping[str, object]], document["results"]):
        annotations = cast(Mapping[str, str], result.get("annotations") or {})
        placements.add_row(
            str(result["pod"]),
            str(result.get("node") or "-"),
            _devices(annotations, vendors),
            _reason(result),
        )
    console.print(placements)
    summary = cast(Mapping[str, object], document["summary"])
    nodes = Table(title="Nodes after placement")
    for column in ("node", "devices", "tasks", "memory allocated", "cores allocated"):
        nodes.add_column(column)
    for name, info in cast(Mapping[str, Mapping[str, object]], summary["nodes"]).items():
        nodes.add_row(
            f"{name} (DRA)" if info.get("mode") == "dra" else name,
            str(info["devices"]),
            str(info["tasks"]),
            f"{info['memory_allocated_mib']}/{info['memory_mib']} MiB ({info['memory_allocated_pct']}%)",
            f"{info['cores_allocated']}/{info['cores']} ({info['cores_allocated_pct']}%)",
        )
    console.print(nodes)
    _render_dra(summary, console)
    _render_mig(cast(Mapping[str, Mapping[str, object]], summary["nodes"]), console)
    cluster = cast(Mapping[str, object], summary["cluster"])
    console.print(
        f"placed {summary['placed']} of {summary['pods']} pods ({summary['failed']} failed); "
        f"memory {cluster['memory_allocated_pct']}% and cores {cluster['cores_allocated_pct']}% "
        f"allocated; fragmentation {cluster['fragmentation_pct']}% "
        f"({cluster['stranded_memory_mib']} of {cluster['free_memory_mib']} MiB free memory "
        f"unusable by a {cluster['median_request_mib']} MiB request)"
    )
