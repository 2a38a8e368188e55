"""The `hami` command line. Each component adds one sub-command here.

Sub-commands are imported when they run, not when `hami` starts: `hami --help` and
`hami version` load Typer and nothing else (no FastAPI, lightkube, gRPC, Prometheus client).
Each entry of `COMMANDS` names where its command lives and the line `hami --help` shows for it;
tests/test_cli.py checks those lines against the commands themselves.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import typer
from typer.core import TyperCommand, TyperGroup

from hami import __version__

if TYPE_CHECKING:  # the click that Typer carries
    from typer._click import Command, Context


class Lazy(NamedTuple):
    """A sub-command that is imported when it runs."""

    target: str  # "module:attribute", a command function or a Typer app
    help: str  # its line in `hami --help`: the first paragraph of its help


COMMANDS: dict[str, Lazy] = {
    "sim": Lazy(
        "hami.sim.cli:sim",
        "Place pods on a simulated cluster with the real scheduling core and show the result.",
    ),
    "scheduler": Lazy(
        "hami.scheduler.cli:scheduler",
        "Run the kube-scheduler extender (/filter, /bind) and the mutating webhook (/webhook).",
    ),
    "monitor": Lazy(
        "hami.monitor.cli:monitor",
        "Export per-container GPU usage read from the shared-region files of this node.",
    ),
    "device-plugin": Lazy(
        "hami.agent.cli:device_plugin_main",
        "Run the NVIDIA device plugin (kubelet API v1beta1), or play kwok nodes of every vendor "
        "(--simulate).",
    ),
    "dra-plugin": Lazy(
        "hami.agent.dra.cli:dra_plugin_main",
        "Run the DRA kubelet plugin (driver hami-core-gpu.project-hami.io), or publish the "
        "ResourceSlices of kwok nodes (--simulate).",
    ),
    "explain": Lazy(
        "hami.explain_cli:explain",
        "Why a pod does not fit, node by node, and what would make it fit.",
    ),
    "webui": Lazy("hami.webui.cli:webui", "Serve the web UI and its JSON API (docs/api.md)."),
    "cluster": Lazy(
        "hami.cluster.cli:app",
        "A local Kubernetes control plane (etcd, kube-apiserver, kube-scheduler, kwok).",
    ),
    "demo": Lazy(
        "hami.demo.cli:app", "The whole hami stack on a local cluster with simulated GPU nodes."
    ),
    "node": Lazy(
        "hami.node.cli:app",
        "A real node (containerd + kubelet) on this machine, joined to a local cluster.",
    ),
    "chart": Lazy(
        "hami.chart_cli:app",
        "Helm chart helpers: convert a values file of HAMi's chart (2.10) for hami's chart.",
    ),
}

# The order of `hami --help` (Typer lists commands before groups).
ORDER = ("sim", "scheduler", "monitor", "device-plugin", "explain", "webui", "version")


class Placeholder(TyperCommand):
    """Stands for a lazy sub-command in `hami --help`; `load` builds the real command."""

    def __init__(self, name: str, entry: Lazy) -> None:
        super().__init__(name=name, help=entry.help)
        self.entry = entry

    def load(self) -> Command:
        """Import the command and build it as `app.command(name)` / `app.add_typer` would."""
        module, _, attribute = self.entry.target.partition(":")
        target = getattr(importlib.import_module(module), attribute)
        name = cast(str, self.name)
        holder = typer.Typer(add_completion=False)
        if isinstance(target, typer.Typer):
            holder.add_typer(target, name=name)
            return cast(TyperGroup, typer.main.get_command(holder)).commands[name]
        holder.command(name)(target)
        return typer.main.get_command(holder)


class LazyGroup(TyperGroup):
    """The `hami` group: lists every sub-command, imports one only when it is invoked."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        built = dict(self.commands)
        names = [*ORDER, *(name for name in COMMANDS if name not in ORDER)]
        self.commands = {
            name: built.pop(name) if name in built else Placeholder(name, COMMANDS[name])
            for name in names
        }
        self.commands.update(built)

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name is not None and isinstance(command, Placeholder):
            command = self.commands[name] = command.load()
        return name, command, rest


app = typer.Typer(
    name="hami",
    cls=LazyGroup,
    help="GPU sharing for Kubernetes, wire-compatible with HAMi.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    # A callback makes `hami` a group although `version` is its only command built up front.
    pass


@app.command()
def version() -> None:
    """Print the hami version."""
    typer.echo(__version__)


# Help width when stdout is not a terminal (a pipe, a file, CI logs): rich would use 80 columns
# and cut option help with "…"; this is wide enough for every option of every sub-command.
PIPED_HELP_WIDTH = 200


def wide_help_when_piped() -> None:
    """Give Typer's rich help :data:`PIPED_HELP_WIDTH` columns when stdout is not a TTY and
    no width was asked for (``TERMINAL_WIDTH`` or ``COLUMNS``)."""
    import os
    import sys

    if sys.stdout.isatty() or os.environ.get("TERMINAL_WIDTH") or os.environ.get("COLUMNS"):
        return
    import typer.rich_utils

    typer.rich_utils.MAX_WIDTH = PIPED_HELP_WIDTH


def main() -> None:
    wide_help_when_piped()
    app()
