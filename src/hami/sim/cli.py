"""`hami sim CLUSTER.yaml PODS.yaml [--config CONFIG.yaml] [--format table|json]`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from hami import devconfig
from hami.core.errors import ConfigError
from hami.flags import ClusterNameOption, DeviceConfigOption
from hami.sim.load import SimInputError, load_cluster, load_pods, node_manifests
from hami.sim.run import report, simulate
from hami.sim.table import render
from hami.vendors import registry


class Format(StrEnum):
    table = "table"
    json = "json"


def sim(
    cluster: Annotated[Path, typer.Argument(help="Nodes (and placed Pods) as Kubernetes YAML.")],
    pods: Annotated[Path, typer.Argument(help="Pods to place, in order.")],
    config: DeviceConfigOption = None,
    name: ClusterNameOption = None,
    output: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
    now: Annotated[
        str | None, typer.Option(help="The time to record (ISO 8601); default: now.")
    ] = None,
) -> None:
    """Place pods on a simulated cluster with the real scheduling core and show the result."""
    try:
        settings = devconfig.for_files(config, name, node_manifests(cluster)).config
        vendors = registry.build(settings)
        loaded = load_cluster(cluster, vendors)
        requests = load_pods(pods, vendors, settings)
        document = report(simulate(loaded, requests, vendors), requests, _moment(now))
    except (ConfigError, SimInputError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    for warning in loaded.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if output is Format.json:
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        render(document, Console(width=140), vendors)


def _moment(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SimInputError(f"--now: {text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
