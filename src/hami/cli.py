"""The `hami` command line. Each component adds one sub-command here."""

from __future__ import annotations

import typer

from hami import __version__
from hami.agent.cli import device_plugin_main
from hami.cluster.cli import app as cluster_app
from hami.demo.cli import app as demo_app
from hami.explain_cli import register as register_explain
from hami.monitor.cli import monitor
from hami.node.cli import app as node_app
from hami.scheduler.cli import scheduler
from hami.sim.cli import sim

app = typer.Typer(
    name="hami",
    help="GPU sharing for Kubernetes, wire-compatible with HAMi.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(cluster_app, name="cluster")
app.add_typer(demo_app, name="demo")
app.add_typer(node_app, name="node")


app.command("sim")(sim)
app.command("scheduler")(scheduler)
app.command("monitor")(monitor)
app.command("device-plugin")(device_plugin_main)
register_explain(app)


@app.command()
def version() -> None:
    """Print the hami version."""
    typer.echo(__version__)


def main() -> None:
    app()
