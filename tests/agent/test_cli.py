"""`hami device-plugin` start-up: bad input fails with a message naming the file and the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hami.agent.config.settings import Settings
from hami.agent.discovery.health import XidPolicy
from hami.cli import app

RUNNER = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = RUNNER.invoke(app, ["device-plugin", *args], env={"COLUMNS": "200", "NODE_NAME": ""})
    return result.exit_code, result.output


def test_help_lists_the_flags() -> None:
    code, out = run("--help")
    assert code == 0
    for flag in ("--node-config-file", "--simulate", "--inventory", "--node-manifests"):
        assert flag in out
    assert "--lock-dir" in out and "/tmp/vgpulock" in out


def test_lock_dir_defaults_to_tmp_vgpulock() -> None:
    from hami.agent import cli

    settings = cli._settings_for("n1", (None, None), cli._process_settings({"lock_dir": None}), {})
    assert str(settings.lock_dir) == "/tmp/vgpulock"


def test_malformed_node_config_fails_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"nodeconfig": [{"name": "n1", "devicememoryscaling": "x"}]}))
    code, out = run(
        "--node-name",
        "n1",
        "--node-config-file",
        str(path),
        "--backend",
        "fake",
        "--inventory",
        "examples/inventory/t4-pair.yaml",
    )
    assert code == 2
    assert f"{path}: nodeconfig[0].devicememoryscaling:" in out


def test_malformed_inventory_fails_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text("gpus:\n  - model: T4\n    memoryMiB: -1\n")
    code, out = run(
        "--node-name",
        "n1",
        "--backend",
        "fake",
        "--inventory",
        str(path),
        "--kubeconfig",
        str(tmp_path / "none"),
    )
    assert code == 2
    assert f"{path}: gpus[0].memoryMiB:" in out


def test_missing_node_name_is_explained() -> None:
    code, out = run("--backend", "fake", "--inventory", "examples/inventory/t4-pair.yaml")
    assert code == 2 and "--node-name" in out


def test_bad_list_strategy_is_explained() -> None:
    code, out = run("--node-name", "n1", "--device-list-strategy", "envvar,teleport")
    assert code == 2 and "teleport" in out


def test_simulate_needs_nodes(tmp_path: Path) -> None:
    code, out = run("--simulate", "--kubeconfig", str(tmp_path / "none"))
    assert code == 2 and "--nodes" in out


def test_bad_node_manifest_fails_naming_file_node_and_field(tmp_path: Path) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_text(
        "kind: Node\nmetadata: {name: n1, annotations: {hami.io/node-dcu-register: 7}}\n"
    )
    code, out = run(
        "--simulate",
        "--node-manifests",
        str(path),
        "--config-file",
        "examples/vendors/config.yaml",
        "--kubeconfig",
        str(tmp_path / "none"),
    )
    assert code == 2
    assert f"{path}: Node n1: metadata.annotations.hami.io/node-dcu-register: must be" in out


def test_node_manifests_need_the_vendor_sections(tmp_path: Path) -> None:
    code, out = run(
        "--simulate",
        "--node-manifests",
        "examples/vendors/cluster.yaml",
        "--kubeconfig",
        str(tmp_path / "none"),
    )
    assert code == 2
    assert "Node ascend-910b2: registers no device of an enabled vendor" in out


def test_flags_take_effect_over_node_json_and_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hami.agent import cli

    captured: dict[str, object] = {}

    def fake_run(
        simulate: bool,
        node_name: str | None,
        nodes: cli.Targets,
        source: tuple[str, Path | None, str | None],
        files: cli.Files,
        process: dict[str, Any],
        flags: dict[str, Any],
        policy: XidPolicy,
    ) -> None:
        assert node_name is not None  # --node-name is given
        captured["settings"] = cli._settings_for(node_name, files, process, flags)
        captured["policy"] = policy

    monkeypatch.setattr(cli, "_run", fake_run)
    shared = tmp_path / "device-config.yaml"
    shared.write_text("nvidia:\n  deviceSplitCount: 5\n  deviceMemoryScaling: 2\n")
    node_json = tmp_path / "config.json"
    node_json.write_text(json.dumps({"nodeconfig": [{"name": "n1", "devicesplitcount": 7}]}))
    code, out = run(
        "--node-name",
        "n1",
        "--config-file",
        str(shared),
        "--node-config-file",
        str(node_json),
        "--device-split-count",
        "3",
        "--pass-device-specs",
        "--device-list-strategy",
        "envvar,cdi-cri",
        "--hook-path",
        "/opt/hami",
        "--lock-dir",
        "/run/hami/vgpulock",
        "--enable-numa-topology",
    )
    assert code == 0, out
    settings = captured["settings"]
    assert isinstance(settings, Settings)
    assert settings.node.split_count == 3  # flag > per-node JSON (7) > yaml (5)
    assert settings.node.memory_scaling == 2.0 and settings.node.enable_numa_topology
    assert settings.pass_device_specs is True
    assert settings.list_strategies == ("envvar", "cdi-cri")
    assert str(settings.hook_path) == "/opt/hami"
    assert str(settings.lock_dir) == "/run/hami/vgpulock"
