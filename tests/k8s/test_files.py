"""Reading Kubernetes objects from YAML files: one reader for hami sim, --node-manifests and the UI."""

from __future__ import annotations

from pathlib import Path

import pytest

from hami.k8s.files import ManifestFileError, documents


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "objects.yaml"
    path.write_text(text)
    return path


def test_documents_are_numbered_and_lists_unpacked(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "kind: Node\nmetadata: {name: a}\n---\n---\n"
        "kind: List\nitems:\n- {kind: Pod, metadata: {name: p}}\n- {kind: Pod, metadata: {name: q}}\n",
    )
    found = [(n, doc["metadata"]["name"]) for n, doc in documents(path)]  # type: ignore[index]
    assert found == [(1, "a"), (3, "p"), (3, "q")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: [", "not valid YAML"),
        ("- just\n- a list\n", "document 1: expected a Kubernetes object"),
        ("kind: List\nitems: [1, 2]\n", "document 1: items: expected objects"),
    ],
)
def test_bad_files_are_named_with_the_document(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ManifestFileError, match=message) as info:
        list(documents(path))
    assert str(info.value).startswith(f"{path}: ")


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ManifestFileError, match="cannot read"):
        list(documents(tmp_path / "missing.yaml"))
