"""`hami node up|down|status`: a real node (containerd + kubelet) joined to a local cluster
started with `hami cluster up` (or `hami demo up`). Root only; one per machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hami.cluster import paths
from hami.cluster.binaries import find_node_binaries
from hami.cluster.errors import ClusterError
from hami.cluster.ports import free_port
from hami.cluster.state import read_state
from hami.node.node import NodeOptions, RealNode, down_recorded
from hami.node.render import KubeletPorts, NodeLayout

app = typer.Typer(
    name="node",
    help="A real node (containerd + kubelet) on this machine, joined to a local cluster.",
    no_args_is_help=True,
)

REPO = Path(__file__).resolve().parents[3]
FAKE_DRIVER = REPO / "libvgpu" / "build" / "rel" / "fake"


def node_dir() -> Path:
    """Where the one real node of this machine keeps its state and logs."""
    return paths.run_root() / "real-node"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


@app.command()
def up(
    cluster: Annotated[
        str, typer.Option("--cluster", help="The local cluster to join (`hami cluster up --name`).")
    ] = "default",
    name: Annotated[str, typer.Option("--name", help="The Node's name.")] = "real-node",
    fake_driver: Annotated[
        Path, typer.Option(help="The fake libcuda/libnvidia-ml build for the test image.")
    ] = FAKE_DRIVER,
    kubelet_port: Annotated[
        int, typer.Option(help="kubelet's API port on the node IP (0: a free one).")
    ] = 0,
) -> None:
    """Start containerd and kubelet on a host-only bridge and join the node to the cluster."""
    try:
        state = read_state(paths.run_root() / cluster)
        if state is None or not state.running:
            raise ClusterError(
                f"no running local cluster {cluster!r}: start it with `hami cluster up`"
            )
        ports = state.raw.get("ports") or {}
        options = NodeOptions(
            work=node_dir(),
            kubeconfig=state.kubeconfig,
            apiserver_port=ports.get("kube-apiserver"),
            ports=KubeletPorts(kubelet_port, free_port()) if kubelet_port else None,
            binaries=find_node_binaries(),
            fake_driver=fake_driver,
            name=name,
            detach=True,
        )
        node = RealNode(options).up()
    except ClusterError as exc:
        raise _fail(str(exc)) from None
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in node.startup_seconds.items())
    typer.echo(f"node {name} is Ready ({timings}); logs in {node.layout.logs}")
    if not any(c.name == "kube-controller-manager" for c in state.components):
        typer.echo(
            "note: the cluster runs no kube-controller-manager, so DaemonSets, Deployments and "
            "ServiceAccount tokens do not work; for `helm install` start it with "
            "`hami cluster up --controllers`"
        )
    typer.echo("stop it with `hami node down`")


@app.command()
def down() -> None:
    """Stop the real node and put the host back as it was (keeps the logs)."""
    layout = NodeLayout(node_dir())
    if not layout.work.exists():
        typer.echo("no real node on this machine")
        return
    down_recorded(layout)
    typer.echo(f"real node removed; logs kept in {layout.logs}")


@app.command()
def status() -> None:
    """Say whether a real node is up, and its processes."""
    layout = NodeLayout(node_dir())
    try:
        state = json.loads(layout.state_file.read_text())
    except (OSError, ValueError):
        typer.echo("no real node on this machine")
        raise typer.Exit(code=1) from None
    typer.echo(f"node {state['name']} (kubeconfig {state['kubeconfig']})")
    for component in state["components"]:
        typer.echo(f"  {component['name']}: pid {component['pid']}")
