"""The hami image built without docker (hami.node.hamiimage) stays in step with
deploy/Dockerfile, the recipe for people with docker."""

from __future__ import annotations

import io
import re
import tarfile
import zipfile
from pathlib import Path

from hami.node import hamiimage

DOCKERFILE = Path(__file__).resolve().parents[2] / "deploy" / "Dockerfile"


def test_same_python_suite_paths_and_user_as_the_dockerfile() -> None:
    text = DOCKERFILE.read_text()
    bases = set(re.findall(r"^FROM python:(\d+\.\d+)-slim-(\w+)", text, re.M))
    assert bases == {("3.11", hamiimage.SUITE)}
    assert "python3.11" in hamiimage.SITE  # Debian bookworm's python3 is 3.11 too
    copied = re.findall(r"^COPY --from=libvgpu \S+ (\S+)$", text, re.M)
    assert copied == [f"/{hamiimage.LIBVGPU}"]
    assert re.search(rf"^USER {hamiimage.USER}$", text, re.M)
    assert re.search(r"^ENTRYPOINT \[\]$", text, re.M)


def test_top_layer_unpacks_the_wheel_into_the_venv(tmp_path: Path) -> None:
    wheel = tmp_path / "hami-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("hami/__init__.py", "")
        archive.writestr("hami-0.1.0.dist-info/METADATA", "Name: hami\n")
    lib = tmp_path / "libvgpu.so"
    lib.write_bytes(b"\x7fELF")
    with tarfile.open(fileobj=io.BytesIO(hamiimage.top_layer(wheel, lib))) as layer:
        members = {m.name: m for m in layer.getmembers()}
    assert f"{hamiimage.SITE}/hami/__init__.py" in members
    assert f"{hamiimage.SITE}/hami-0.1.0.dist-info/METADATA" in members
    assert members["usr/local/bin/hami"].mode == 0o755
    assert members[hamiimage.LIBVGPU].size == 4
