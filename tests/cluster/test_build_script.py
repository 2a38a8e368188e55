"""hack/k8s/build.sh fails loudly, with the reason, when Go or the module proxy is missing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "k8s" / "build.sh"


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "HAMI_CACHE": str(tmp_path / "cache"),
        "GOMODCACHE": str(tmp_path / "gomod"),
        "GOCACHE": str(tmp_path / "gobuild"),
        **env,
    }
    return subprocess.run(
        ["bash", str(SCRIPT)], env=full_env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.timeout(130)
def test_missing_go_toolchain_fails_with_the_reason(tmp_path: Path) -> None:
    result = _run(tmp_path, GO=str(tmp_path / "no-such-go"))
    assert result.returncode != 0
    assert "ERROR: no usable Go toolchain" in result.stderr
    assert "Install Go >= 1.26" in result.stderr


@pytest.mark.timeout(130)
def test_unreachable_module_proxy_fails_with_the_reason(tmp_path: Path) -> None:
    result = _run(tmp_path, GOPROXY="off")
    assert result.returncode != 0
    assert "failed while downloading or verifying Go modules" in result.stderr
    assert "GOPROXY=off" in result.stderr
    assert "first (cold) build takes many minutes" in result.stdout
