"""`hami monitor`: the node-side vGPU monitor (HAMi's vGPUmonitor, wire-format.md §6.3)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Annotated

import typer

from hami import aio
from hami.flags import parse_duration
from hami.monitor.main import ServeSettings, serve
from hami.monitor.monitor import HookPathError, MonitorSettings, check_hook_path


def monitor(
    node_name: Annotated[str, typer.Option(envvar="NODE_NAME", help="this node's name")],
    hook_path: Annotated[
        Path,
        typer.Option(
            envvar="HOOK_PATH",
            help="the device plugin's prefix: regions under <prefix>/vgpu/containers/",
        ),
    ] = Path("/usr/local"),
    metrics_bind_address: Annotated[str, typer.Option(help="host:port of /metrics")] = ":9394",
    resync_interval: Annotated[
        str, typer.Option(envvar="HAMI_RESYNC_INTERVAL", help="grace before stale dirs go")
    ] = "5m",
    interval: Annotated[str, typer.Option(help="discovery and feedback period")] = "5s",
    feedback: Annotated[bool, typer.Option(help="write priority feedback")] = True,
    legacy_metrics: Annotated[bool, typer.Option(help="also export HAMi's old names")] = False,
    kubeconfig: Annotated[Path | None, typer.Option(help="kubeconfig (default: env)")] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO",
) -> None:
    """Export per-container GPU usage read from the shared-region files of this node."""
    try:
        check_hook_path(hook_path)
    except HookPathError as exc:
        typer.echo(f"hami monitor: {exc}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    settings = ServeSettings(
        monitor=MonitorSettings(
            node=node_name,
            hook_path=hook_path,
            resync_interval=parse_duration(resync_interval),
            feedback=feedback,
        ),
        bind=metrics_bind_address,
        interval=parse_duration(interval),
        legacy_metrics=legacy_metrics,
        kubeconfig=kubeconfig,
    )
    with contextlib.suppress(KeyboardInterrupt):
        aio.run(serve(settings))
