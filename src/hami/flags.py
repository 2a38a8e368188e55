"""Command-line values the commands share: Go-style durations, as HAMi's flags take them
(``hami scheduler``, ``hami monitor``), and the device-config options of the tools that
predict or show the scheduler (``hami explain``, ``hami webui``, ``hami sim``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds from ``30``, ``28s``, ``5m`` or ``1m30s`` (Go duration style)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise typer.BadParameter(f"{text!r} is not a duration (e.g. 30s, 5m)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


DeviceConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Scheduler device config. Default: the one the scheduler runs with (the local "
        "cluster's with --name, else the chart's ConfigMap), else the vendors the nodes register.",
    ),
]
ClusterNameOption = Annotated[
    str | None,
    typer.Option("--name", help="A local cluster (e.g. demo): its kubeconfig and device config."),
]
