"""`hami webui`: the read-only web UI on its own port, over a live cluster or sim files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from hami import devconfig
from hami.core.errors import ConfigError
from hami.flags import ClusterNameOption, DeviceConfigOption
from hami.k8s.client import LightkubeAPI, load_kubeconfig
from hami.vendors import registry
from hami.webui.app import WebUI, create_app
from hami.webui.history import History
from hami.webui.livesource import KubeSource
from hami.webui.monitor import MonitorProbe
from hami.webui.prometheus import PrometheusHistory
from hami.webui.security import LOOPBACK_HOSTS
from hami.webui.simsource import SimSource, read_manifests
from hami.webui.snapshot import Source, SourceError


def webui(
    cluster: Annotated[
        Path | None, typer.Option("--cluster", help="Sim input: Nodes and placed Pods.")
    ] = None,
    pods: Annotated[Path | None, typer.Option("--pods", help="Sim input: pods to place.")] = None,
    kubeconfig: Annotated[Path | None, typer.Option(help="Live cluster kubeconfig.")] = None,
    config: DeviceConfigOption = None,
    name: ClusterNameOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8090,
    monitor_port: Annotated[
        int, typer.Option(help="Node monitor port for utilisation (0: off).")
    ] = 0,
    history_interval: Annotated[float, typer.Option(help="Seconds between samples.")] = 10.0,
    prometheus_url: Annotated[
        str,
        typer.Option(
            help="Prometheus that scrapes hami (e.g. http://prometheus:9090): the charts read "
            "/api/v1/query_range; without it, or while it does not answer, the UI's own history."
        ),
    ] = "",
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            help="Host name the UI may be opened by (repeatable; '*': any). Default: the "
            "loopback names when listening on loopback, else any."
        ),
    ] = None,
) -> None:
    """Serve the web UI and its JSON API (docs/api.md)."""
    import uvicorn

    try:
        source: Source
        if cluster is not None:
            nodes = [o for o in read_manifests(cluster) if o.get("kind") == "Node"]
            settings = devconfig.for_files(config, name, nodes).config
            source = SimSource(cluster, pods, registry.build(settings), settings)
        else:
            target, resolved = devconfig.live_target(kubeconfig, config, name)
            settings = (resolved or asyncio.run(_from_cluster(target))).config
            source = KubeSource(live_api(target), registry.build(settings), settings)
    except (ConfigError, SourceError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    probe = MonitorProbe(monitor_port) if monitor_port else None
    if prometheus_url and not prometheus_url.startswith(("http://", "https://")):
        typer.echo(
            f"error: --prometheus-url {prometheus_url!r}: use http://… or https://…", err=True
        )
        raise typer.Exit(code=2)
    prometheus = PrometheusHistory(prometheus_url) if prometheus_url else None
    ui = WebUI(source, History(interval=history_interval), probe, prometheus=prometheus)
    hosts = allowed_host or (list(LOOPBACK_HOSTS) if host in LOOPBACK_HOSTS else ["*"])
    app = create_app(ui, hosts, freeze_gc=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


async def _from_cluster(kubeconfig: Path | None) -> devconfig.Resolved:
    """The scheduler's device config, read over a connection of its own (the server's runs in
    uvicorn's loop)."""
    api = live_api(kubeconfig)
    try:
        return await devconfig.from_cluster(api)
    finally:
        await api.close()


def live_api(kubeconfig: Path | None) -> LightkubeAPI:
    """The `KubeAPI` for a kubeconfig (SourceError when it cannot be read)."""
    try:
        return LightkubeAPI(load_kubeconfig(kubeconfig), user_agent="hami-webui")
    except Exception as exc:  # lightkube raises several kinds for a bad or missing file
        raise SourceError(f"kubeconfig: {exc}") from None
