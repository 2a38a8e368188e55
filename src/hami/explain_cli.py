"""`hami explain POD [-n NS]` on a live cluster, or `--cluster CLUSTER.yaml --pods PODS.yaml`
on sim input files (the pods before POD in PODS.yaml are placed first, as `hami sim` does)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from hami import devconfig
from hami.core.dra.explain import explain_pod, is_dra_pod
from hami.core.errors import ConfigError
from hami.core.explain import Explanation
from hami.core.request import pod_identity
from hami.core.vendor import Vendor
from hami.flags import ClusterNameOption, DeviceConfigOption
from hami.k8s.api import PODS, KubeAPIError, Manifest
from hami.vendors import registry
from hami.webui import views
from hami.webui.decode import build_snapshot
from hami.webui.livesource import KubeSource
from hami.webui.simsource import place_in_order, read_manifests
from hami.webui.snapshot import Snapshot, SourceError


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
    config: DeviceConfigOption = None,
    name: ClusterNameOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Why a pod does not fit, node by node, and what would make it fit."""
    if "/" in pod:
        namespace, pod = pod.split("/", 1)
    try:
        if cluster is not None:
            snapshot, vendors, manifest = _sim(cluster, pods, f"{namespace}/{pod}", config, name)
            if manifest is not None and is_dra_pod(manifest):  # its claims in the same files
                _print(_dra_files(manifest, cluster, pods), as_json)
                return
        elif pods is not None:
            raise SourceError("--pods needs --cluster")
        else:
            target, resolved = devconfig.live_target(kubeconfig, config, name)
            snapshot, vendors, manifest = asyncio.run(_live(target, resolved, (namespace, pod)))
            if manifest is not None and is_dra_pod(manifest):  # docs/dra.md
                _print(asyncio.run(_dra(target, manifest)), as_json)
                return
        result = _explain(snapshot, namespace, pod, vendors, manifest)
    except (ConfigError, SourceError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    _print(result, as_json)


def _sim(
    cluster: Path, pods: Path | None, key: str, config_file: Path | None, name: str | None
) -> tuple[Snapshot, dict[str, Vendor], Manifest | None]:
    objs = read_manifests(cluster)
    nodes = [o for o in objs if o.get("kind") == "Node"]
    placed = [o for o in objs if o.get("kind") == "Pod"]
    config = devconfig.for_files(config_file, name, nodes).config
    vendors = registry.build(config)
    queued = read_manifests(pods) if pods is not None else []
    base = build_snapshot(nodes, placed, vendors, config, admit=True)
    snapshot = place_in_order(base, queued, vendors, config, stop_before=key)
    manifest = next((o for o in (*placed, *queued) if "/".join(pod_identity(o)) == key), None)
    return snapshot, vendors, manifest


async def _live(
    kubeconfig: Path | None,
    resolved: devconfig.Resolved | None,
    pod: tuple[str, str] | None = None,
) -> tuple[Snapshot, dict[str, Vendor], Manifest | None]:
    """The cluster as the scheduler sees it, its vendors, and ``pod``'s manifest (namespace,
    name): a DRA pod is explained from its claims, one the snapshot leaves out (asking for no
    device the vendors know) from its resources."""
    from hami.webui.cli import live_api  # the web server's modules, for a live cluster only

    api = live_api(kubeconfig)
    try:
        config = (resolved or await devconfig.from_cluster(api)).config
        vendors = registry.build(config)
        snapshot = await KubeSource(api, vendors, config).snapshot()
        manifest = None
        if pod is not None:
            with contextlib.suppress(KubeAPIError):
                manifest = await api.get(PODS, pod[1], pod[0])
        return snapshot, vendors, manifest
    finally:
        await api.close()


async def _dra(kubeconfig: Path | None, pod: Manifest) -> str:
    """A pod in DRA mode: its claims' allocations, or why they are not allocated."""
    from hami.draview import explain_live
    from hami.webui.cli import live_api

    api = live_api(kubeconfig)
    try:
        return await explain_live(api, pod)
    finally:
        await api.close()


def _dra_files(pod: Manifest, cluster: Path, pods: Path | None) -> str:
    """A DRA pod of the sim files, from the ResourceClaims and ResourceSlices they hold."""
    objs = [*read_manifests(cluster), *(read_manifests(pods) if pods is not None else [])]
    claims = [o for o in objs if o.get("kind") == "ResourceClaim"]
    slices = [o for o in objs if o.get("kind") == "ResourceSlice"]
    return "\n".join(explain_pod(pod, claims, slices))


def _explain(
    snapshot: Snapshot,
    namespace: str,
    name: str,
    vendors: dict[str, Vendor],
    manifest: Manifest | None = None,
) -> Explanation | str:
    pod = snapshot.pod(namespace, name)
    if pod is None:
        if manifest is None:
            raise SourceError(f"pod {namespace}/{name} not found")
        problems = devconfig.unknown_resources(manifest, vendors)
        if problems:
            raise SourceError(f"pod {namespace}/{name}: " + "; ".join(problems))
        return f"{namespace}/{name} asks for no device: kube-scheduler alone places it"
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
