"""Find the control-plane binaries that ``hack/k8s/build.sh`` cached.

The build writes ``$HAMI_CACHE/k8s-current.json`` (``{"dir": ..., "key": ...}``) after each
successful build or cache hit; the directory it names holds the four binaries, the kwok stage
file and a ``manifest.json`` with the versions. ``$HAMI_K8S_BIN_DIR`` overrides the pointer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hami.cluster import paths
from hami.cluster.errors import BinariesNotFound

BINARY_NAMES = ("etcd", "kube-apiserver", "kube-scheduler", "kwok")
NODE_BINARY_NAMES = (
    "kubelet",
    "kube-controller-manager",
    "kubectl",
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
)
NODE_POINTER_FILE = "node-current.json"
STAGES_FILE = "kwok-stages.yaml"
MANIFEST_FILE = "manifest.json"
HOW_TO_BUILD_NODE = (
    "Build them with `make node-bin` from the repository root (it needs Go >= 1.26 and the "
    "Go module proxy; a first build takes several minutes)."
)
HOW_TO_BUILD = (
    "Build them with `make cluster-bin` from the repository root (it needs Go >= 1.26 and the "
    "Go module proxy; the first build takes many minutes)."
)


@dataclass(frozen=True, slots=True)
class Binaries:
    """Absolute paths of the cached control-plane executables and data files."""

    directory: Path
    etcd: Path
    kube_apiserver: Path
    kube_scheduler: Path
    kwok: Path
    kwok_stages: Path
    manifest: dict[str, Any]

    @classmethod
    def from_directory(cls, directory: Path) -> Binaries:
        """Check ``directory`` and describe it; raise :class:`BinariesNotFound` if incomplete."""
        directory = directory.resolve()
        missing = [name for name in BINARY_NAMES if not _is_executable(directory / name)]
        missing += [
            name for name in (STAGES_FILE, MANIFEST_FILE) if not (directory / name).is_file()
        ]
        if missing:
            raise BinariesNotFound(
                f"control-plane binaries incomplete in {directory}: missing {', '.join(missing)}. "
                + HOW_TO_BUILD
            )
        return cls(
            directory=directory,
            etcd=directory / "etcd",
            kube_apiserver=directory / "kube-apiserver",
            kube_scheduler=directory / "kube-scheduler",
            kwok=directory / "kwok",
            kwok_stages=directory / STAGES_FILE,
            manifest=_read_json(directory / MANIFEST_FILE),
        )


def find_binaries(directory: Path | None = None) -> Binaries:
    """Locate the binaries: ``directory``, else ``$HAMI_K8S_BIN_DIR``, else the build pointer."""
    chosen = directory or paths.binaries_override() or _pointed_directory()
    return Binaries.from_directory(chosen)


@dataclass(frozen=True, slots=True)
class NodeBinaries:
    """The cached node-side executables (``make node-bin``): kubelet and its companions, and
    containerd 1.7 with its runc shim and ctr side by side in ``directory``."""

    directory: Path
    kubelet: Path
    kube_controller_manager: Path
    kubectl: Path

    @property
    def containerd(self) -> Path:
        return self.directory / "containerd"


def find_node_binaries() -> NodeBinaries:
    """The node binaries the last ``make node-bin`` pointed at; raise if any is missing."""
    directory = _pointed_directory(
        paths.cache_root() / NODE_POINTER_FILE, HOW_TO_BUILD_NODE, "node binaries"
    )
    missing = [name for name in NODE_BINARY_NAMES if not _is_executable(directory / name)]
    if missing:
        raise BinariesNotFound(
            f"node binaries incomplete in {directory}: missing {', '.join(missing)}. "
            + HOW_TO_BUILD_NODE
        )
    return NodeBinaries(
        directory=directory,
        kubelet=directory / "kubelet",
        kube_controller_manager=directory / "kube-controller-manager",
        kubectl=directory / "kubectl",
    )


def _pointed_directory(
    pointer: Path | None = None, how: str = HOW_TO_BUILD, what: str = "control-plane binaries"
) -> Path:
    pointer = pointer or paths.cache_root() / paths.POINTER_FILE
    if not pointer.is_file():
        raise BinariesNotFound(
            f"no {what} have been built on this machine ({pointer} does not exist). " + how
        )
    document = _read_json(pointer)
    directory = document.get("dir")
    if not isinstance(directory, str) or not directory:
        raise BinariesNotFound(f"{pointer} names no binaries directory. " + how)
    return Path(directory)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BinariesNotFound(f"cannot read {path}: {exc}. " + HOW_TO_BUILD) from exc
    if not isinstance(document, dict):
        raise BinariesNotFound(f"{path} is not a JSON object. " + HOW_TO_BUILD)
    return document


def _is_executable(path: Path) -> bool:
    return path.is_file() and bool(path.stat().st_mode & 0o111)
