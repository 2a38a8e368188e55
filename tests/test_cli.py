"""`hami` imports a sub-command only when it runs, and every sub-command keeps its help (issue 20)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import typer
import typer.rich_utils
from click.testing import CliRunner as ClickRunner
from typer.core import TyperGroup
from typer.testing import CliRunner

from hami import __version__
from hami.cli import COMMANDS, ORDER, LazyGroup, Placeholder, app

runner = CliRunner()
HEAVY = ("fastapi", "starlette", "uvicorn", "lightkube", "httpx", "grpc", "prometheus_client")
SUBCOMMANDS = [*ORDER, *(name for name in COMMANDS if name not in ORDER)]


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Help panels wide enough that no option name is cut."""
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 200)


def imported_after(code: str) -> set[str]:
    """Top-level packages and hami modules a fresh interpreter has imported after ``code``."""
    script = (
        "import sys\n"
        f"{code}\n"
        "print('\\n'.join(m for m in sys.modules if m == 'hami' or '.' not in m"
        " or m.startswith('hami.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return set(done.stdout.split())


def run_main(*args: str) -> str:
    return (
        "from hami.cli import main\n"
        f"sys.argv = ['hami', *{list(args)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("import hami.cli", id="import"),
        pytest.param(run_main("--help"), id="help"),
        pytest.param(run_main("version"), id="version"),
    ],
)
def test_the_command_line_starts_without_any_sub_command(code: str) -> None:
    modules = imported_after(code)
    assert not modules & set(HEAVY)
    assert {m for m in modules if m.startswith("hami.")} == {"hami.cli"}


def test_a_sub_command_imports_what_it_needs_when_it_runs() -> None:
    modules = imported_after(run_main("sim", "--help"))
    assert "hami.sim.cli" in modules
    assert "hami.scheduler.cli" not in modules


def test_explain_on_files_needs_no_web_server_nor_kubernetes_client() -> None:
    modules = imported_after(run_main("explain", "--help"))
    assert "hami.explain_cli" in modules
    assert not modules & set(HEAVY)


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.output == f"{__version__}\n"


def loaded_group() -> LazyGroup:
    group = typer.main.get_command(app)
    assert isinstance(group, LazyGroup)
    for name, command in list(group.commands.items()):
        if isinstance(command, Placeholder):
            group.commands[name] = command.load()
    return group


def test_the_listing_is_the_one_the_commands_themselves_give() -> None:
    """Each line of `hami --help` (COMMANDS' help) is what the loaded command would show."""
    lazy = typer.main.get_command(app)
    assert isinstance(lazy, LazyGroup)
    assert list(lazy.commands) == SUBCOMMANDS
    assert any(isinstance(c, Placeholder) for c in lazy.commands.values())
    # typer vendors click (typer._click) and has no runner for a bare command: click's
    # runner drives one through `main`, which both share, but its stubs name click's Command
    shown = ClickRunner().invoke(lazy, ["--help"], prog_name="hami")  # type: ignore[arg-type]
    full = ClickRunner().invoke(loaded_group(), ["--help"], prog_name="hami")  # type: ignore[arg-type]
    assert shown.exit_code == full.exit_code == 0
    assert shown.output == full.output
    for name in SUBCOMMANDS:
        assert f" {name} " in shown.output


def sub_commands() -> Iterator[list[str]]:
    for name, command in loaded_group().commands.items():
        yield [name]
        if isinstance(command, TyperGroup):
            yield from ([name, sub] for sub in command.commands)


@pytest.mark.parametrize("path", list(sub_commands()), ids=" ".join)
def test_every_sub_command_shows_its_full_help(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: hami {' '.join(path)}" in " ".join(result.output.split())
    command = loaded_group().commands[path[0]]
    if len(path) == 2:
        command = command.commands[path[1]]  # type: ignore[attr-defined]
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        for name in [*param.opts, *param.secondary_opts]:
            assert name in result.output, (path, name)
