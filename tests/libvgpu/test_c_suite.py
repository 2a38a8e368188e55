"""Every C test case of libvgpu, in the release build and under ASan+UBSan."""

from __future__ import annotations

import subprocess
from pathlib import Path


def test_c_case(c_case: tuple[str, str, str], build_dir: Path) -> None:
    variant, prog, name = c_case
    proc = subprocess.run(
        [str(build_dir / variant / "tests" / prog), name],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"{prog} {name} ({variant}):\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip() == f"PASS {name}"
