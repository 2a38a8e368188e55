"""Inspect and stop a detached control plane from its ``state.json`` (``hami cluster``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hami.cluster.control_plane import STATE_FILE
from hami.cluster.errors import ClusterError
from hami.cluster.process import pid_alive, stop_group


@dataclass(frozen=True, slots=True)
class ComponentState:
    name: str
    pid: int
    binary: str
    log: str

    @property
    def alive(self) -> bool:
        """True if the pid is live and still runs our binary (guards against pid reuse)."""
        return pid_alive(self.pid) and _runs_binary(self.pid, self.binary)


@dataclass(frozen=True, slots=True)
class ClusterState:
    name: str
    server: str
    kubeconfig: Path
    run_dir: Path
    components: tuple[ComponentState, ...]
    raw: dict[str, Any]

    @property
    def running(self) -> bool:
        return any(component.alive for component in self.components)


def read_state(run_dir: Path) -> ClusterState | None:
    """The recorded state of the cluster in ``run_dir``, or None if it has none."""
    path = run_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
        components = tuple(
            ComponentState(c["name"], int(c["pid"]), c["binary"], c["log"])
            for c in raw["components"]
        )
        return ClusterState(
            name=raw["name"],
            server=raw["server"],
            kubeconfig=Path(raw["kubeconfig"]),
            run_dir=Path(raw["run_dir"]),
            components=components,
            raw=raw,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClusterError(f"unreadable cluster state {path}: {exc}") from exc


def stop_recorded(state: ClusterState, grace: float = 10.0) -> list[str]:
    """Stop the recorded components in reverse order; return the names that were running."""
    stopped = []
    for component in reversed(state.components):
        if component.alive:
            stop_group(component.pid, grace)
            stopped.append(component.name)
    (state.run_dir / STATE_FILE).unlink(missing_ok=True)
    return stopped


def _runs_binary(pid: int, binary: str) -> bool:
    try:
        return Path(f"/proc/{pid}/exe").resolve() == Path(binary).resolve()
    except OSError:
        return False
