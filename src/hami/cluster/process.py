"""Supervise one control-plane process: start it, wait until it is ready, stop it.

Each component runs in its own session (and so its own process group), with stdout and stderr
appended to a log file. Stopping sends SIGTERM to the whole group, waits, then SIGKILLs it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hami.cluster.errors import ComponentStartError

LOG_TAIL_LINES = 30
_PR_SET_PDEATHSIG = 1

Probe = Callable[[], bool]


@dataclass(slots=True)
class Component:
    """One supervised control-plane process."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, *, die_with_parent: bool) -> None:
        """Launch the process in a new session, logging to :attr:`log_path`.

        With ``die_with_parent`` the kernel sends it SIGTERM if the starting thread dies, so
        a crashed test run leaves nothing behind.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None,
                start_new_session=True,
                preexec_fn=_die_with_parent if die_with_parent else None,
            )

    def wait_ready(self, probe: Probe, timeout: float, interval: float = 0.1) -> None:
        """Poll ``probe`` until it returns True; raise if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll() if self.process else -1
            if code is not None:
                raise self.start_error(f"exited with code {code} before it became ready")
            if probe():
                return
            if time.monotonic() >= deadline:
                raise self.start_error(f"not ready after {timeout:.0f} s")
            time.sleep(interval)

    def start_error(self, reason: str) -> ComponentStartError:
        return ComponentStartError(self.name, reason, self.log_path, log_tail(self.log_path))

    def stop(self, grace: float) -> None:
        """SIGTERM the process group, wait up to ``grace`` seconds, then SIGKILL it."""
        if self.process is None:
            return
        stop_group(self.process.pid, grace, wait=self._wait_child)

    def _wait_child(self, timeout: float) -> bool:
        assert self.process is not None
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True


def stop_group(pid: int, grace: float, wait: Callable[[float], bool] | None = None) -> None:
    """Stop the process group led by ``pid``: SIGTERM, up to ``grace`` s, then SIGKILL.

    ``wait`` waits for the leader (and reaps it, for our own children); by default this polls
    for the pid to disappear, which suits processes started by another ``hami`` invocation.
    """
    waiter = wait or (lambda timeout: wait_gone(pid, timeout))
    if not _signal_group(pid, signal.SIGTERM):
        return
    if not waiter(grace):
        _signal_group(pid, signal.SIGKILL)
        waiter(grace)
    _signal_group(pid, signal.SIGKILL)  # stragglers in the group, if any


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until no process ``pid`` exists (zombies count as gone); True if it went."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live (non-zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, or a note saying why there are none."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
