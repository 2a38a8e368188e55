"""Container images without a registry: a one-layer OCI image-layout archive written from a
list of host files, imported into the node's containerd with ``ctr images import``.

* ``hami.local/pause:1`` — a static pause process (the pod sandbox);
* ``hami.local/testbox:1`` — busybox, the host's glibc, the fake NVIDIA driver libraries where
  a driver install puts them, and ``memprobe`` (what a CUDA program sees).

The archives are deterministic (fixed owners and times), so a rebuilt image has the same digest.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hami.node.errors import NodeError
from hami.node.render import PAUSE_IMAGE

TESTBOX_IMAGE = "hami.local/testbox:1"
SOURCES = Path(__file__).with_name("images")
LIB_DIR = "usr/lib/x86_64-linux-gnu"
GLIBC = ("libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1")
LOADER = "lib64/ld-linux-x86-64.so.2"
BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "cat", "ls", "sleep", "env", "grep", "mount", "echo", "id", "true", "ps")
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True, slots=True)
class Image:
    """What goes into one image: files (image path → host file), symlinks, empty dirs."""

    name: str
    files: Mapping[str, Path]
    links: Mapping[str, str] = field(default_factory=dict)
    dirs: Sequence[str] = ()
    entrypoint: Sequence[str] = ()
    env: Sequence[str] = ("PATH=/usr/local/bin:/usr/bin:/bin",)


def tar_info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    """A tar member owned by root with a fixed time (deterministic archives)."""
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, size
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    return info


def _parents(paths: Sequence[str]) -> list[str]:
    found = {str(parent) for p in paths for parent in Path(p).parents if str(parent) != "."}
    return sorted(found)


def layer(image: Image) -> bytes:
    """The image's filesystem as one uncompressed tar (parents first, sorted)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        members = [*image.files, *image.links, *image.dirs]
        for directory in sorted({*_parents(members), *image.dirs}):
            tar.addfile(tar_info(directory, tarfile.DIRTYPE, 0o755))
        for target, source in sorted(image.files.items()):
            data = source.read_bytes()
            mode = 0o755 if source.stat().st_mode & 0o111 else 0o644
            tar.addfile(tar_info(target, tarfile.REGTYPE, mode, len(data)), io.BytesIO(data))
        for path, points_to in sorted(image.links.items()):
            info = tar_info(path, tarfile.SYMTYPE, 0o777)
            info.linkname = points_to
            tar.addfile(info)
    return buffer.getvalue()


def _blob(blobs: dict[str, bytes], data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"digest": digest, "size": len(data)}


