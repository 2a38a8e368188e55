"""Builds libvgpu (release and ASan+UBSan variants) once per session.

The C test programs are listed at collection time, so the build runs then;
`make -C libvgpu all` is incremental and fast when nothing changed. A build
failure is an error, never a skip.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBVGPU = ROOT / "libvgpu"
VARIANTS = ("rel", "asan")
PROGRAMS = ("t_config", "t_alloc", "t_dispatch", "t_multi", "t_env", "t_limiter")


@functools.cache
def build() -> Path:
    proc = subprocess.run(
        ["make", "-C", str(LIBVGPU), "all"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"building libvgpu failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return LIBVGPU / "build"


def cases() -> list[tuple[str, str, str]]:
    out = []
    for variant in VARIANTS:
        for prog in PROGRAMS:
            binary = build() / variant / "tests" / prog
            listed = subprocess.run(
                [str(binary), "--list"], capture_output=True, text=True, check=True
            ).stdout.split()
            out += [(variant, prog, name) for name in listed]
    return out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "c_case" in metafunc.fixturenames:
        all_cases = cases()
        metafunc.parametrize("c_case", all_cases, ids=[f"{v}-{p}-{n}" for v, p, n in all_cases])


@pytest.fixture(scope="session")
def build_dir() -> Path:
    return build()
