"""Agent exceptions and the one place that maps them to gRPC status codes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hami.core.errors import ConfigError
from hami.k8s.api import KubeAPIError

__all__ = [
    "AgentError",
    "AllocationError",
    "ConfigError",
    "DiscoveryError",
    "IsolationUnavailable",
    "PodNotFound",
    "UnknownDevice",
    "grpc_status",
]

if TYPE_CHECKING:
    import grpc


class AgentError(Exception):
    """Base of everything the agent raises on purpose; the message is shown to the user."""


class DiscoveryError(AgentError):
    """Device discovery failed (NVML missing, driver error, …)."""


class PodNotFound(AgentError):
    """No pod on this node is waiting for a GPU allocation."""


class AllocationError(AgentError):
    """The pod's allocation annotations do not fit kubelet's request."""


class IsolationUnavailable(AllocationError):
    """A HAMi-core file the container needs for its limits is missing or not a regular file."""


class UnknownDevice(AgentError):
    """kubelet named a device ID this plugin never advertised."""


# Exception → gRPC status code name; the first match wins (most specific first).
_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (PodNotFound, "NOT_FOUND"),
    (UnknownDevice, "INVALID_ARGUMENT"),
    (AllocationError, "FAILED_PRECONDITION"),
    (KubeAPIError, "UNAVAILABLE"),
    (AgentError, "INTERNAL"),
    (ConfigError, "INTERNAL"),
)


def grpc_status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status code and message for an exception raised inside an RPC handler.

    grpc is imported here, not at module level, so discovery (and the GPU check) can use these
    exceptions without the gRPC runtime installed."""
    import grpc

    for kind, name in _CODES:
        if isinstance(exc, kind):
            return getattr(grpc.StatusCode, name), str(exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
