"""`hami cluster up|down|status|env`: a local control plane for trying hami by hand.

``up`` starts etcd, kube-apiserver, kube-scheduler and kwok in the background (detached: they
keep running after the command returns) and records them in ``$HAMI_CACHE/run/<name>/``;
``up --foreground`` instead stays attached and stops everything on Ctrl-C. ``down`` stops a
detached cluster, ``status`` reports it, and ``env`` prints the ``export KUBECONFIG=...`` line.
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from hami.cluster import paths
from hami.cluster.binaries import find_node_binaries
from hami.cluster.control_plane import ClusterOptions, LocalCluster
from hami.cluster.errors import ClusterError
from hami.cluster.state import ClusterState, read_state, stop_recorded

app = typer.Typer(
    name="cluster",
    help="A local Kubernetes control plane (etcd, kube-apiserver, kube-scheduler, kwok).",
    no_args_is_help=True,
)

NameOption = Annotated[str, typer.Option("--name", help="Which local cluster.")]


def _run_dir(name: str) -> Path:
    return paths.run_root() / name


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _existing(name: str) -> ClusterState | None:
    try:
        return read_state(_run_dir(name))
    except ClusterError as exc:
        raise _fail(str(exc)) from None


@app.command()
def up(
    name: NameOption = "default",
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Stay attached; Ctrl-C stops the cluster.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each component.")] = 60.0,
    controllers: Annotated[
        bool,
        typer.Option(
            "--controllers",
            help="Also run kube-controller-manager (make node-bin): Deployments, DaemonSets, "
            "Jobs and ServiceAccount tokens, as a real node and `helm install` need.",
        ),
    ] = False,
) -> None:
    """Start the control plane and print how to use it."""
    state = _existing(name)
    if state is not None and state.running:
        raise _fail(f"cluster {name!r} is already running; stop it with `{_down_command(name)}`")
    run_dir = _run_dir(name)
    shutil.rmtree(run_dir, ignore_errors=True)
    try:
        manager = find_node_binaries().kube_controller_manager if controllers else None
        options = ClusterOptions(
            run_dir=run_dir,
            name=f"hami-{name}",
            ready_timeout=timeout,
            detach=not foreground,
            controller_manager=manager,
        )
        cluster = LocalCluster(options)
        cluster.start()
    except ClusterError as exc:
        raise _fail(str(exc)) from None
    _print_started(cluster, name, foreground)
    if foreground:
        _wait_for_interrupt(cluster)


def _print_started(cluster: LocalCluster, name: str, foreground: bool) -> None:
    timings = ", ".join(
        f"{component} {seconds:.1f} s"
        for component, seconds in cluster.startup_seconds.items()
        if component != "total"
    )
    typer.echo(f"cluster {name!r} is up in {cluster.startup_seconds['total']:.1f} s ({timings})")
    typer.echo(f"  server:     {cluster.server}")
    typer.echo(f"  kubeconfig: {cluster.kubeconfig}")
    typer.echo(f"  logs:       {cluster.run_dir / 'logs'}")
    typer.echo(f"use it:  export KUBECONFIG={cluster.kubeconfig}")
    if foreground:
        typer.echo("press Ctrl-C to stop it")
    else:
        typer.echo(f"stop it: {_down_command(name)}")


def _down_command(name: str) -> str:
    return "hami cluster down" + ("" if name == "default" else f" --name {name}")


def _wait_for_interrupt(cluster: LocalCluster) -> None:
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while all(c.process and c.process.poll() is None for c in cluster.components):
            time.sleep(0.5)
        typer.echo("a component exited; stopping the cluster", err=True)
    except KeyboardInterrupt:
        typer.echo("stopping the cluster")
    finally:
        cluster.stop(remove_run_dir=True)


@app.command()
def down(
    name: NameOption = "default",
    keep: Annotated[bool, typer.Option("--keep", help="Keep the run directory (logs).")] = False,
) -> None:
    """Stop a detached cluster (SIGTERM in reverse start order, then SIGKILL)."""
    state = _existing(name)
    if state is None:
        typer.echo(f"no cluster {name!r} is recorded in {_run_dir(name)}")
        return
    stopped = stop_recorded(state)
    if not keep:
        shutil.rmtree(state.run_dir, ignore_errors=True)
    typer.echo(f"stopped {', '.join(stopped) if stopped else 'nothing (already gone)'}")


@app.command()
def status(name: NameOption = "default") -> None:
    """Show whether each component of a cluster is running."""
    state = _existing(name)
    if state is None:
        raise _fail(f"no cluster {name!r} is recorded in {_run_dir(name)}")
    typer.echo(f"cluster {name!r}: {state.server}  (kubeconfig {state.kubeconfig})")
    for component in state.components:
        mark = "running" if component.alive else "STOPPED"
        typer.echo(f"  {component.name:<15} pid {component.pid:<8} {mark:<8} {component.log}")
    if not all(component.alive for component in state.components):
        raise typer.Exit(code=1)


@app.command()
def env(name: NameOption = "default") -> None:
    """Print `export KUBECONFIG=...` for a running cluster (use with eval)."""
    state = _existing(name)
    if state is None or not state.running:
        raise _fail(f"cluster {name!r} is not running; start it with `hami cluster up`")
    typer.echo(f"export KUBECONFIG={state.kubeconfig}")
