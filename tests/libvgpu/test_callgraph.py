"""libvgpu's units call each other in one direction only (libvgpu/tools/callgraph.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "libvgpu" / "tools" / "callgraph.py"


def test_no_call_circle() -> None:
    proc = subprocess.run(
        [sys.executable, str(TOOL), str(ROOT / "libvgpu" / "src")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_the_tool_finds_a_circle(tmp_path: Path) -> None:
    (tmp_path / "a.c").write_text("void vgpu__a(void) { vgpu__b(); }\n")
    (tmp_path / "b.c").write_text("void vgpu__b(void) { vgpu__a(); }\n")
    proc = subprocess.run(
        [sys.executable, str(TOOL), str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    assert "a -> b -> a" in proc.stderr
