from __future__ import annotations

import json
from pathlib import Path

import pytest

from hami.cluster.binaries import BINARY_NAMES, find_binaries, find_node_binaries
from hami.cluster.errors import BinariesNotFound


def _fake_build(directory: Path) -> Path:
    directory.mkdir(parents=True)
    for name in BINARY_NAMES:
        path = directory / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    (directory / "kwok-stages.yaml").write_text("---\n")
    (directory / "manifest.json").write_text(json.dumps({"kubernetes": "v1.36.3"}))
    return directory


def test_no_build_is_a_clear_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAMI_CACHE", str(tmp_path))
    monkeypatch.delenv("HAMI_K8S_BIN_DIR", raising=False)
    with pytest.raises(BinariesNotFound, match=r"no control-plane binaries .*make cluster-bin"):
        find_binaries()


def test_pointer_file_is_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = _fake_build(tmp_path / "k8s-abc")
    (tmp_path / "k8s-current.json").write_text(json.dumps({"dir": str(built), "key": "abc"}))
    monkeypatch.setenv("HAMI_CACHE", str(tmp_path))
    monkeypatch.delenv("HAMI_K8S_BIN_DIR", raising=False)
    binaries = find_binaries()
    assert binaries.kube_apiserver == built / "kube-apiserver"
    assert binaries.manifest["kubernetes"] == "v1.36.3"


def test_incomplete_directory_lists_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = _fake_build(tmp_path / "bin")
    (built / "kwok").unlink()
    (built / "etcd").chmod(0o644)
    monkeypatch.setenv("HAMI_K8S_BIN_DIR", str(built))
    with pytest.raises(BinariesNotFound, match=r"missing etcd, kwok\. Build them"):
        find_binaries()


def test_no_node_build_says_how_to_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAMI_CACHE", str(tmp_path))
    with pytest.raises(BinariesNotFound, match=r"no node binaries .*make node-bin"):
        find_node_binaries()
