"""Every option of every `hami` sub-command has a help text, and help piped to a file or
another program is not cut at 80 columns (issue 19)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer

from hami.cli import PIPED_HELP_WIDTH, Placeholder, app


def commands(command: Any, path: tuple[str, ...] = ("hami",)) -> Iterator[tuple[str, Any]]:
    """(command path, loaded command) for the group and every sub-command, depth first."""
    if isinstance(command, Placeholder):
        command = command.load()
    yield " ".join(path), command
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, (*path, name))


def test_every_option_of_every_command_has_a_help_text() -> None:
    missing = []
    count = 0
    for path, command in commands(typer.main.get_command(app)):
        for param in command.params:
            if getattr(param, "param_type_name", "") != "option" or param.hidden:
                continue
            count += 1
            if not (getattr(param, "help", None) or "").strip():
                missing.append(f"{path} {'/'.join(param.opts)}")
    assert count > 100  # every sub-command was loaded
    assert not missing, "options without help: " + ", ".join(missing)


@pytest.mark.parametrize("args", [["device-plugin", "--help"], ["scheduler", "--help"]])
def test_help_is_not_cut_when_stdout_is_not_a_terminal(args: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH")}
    script = f"import sys; sys.argv = ['hami', *{args!r}]\nfrom hami.cli import main\nmain()"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) == PIPED_HELP_WIDTH
    if args[0] == "device-plugin":
        assert "every vendor" in done.stdout
        # whole help texts on one line each, not wrapped into an 80-column box
        assert any(
            "Host directory mounted at /tmp/vgpulock in every GPU container" in ln for ln in lines
        )


def test_an_asked_for_width_is_kept() -> None:
    env = {**os.environ, "COLUMNS": "100"}
    env.pop("TERMINAL_WIDTH", None)
    script = (
        "import sys; sys.argv = ['hami', 'monitor', '--help']\nfrom hami.cli import main\nmain()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert max(len(line) for line in done.stdout.splitlines()) == 100
