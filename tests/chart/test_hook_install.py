"""The device plugin's hook install: the `install-libvgpu` init container writes libvgpu.so and
the ld.so.preload the plugin mounts over /etc/ld.so.preload (a missing one becomes a directory on
the host and the container runs without libvgpu), and every component reads one hook path.

The rendered script is run with dash (the image's /bin/sh, python:3.11-slim-bookworm) against
temporary directories standing in for the image's library and the host's ``<hook>/vgpu``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm import RELEASE, find, render

pytestmark = pytest.mark.e2e  # needs the helm binary that `make helm-bin` builds

IMAGE_LIB = "/opt/hami/lib/libvgpu.so"  # where deploy/Dockerfile puts it
HOST_MOUNT = "/host-vgpu"  # the init container's mount of <hook>/vgpu


def daemonset(extra: list[str] | None = None) -> dict[str, Any]:
    ds = find(render(None, extra or []), "DaemonSet", f"{RELEASE}-device-plugin")
    return dict(ds["spec"]["template"]["spec"])


def install_script(spec: dict[str, Any]) -> str:
    (init,) = [c for c in spec["initContainers"] if c["name"] == "install-libvgpu"]
    assert init["command"][:2] == ["sh", "-c"]
    assert init["volumeMounts"] == [{"name": "vgpu", "mountPath": HOST_MOUNT}]
    return str(init["command"][2])


def run_install(script: str, tmp_path: Path) -> tuple[Path, bytes]:
    """Run the script with dash, the image paths swapped for temporary ones."""
    lib = tmp_path / "image" / "libvgpu.so"
    lib.parent.mkdir(exist_ok=True)
    lib.write_bytes(b"\x7fELF not really a library")
    host = tmp_path / "host" / "vgpu"
    assert IMAGE_LIB in script and HOST_MOUNT in script
    local = script.replace(IMAGE_LIB, str(lib)).replace(HOST_MOUNT, str(host))
    sh = shutil.which("dash") or "/bin/sh"
    subprocess.run([sh, "-n", "-c", local], check=True)
    result = subprocess.run([sh, "-c", local], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return host, lib.read_bytes()


def test_install_writes_ld_so_preload_naming_the_library(tmp_path: Path) -> None:
    script = install_script(daemonset())
    assert "printf '%s\\n' '/usr/local/vgpu/libvgpu.so' > \"$dst/ld.so.preload.tmp\"" in script
    assert 'mv -f "$dst/ld.so.preload.tmp" "$dst/ld.so.preload"' in script
    assert 'mv -f "$dst/libvgpu.so.tmp" "$dst/libvgpu.so"' in script
    host, lib = run_install(script, tmp_path)
    assert (host / "ld.so.preload").read_text() == "/usr/local/vgpu/libvgpu.so\n"
    assert (host / "libvgpu.so").read_bytes() == lib
    assert (host / "containers").is_dir()
    assert sorted(p.name for p in host.iterdir()) == ["containers", "ld.so.preload", "libvgpu.so"]


def test_install_replaces_directories_the_runtime_made(tmp_path: Path) -> None:
    """containerd creates a missing bind source as a directory; the next install fixes it."""
    script = install_script(daemonset())
    host = tmp_path / "host" / "vgpu"
    for name in ("ld.so.preload", "libvgpu.so", "ld.so.preload.tmp"):
        (host / name).mkdir(parents=True)
    (host / "containers" / "uid_main").mkdir(parents=True)
    (host / "containers" / "uid_main" / "x.cache").write_bytes(b"region")
    host, lib = run_install(script, tmp_path)
    assert (host / "ld.so.preload").is_file()
    assert (host / "ld.so.preload").read_text() == "/usr/local/vgpu/libvgpu.so\n"
    assert (host / "libvgpu.so").is_file() and (host / "libvgpu.so").read_bytes() == lib
    assert not (host / "ld.so.preload.tmp").exists()
    assert (host / "containers" / "uid_main" / "x.cache").read_bytes() == b"region"  # kept
    run_install(script, tmp_path)  # again: idempotent
    assert (host / "ld.so.preload").read_text() == "/usr/local/vgpu/libvgpu.so\n"


def test_one_hook_path_for_plugin_monitor_and_install(tmp_path: Path) -> None:
    spec = daemonset(["--set", "global.gpuHookPath=/opt/gpu"])
    containers = {c["name"]: c for c in spec["containers"]}
    env = {name: {e["name"]: e.get("value") for e in c["env"]} for name, c in containers.items()}
    assert env["device-plugin"]["HOOK_PATH"] == env["vgpu-monitor"]["HOOK_PATH"] == "/opt/gpu"
    mounts = {
        name: {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        for name, c in containers.items()
    }
    assert mounts["device-plugin"]["vgpu"] == mounts["vgpu-monitor"]["vgpu"] == "/opt/gpu/vgpu"
    (vgpu,) = [v for v in spec["volumes"] if v["name"] == "vgpu"]
    assert vgpu["hostPath"]["path"] == "/opt/gpu/vgpu"
    host, _ = run_install(install_script(spec), tmp_path)
    assert (host / "ld.so.preload").read_text() == "/opt/gpu/vgpu/libvgpu.so\n"
