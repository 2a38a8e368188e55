from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hami.cli import app


@pytest.fixture(autouse=True)
def _empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAMI_CACHE", str(tmp_path))
    monkeypatch.delenv("HAMI_K8S_BIN_DIR", raising=False)


def test_up_without_binaries_fails_with_the_reason() -> None:
    result = CliRunner().invoke(app, ["cluster", "up", "--name", "t"])
    assert result.exit_code == 1
    assert "make cluster-bin" in result.output


def test_env_and_status_without_a_cluster_fail() -> None:
    for command in ("env", "status"):
        result = CliRunner().invoke(app, ["cluster", command, "--name", "t"])
        assert result.exit_code == 1, command
        assert "cluster 't'" in result.output


def test_down_without_a_cluster_is_a_no_op() -> None:
    result = CliRunner().invoke(app, ["cluster", "down", "--name", "t"])
    assert result.exit_code == 0
    assert "no cluster 't'" in result.output
