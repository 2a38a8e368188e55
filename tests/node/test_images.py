"""OCI image-layout archives written without a registry or a container tool."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from hami.node.images import Image, oci_archive


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_archive_is_a_valid_deterministic_image_layout(tmp_path: Path) -> None:
    program = tmp_path / "prog"
    program.write_bytes(b"\x7fELF...")
    program.chmod(0o755)
    image = Image("hami.local/x:1", {"usr/bin/prog": program}, {"bin/sh": "busybox"}, ("tmp",))
    data = oci_archive(image)
    assert data == oci_archive(image)  # same bytes, same digest
    files = _members(data)
    index = json.loads(files["index.json"])
    entry = index["manifests"][0]
    assert entry["annotations"]["io.containerd.image.name"] == "hami.local/x:1"

    def blob(digest: str) -> bytes:
        return files["blobs/sha256/" + digest.split(":")[1]]

    manifest = json.loads(blob(entry["digest"]))
    for ref in [manifest["config"], *manifest["layers"]]:  # every blob matches its digest
        assert "sha256:" + hashlib.sha256(blob(ref["digest"])).hexdigest() == ref["digest"]
    config = json.loads(blob(manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == [manifest["layers"][0]["digest"]]
    with tarfile.open(fileobj=io.BytesIO(blob(manifest["layers"][0]["digest"]))) as layer:
        members = {m.name: m for m in layer.getmembers()}
    assert members["usr/bin/prog"].mode == 0o755 and members["usr/bin/prog"].uid == 0
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert members["usr"].isdir() and members["tmp"].isdir()
