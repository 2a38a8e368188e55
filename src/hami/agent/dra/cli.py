"""``hami dra-plugin``: the DRA kubelet plugin of one node, or ``--simulate`` for kwok nodes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

from hami import aio

log = logging.getLogger(__name__)
Opt = typer.Option


def dra_plugin_main(
    node_name: Annotated[str | None, Opt(envvar="NODE_NAME", help="This node's name.")] = None,
    backend: Annotated[str, Opt(help="Device discovery: nvml or fake.")] = "nvml",
    inventory: Annotated[
        Path | None, Opt(help="Fake inventory (YAML) for --backend fake and --simulate.")
    ] = None,
    kubeconfig: Annotated[
        str | None, Opt(envvar="KUBECONFIG", help="Kubeconfig (in-cluster config without).")
    ] = None,
    kubelet_dir: Annotated[
        Path, Opt(help="kubelet's root directory (plugins_registry/ and plugins/ below it).")
    ] = Path("/var/lib/kubelet"),
    cdi_spec_dir: Annotated[
        Path, Opt(envvar="CDI_SPEC_DIR", help="Where the prepared claims' CDI specs go.")
    ] = Path("/var/run/cdi"),
    hook_path: Annotated[
        Path, Opt(envvar="HOOK_PATH", help="HAMi-core install root (<hook>/vgpu/libvgpu.so).")
    ] = Path("/usr/local"),
    lock_dir: Annotated[Path, Opt(help="libvgpu's lock directory on the host.")] = Path(
        "/tmp/vgpulock"
    ),
    interval: Annotated[
        float, Opt(help="Seconds between re-discoveries (GPUs added or removed).")
    ] = 30.0,
    simulate: Annotated[
        bool, Opt(help="Publish the slices of kwok nodes (--nodes) and prepare nothing.")
    ] = False,
    nodes: Annotated[
        list[str] | None, Opt(help="--simulate: name[=inventory.yaml], repeatable or comma lists.")
    ] = None,
) -> None:
    """Run the DRA kubelet plugin (driver hami-core-gpu.project-hami.io), or publish the ResourceSlices of kwok nodes (--simulate).

    docs/dra.md describes the plugin, its slices and how claims are prepared."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for chatty in ("httpx", "httpx2"):  # one line per API request otherwise
        logging.getLogger(chatty).setLevel(logging.WARNING)
    from hami.agent.errors import AgentError, ConfigError

    try:
        if simulate:
            runner = _simulate(nodes or [], inventory, kubeconfig, interval)
        else:
            if not node_name:
                raise ConfigError("--node-name (or env NODE_NAME) is required")
            from hami.agent.config.settings import Settings

            settings = Settings(
                node_name=node_name,
                hook_path=hook_path,
                lock_dir=lock_dir,
                cdi_spec_dir=cdi_spec_dir,
            )
            runner = _serve(settings, backend, inventory, kubeconfig, kubelet_dir, interval)
        with contextlib.suppress(KeyboardInterrupt):
            aio.run(_until_signal(runner))
    except (ConfigError, AgentError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


async def _until_signal(main: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(main)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _serve(
    settings: Any,
    backend: str,
    inventory: Path | None,
    kubeconfig: str | None,
    kubelet_dir: Path,
    interval: float,
) -> None:
    from hami.agent.discovery.port import open_backend
    from hami.agent.dra.kube import LightkubeDra
    from hami.agent.dra.plugin import DraNode, Sockets, run

    def reopen() -> Any:
        return open_backend(backend, inventory, settings.node_name)

    kube = LightkubeDra.from_kubeconfig(kubeconfig)
    node = DraNode(settings, reopen(), kube)
    try:
        await run(node, Sockets(kubelet_dir), interval, reopen)
    finally:
        node.source.close()  # the one in use: a re-discovery may have replaced the first
        await kube.close()


async def _simulate(
    items: list[str], inventory: Path | None, kubeconfig: str | None, interval: float
) -> None:
    from hami.agent.dra.kube import LightkubeDra
    from hami.agent.dra.simulate import DraSimulator
    from hami.agent.errors import ConfigError
    from hami.agent.simulation.simulator import parse_nodes

    sim_nodes = parse_nodes(items, inventory)
    if not sim_nodes:
        raise ConfigError("--simulate needs --nodes name[=inventory.yaml],…")
    kube = LightkubeDra.from_kubeconfig(kubeconfig)
    try:
        await DraSimulator(kube, sim_nodes).run(interval)
    finally:
        await kube.close()
