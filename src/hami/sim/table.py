"""The `--format table` rendering of a simulation report, for a person."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from rich.console import Console
from rich.table import Table

from hami.api.errors import WireFormatError
from hami.api.types import ContainerDevice
from hami.core.vendor import Vendor, cores_text


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
            parts = [f"{d.uuid} {d.usedmem}MiB/{_cores(vendor, d)}" for d in container]
            lines.append(f"{key} [{position}] " + (", ".join(parts) if parts else "-"))
    return "\n".join(lines)


def _cores(vendor: Vendor, device: ContainerDevice) -> str:
    text = cores_text(vendor, device)
    return text.removesuffix(" cores") if text.endswith("% cores") else text


def _reason(result: Mapping[str, object]) -> str:
    if "note" in result:
        return str(result["note"])
    reasons = cast(Mapping[str, str], result.get("reasons") or {})
    if result.get("node"):
        return ""
    if not reasons:
        return "no node with devices"
    return "\n".join(f"{node}: {text}" for node, text in reasons.items())


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
            name,
            str(info["devices"]),
            str(info["tasks"]),
            f"{info['memory_allocated_mib']}/{info['memory_mib']} MiB ({info['memory_allocated_pct']}%)",
            f"{info['cores_allocated']}/{info['cores']} ({info['cores_allocated_pct']}%)",
        )
    console.print(nodes)
    cluster = cast(Mapping[str, object], summary["cluster"])
    console.print(
        f"placed {summary['placed']} of {summary['pods']} pods ({summary['failed']} failed); "
        f"memory {cluster['memory_allocated_pct']}% and cores {cluster['cores_allocated_pct']}% "
        f"allocated; fragmentation {cluster['fragmentation_pct']}% "
        f"({cluster['stranded_memory_mib']} of {cluster['free_memory_mib']} MiB free memory "
        f"unusable by a {cluster['median_request_mib']} MiB request)"
    )
