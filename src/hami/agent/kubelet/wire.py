"""The generated device-plugin API stubs and the API's constants (k8s.io/kubelet constants.go)."""

from __future__ import annotations

from typing import Final

try:
    from hami.agent.kubelet.proto import api_pb2 as pb
    from hami.agent.kubelet.proto import api_pb2_grpc as pb_grpc
except ImportError as exc:  # pragma: no cover - only without `make proto`
    raise ImportError(
        "the device-plugin gRPC stubs are missing: generate them with `make proto` "
        "(python -m hami.agent.kubelet.protogen)"
    ) from exc

VERSION: Final = "v1beta1"
HEALTHY: Final = "Healthy"
UNHEALTHY: Final = "Unhealthy"
KUBELET_SOCKET: Final = "kubelet.sock"

__all__ = [
    "HEALTHY",
    "KUBELET_SOCKET",
    "UNHEALTHY",
    "VERSION",
    "pb",
    "pb_grpc",
]
