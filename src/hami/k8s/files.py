"""Reading Kubernetes objects from YAML files (`hami sim`, `--node-manifests`, the web UI)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import cast

import yaml

from hami import yamlio
from hami.k8s.api import Manifest


class ManifestFileError(ValueError):
    """A file cannot be read as Kubernetes objects; the message names the file and where."""


def documents(path: Path) -> Iterator[tuple[int, Manifest]]:
    """(document number, object) for every object of the file, ``kind: List`` unpacked.

    Empty documents are skipped; anything that is not an object is an error (raised before
    the first object is yielded only for unreadable or unparseable files)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestFileError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        docs = yamlio.load_all(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "unparseable"
        raise ManifestFileError(f"{path}: not valid YAML: {problem}{line}") from None
    for number, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        if not isinstance(doc, Mapping):
            raise ManifestFileError(f"{path}: document {number}: expected a Kubernetes object")
        if doc.get("kind") != "List":
            yield number, cast(Manifest, doc)
            continue
        items = doc.get("items")
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, Mapping):
                raise ManifestFileError(f"{path}: document {number}: items: expected objects")
            yield number, cast(Manifest, item)