def _dumps(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def oci_archive(image: Image) -> bytes:
    """An OCI image-layout tar holding ``image``; containerd names it from the index's
    ``io.containerd.image.name`` annotation."""
    return layered_archive(image.name, [layer(image)], env=image.env, entrypoint=image.entrypoint)


def layered_archive(
    name: str,
    layers: Sequence[bytes],
    *,
    env: Sequence[str] = (),
    entrypoint: Sequence[str] = (),
    user: str = "",
) -> bytes:
    """An OCI image-layout tar of uncompressed ``layers`` (bottom first)."""
    blobs: dict[str, bytes] = {}
    refs = [{"mediaType": LAYER_TYPE, **_blob(blobs, data)} for data in layers]
    settings: dict[str, object] = {"Env": list(env), "Entrypoint": list(entrypoint) or None}
    if user:
        settings["User"] = user
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": settings,
        "rootfs": {"type": "layers", "diff_ids": [ref["digest"] for ref in refs]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, **_blob(blobs, _dumps(config))},
        "layers": refs,
    }
    tag = name.rsplit(":", 1)[-1]  # wire-ok: an image reference, not an annotation
    annotations = {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag}
    entry = {"mediaType": MANIFEST_TYPE, **_blob(blobs, _dumps(manifest))}
    index = {"schemaVersion": 2, "manifests": [{**entry, "annotations": annotations}]}
    files = {"oci-layout": _dumps({"imageLayoutVersion": "1.0.0"}), "index.json": _dumps(index)}
    files |= {f"blobs/sha256/{d.removeprefix('sha256:')}": data for d, data in blobs.items()}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("blobs", "blobs/sha256"):
            tar.addfile(tar_info(directory, tarfile.DIRTYPE, 0o755))
        for path, data in files.items():
            tar.addfile(tar_info(path, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    return buffer.getvalue()


def compile_c(source: Path, output: Path, *flags: str) -> Path:
    """gcc ``source`` into ``output`` (raises :class:`NodeError` with gcc's message)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    command = ["gcc", "-O2", "-Wall", "-o", str(output), str(source), *flags]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise NodeError("gcc is needed to build the node's images: apt-get install gcc") from exc
    except subprocess.CalledProcessError as exc:
        raise NodeError(f"building {source.name} failed:\n{exc.stderr}") from exc
    return output


def pause_image(build: Path) -> Image:
    binary = compile_c(SOURCES / "pause.c", build / "pause", "-static")
    return Image(PAUSE_IMAGE, {"pause": binary}, entrypoint=("/pause",))


def kube_scheduler_image(binary: Path, version: str) -> Image:
    """The chart's kube-scheduler image (``registry.k8s.io/kube-scheduler:<cluster version>``)
    from the control plane's own static binary."""
    files = {"usr/local/bin/kube-scheduler": binary}
    return Image(f"registry.k8s.io/kube-scheduler:{version}", files, dirs=("tmp",))


def _host_lib(name: str) -> Path:
    for directory in (Path("/lib/x86_64-linux-gnu"), Path("/usr/lib/x86_64-linux-gnu")):
        if (directory / name).exists():
            return (directory / name).resolve()
    raise NodeError(f"the host has no {name} to put into the test image")


def testbox_image(build: Path, fake_driver: Path) -> Image:
    """busybox + glibc + the fake driver (``fake_driver``: libvgpu's build/rel/fake) +
    memprobe linked against libcuda.so.1, as a CUDA program is."""
    for lib in ("libcuda.so.1", "libnvidia-ml.so.1"):
        if not (fake_driver / lib).is_file():
            raise NodeError(f"{fake_driver / lib} is missing: build it with `make libvgpu`")
    if not BUSYBOX.is_file():
        raise NodeError(f"{BUSYBOX} is missing: apt-get install busybox-static")
    probe = compile_c(SOURCES / "memprobe.c", build / "memprobe", f"-L{fake_driver}", "-lcuda")
    files = {
        "bin/busybox": BUSYBOX,
        "usr/local/bin/memprobe": probe,
        LOADER: _host_lib("ld-linux-x86-64.so.2"),
        f"{LIB_DIR}/libcuda.so.1": fake_driver / "libcuda.so.1",
        f"{LIB_DIR}/libnvidia-ml.so.1": fake_driver / "libnvidia-ml.so.1",
    }
    files |= {f"{LIB_DIR}/{name}": _host_lib(name) for name in GLIBC}
    links = {f"bin/{applet}": "busybox" for applet in APPLETS}
    return Image(TESTBOX_IMAGE, files, links, dirs=("tmp", "etc", "proc", "sys", "dev"))


def write_archives(images: Sequence[Image], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for image in images:
        path = directory / (image.name.replace("/", "_").replace(":", "_") + ".tar")
        path.write_bytes(oci_archive(image))
        written.append(path)
    return written


def import_archives(ctr: Sequence[str], archives: Sequence[Path]) -> None:
    """``ctr images import`` each archive into the CRI namespace."""
    for archive in archives:
        result = subprocess.run(
            [*ctr, "images", "import", str(archive)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise NodeError(f"importing {archive.name} into containerd failed: {result.stderr}")


def ctr_command(ctr: Path, socket: Path, namespace: str) -> list[str]:
    return [str(ctr), "--address", str(socket), "--namespace", namespace]
