"""Errors raised while finding, starting or stopping the local control plane."""

from __future__ import annotations

from pathlib import Path


class ClusterError(RuntimeError):
    """Base class for local control-plane failures."""


class BinariesNotFound(ClusterError):
    """The cached etcd / kube-apiserver / kube-scheduler / kwok binaries are missing."""


class ComponentStartError(ClusterError):
    """A component exited or did not become ready; carries the tail of its log."""

    def __init__(self, component: str, reason: str, log_path: Path, log_tail: str) -> None:
        self.component = component
        self.reason = reason
        self.log_path = log_path
        self.log_tail = log_tail
        super().__init__(
            f"{component} failed to start: {reason}\n"
            f"--- last lines of {log_path} ---\n{log_tail.rstrip()}\n"
            f"--- end of {component} log (run directory kept: {log_path.parent.parent}) ---"
        )
