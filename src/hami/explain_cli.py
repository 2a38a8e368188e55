"""`hami explain POD [-n NS]` on a live cluster, or `--cluster CLUSTER.yaml --pods PODS.yaml`
on sim input files (the pods before POD in PODS.yaml are placed first, as `hami sim` does)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from hami.config import ConfigError, load_config
from hami.core.config import SchedulerConfig
from hami.core.vendor import Vendor
from hami.explain import Explanation
from hami.vendors import registry
from hami.webui import views
from hami.webui.source import (
    KubeSource,
    Snapshot,
    SourceError,
    build_snapshot,
    place_in_order,
    read_manifests,
)


def explain(
    pod: Annotated[str, typer.Argument(help="Pod name (or NAMESPACE/NAME).")],
    namespace: Annotated[str, typer.Option("-n", "--namespace", help="Pod namespace.")] = "default",
    cluster: Annotated[
        Path | None, typer.Option("--cluster", help="Sim input: Nodes and placed Pods.")
    ] = None,
    pods: Annotated[
        Path | None, typer.Option("--pods", help="Sim input: pods to place, POD among them.")
    ] = None,
    kubeconfig: Annotated[Path | None, typer.Option(help="Live cluster kubeconfig.")] = None,
    config: Annotated[Path | None, typer.Option(help="Scheduler configuration file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Why a pod does not fit, node by node, and what would make it fit."""
    if "/" in pod:
        namespace, pod = pod.split("/", 1)
    try:
        settings = load_config(config)
        vendors = registry.build(settings)
        if cluster is not None:
            snapshot = _sim(cluster, pods, f"{namespace}/{pod}", vendors, settings)
        elif pods is not None:
            raise SourceError("--pods needs --cluster")
        else:
            snapshot = asyncio.run(_live(kubeconfig, vendors, settings))
        result = _explain(snapshot, namespace, pod, vendors)
    except (ConfigError, SourceError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    _print(result, as_json)


def _sim(
    cluster: Path,
    pods: Path | None,
    key: str,
    vendors: dict[str, Vendor],
    config: SchedulerConfig,
) -> Snapshot:
    objs = read_manifests(cluster)
    nodes = [o for o in objs if o.get("kind") == "Node"]
    placed = [o for o in objs if o.get("kind") == "Pod"]
    queued = read_manifests(pods) if pods is not None else []
    base = build_snapshot(nodes, placed, vendors, config, admit=True)
    return place_in_order(base, queued, vendors, config, stop_before=key)


async def _live(
    kubeconfig: Path | None, vendors: dict[str, Vendor], config: SchedulerConfig
) -> Snapshot:
    from hami.webui.cli import live_api  # the web server's modules, for a live cluster only

    api = live_api(kubeconfig)
    try:
        return await KubeSource(api, vendors, config).snapshot()
    finally:
        await api.close()


def _explain(
    snapshot: Snapshot, namespace: str, name: str, vendors: dict[str, Vendor]
) -> Explanation | str:
    pod = snapshot.pod(namespace, name)
    if pod is None:
        raise SourceError(f"pod {namespace}/{name} not found (or it asks for no device)")
    if pod.placed is not None:
        return f"{pod.key} holds devices on node {pod.node}: nothing to explain"
    if pod.request is None:
        raise SourceError(f"pod {pod.key}: {pod.problem}")
    return views.explain_pod(snapshot, pod, vendors)


def _print(result: Explanation | str, as_json: bool) -> None:
    if isinstance(result, str):
        doc: object = {"message": result}
        lines = [result]
    else:
        doc = result.to_dict()
        lines = result.lines()
    if as_json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        typer.echo("\n".join(lines))
