"""Generate the Python stubs for the vendored kubelet protocols with grpcio-tools (`make proto`):
the device-plugin API (`proto/api.proto`) and the DRA plugin's (`hami/agent/dra/proto/*.proto`).

Run as ``python -m hami.agent.kubelet.protogen``. The stubs land next to each .proto file and import each
other as ``hami.agent.kubelet.proto.api_pb2``, because protoc runs with the package root as include path.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO = Path(__file__).resolve().parent / "proto" / "api.proto"
ROOT = PROTO.parents[4]  # the directory that holds the `hami` package
DRA_PROTOS = sorted((ROOT / "hami" / "agent" / "dra" / "proto").glob("*.proto"))


def generate() -> int:
    """Run protoc; returns its exit status (0 on success)."""
    from grpc_tools import protoc  # build-time dependency only

    include = str(Path(protoc.__file__).resolve().parent / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"-I{include}",
        f"--python_out={ROOT}",
        f"--pyi_out={ROOT}",
        f"--grpc_python_out={ROOT}",
        *(str(path.relative_to(ROOT)) for path in (PROTO, *DRA_PROTOS)),
    ]
    return int(protoc.main(args))


if __name__ == "__main__":
    sys.exit(generate())
