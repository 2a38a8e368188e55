"""The hami image without docker or a registry, from the project's own files (decision D10):

* a base layer: a Debian bookworm root filesystem made by ``mmdebstrap`` from Debian's
  packages (python3, python3-venv), with a virtual environment at ``/opt/hami/venv`` holding
  hami's dependencies (wheels from PyPI) — cached by the list of wheels;
* a top layer: the hami wheel unpacked into that venv, ``hami`` on PATH and ``libvgpu.so`` at
  ``/opt/hami/lib/libvgpu.so`` — rebuilt in a second from the checkout.

It matches ``deploy/Dockerfile`` (Python 3.11 on bookworm, the same paths, user 65532, no
entrypoint); ``tests/node/test_hamiimage.py`` keeps the two in step.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from hami import __version__
from hami.node.errors import NodeError
from hami.node.images import layered_archive, tar_info

RECIPE = 1
SUITE = "bookworm"
VENV = "opt/hami/venv"
SITE = f"{VENV}/lib/python3.11/site-packages"
LIBVGPU = "opt/hami/lib/libvgpu.so"
USER = "65532:65532"
DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# trimmed from the root filesystem (documentation, locales): about a third of its size
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")


def image_name(version: str = __version__) -> str:
    """Named as the chart's default image, so ``helm install`` needs no image values."""
    return f"docker.io/projecthami/hami-py:{version}"


@dataclass(frozen=True, slots=True)
class Wheels:
    directory: Path
    hami: Path
    dependencies: tuple[Path, ...]

    @property
    def key(self) -> str:
        names = "\n".join(sorted(p.name for p in self.dependencies))
        return hashlib.sha256(f"{RECIPE}\n{SUITE}\n{names}".encode()).hexdigest()[:16]


def build_wheels(repo: Path, directory: Path) -> Wheels:
    """``pip wheel`` of the checkout: hami's wheel and every dependency's (PyPI, pip's cache)."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("hami-*.whl"):
        old.unlink()
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(directory), str(repo)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise NodeError(f"building the hami wheels failed (is PyPI reachable?):\n{done.stderr}")
    wheels = sorted(directory.glob("*.whl"))
    ours = [w for w in wheels if w.name.startswith("hami-")]
    if len(ours) != 1:
        raise NodeError(f"expected one hami wheel in {directory}, found {ours}")
    return Wheels(directory, ours[0], tuple(w for w in wheels if w != ours[0]))


def base_layer(wheels: Wheels, cache: Path) -> Path:
    """Debian + the venv with the dependencies, as a tar (cached by the wheel list)."""
    out = cache / f"hami-base-{wheels.key}.tar"
    if out.is_file():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial.tar")  # mmdebstrap picks the format by suffix
    deps = " ".join(f"/tmp/wheels/{w.name}" for w in wheels.dependencies)
    hooks = [
        'mkdir -p "$1/tmp/wheels"',
        f'cp {" ".join(str(w) for w in wheels.dependencies)} "$1/tmp/wheels/"',
        f'chroot "$1" python3 -m venv /{VENV}',
        f'chroot "$1" /{VENV}/bin/pip install -q --no-index --no-cache-dir --no-deps {deps}',
        'rm -rf "$1/tmp/wheels" "$1/var/lib/apt/lists"/* "$1/var/cache/apt"/*',
    ]
    command = ["mmdebstrap", "--variant=minbase", "--quiet", "--mode=root"]
    command += [f"--include={','.join(DEBIAN_PACKAGES)}"]
    command += [f"--dpkgopt=path-exclude={p}" for p in DPKG_EXCLUDES]
    command += [f"--customize-hook={hook}" for hook in hooks]
    command += [SUITE, str(partial)]
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise NodeError(
            "mmdebstrap is needed to build the hami image: make node-deps "
            "(as root: apt-get install --no-install-recommends mmdebstrap)"
        ) from exc
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise NodeError(f"mmdebstrap failed:\n{done.stderr[-4000:]}")
    partial.rename(out)
    return out


def top_layer(wheel: Path, libvgpu: Path) -> bytes:
    """The hami wheel unpacked into the venv, its console script, and libvgpu.so."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar, zipfile.ZipFile(wheel) as archive:
        directories = {"opt", "opt/hami", "opt/hami/lib", "usr", "usr/local", "usr/local/bin"}
        names = sorted(n for n in archive.namelist() if not n.endswith("/"))
        for name in names:
            parts = f"{SITE}/{name}".split("/")
            directories |= {"/".join(parts[:i]) for i in range(1, len(parts))}
        for directory in sorted(directories):
            tar.addfile(tar_info(directory, tarfile.DIRTYPE, 0o755))
        for name in names:
            data = archive.read(name)
            tar.addfile(
                tar_info(f"{SITE}/{name}", tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data)
            )
        script = f"#!/{VENV}/bin/python3\nimport sys\nfrom hami.cli import main\nsys.exit(main())\n"
        for path in (f"{VENV}/bin/hami", "usr/local/bin/hami"):
            data = script.encode()
            tar.addfile(tar_info(path, tarfile.REGTYPE, 0o755, len(data)), io.BytesIO(data))
        data = libvgpu.read_bytes()
        tar.addfile(tar_info(LIBVGPU, tarfile.REGTYPE, 0o755, len(data)), io.BytesIO(data))
    return buffer.getvalue()


def build_hami_image(repo: Path, libvgpu: Path, cache: Path, out: Path) -> Path:
    """Write the hami image's OCI archive to ``out`` (the base layer comes from ``cache``)."""
    if not libvgpu.is_file():
        raise NodeError(f"{libvgpu} is missing: build it with `make libvgpu`")
    wheels = build_wheels(repo, cache / "wheels")
    base = base_layer(wheels, cache)
    layers = [base.read_bytes(), top_layer(wheels.hami, libvgpu)]
    env = (f"PATH=/{VENV}/bin:/usr/local/bin:/usr/bin:/bin", "PYTHONUNBUFFERED=1")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(layered_archive(image_name(), layers, env=env, user=USER))
    return out
