"""`hami chart migrate-values`: a HAMi 2.10 values file becomes one hami's chart renders, and
everything it could not carry over is listed with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hami.chart_cli import load_keys, migrate, nearest
from hami.cli import app
from tests.chart.helm import CHART, RELEASE, helm
from tests.chart.test_values_check import HAMI_210, unknown_paths

KEYS = load_keys(CHART)


def hami_defaults() -> dict[str, Any]:
    return dict(yaml.safe_load(HAMI_210.read_text()))


def test_every_key_of_hamis_defaults_is_carried_converted_or_listed() -> None:
    source = hami_defaults()
    migration = migrate(source, KEYS)
    listed = {
        path for path, _ in [*migration.converted, *migration.left_out, *migration.not_carried]
    }
    assert set(unknown_paths(source, KEYS["known"])) <= listed
    # what hami would do differently is named
    not_carried = dict(migration.not_carried)
    assert set(not_carried) == {
        "global.imageTag",  # HAMi's image tag
        "scheduler.service.httpTargetPort",  # 443
        "devices.ascend.nodeSelector",
    }
    values = migration.values
    assert not unknown_paths(values, KEYS["known"])
    assert values["scheduler"]["overwriteEnv"] is False  # HAMi's "false"
    assert values["scheduler"]["service"]["monitorTargetPort"] == 9395
    assert "httpTargetPort" not in values["scheduler"]["service"]
    assert values["scheduler"]["kubeScheduler"]["extraArgs"] == ["-v=4"]  # extraNewArgs
    assert "extraArgs" not in values["scheduler"].get("extender", {})  # --debug -v=4: klog
    assert "imageTag" not in values["global"]


def test_changed_values_are_converted() -> None:
    source = {
        "mluResourceName": "cambricon.com/mlu",
        "scheduler": {
            "metricsBindAddress": "0.0.0.0:9400",
            "extender": {
                "image": {"pullPolicy": "Always", "pullSecrets": [{"name": "regcred"}]},
                "extraArgs": ["--debug", "--node-lock-timeout=2m"],
            },
            "kubeScheduler": {"image": {"pullSecrets": [{"name": "regcred"}, {"name": "other"}]}},
        },
        "devicePlugin": {
            "passDeviceSpecsEnabled": True,
            "deviceSplitcount": 5,
            "libPath": "/opt/vgpu-lib",
        },
    }
    migration = migrate(source, KEYS)
    values = migration.values
    assert values["devices"]["cambricon"]["customresources"] == [
        "cambricon.com/mlu",
        "cambricon.com/mlu.smlu.vmemory",
        "cambricon.com/mlu.smlu.vcore",
    ]
    assert values["scheduler"]["service"]["monitorTargetPort"] == 9400
    assert values["image"]["pullPolicy"] == "Always"
    assert values["global"]["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other"}]
    assert values["scheduler"]["extender"]["extraArgs"] == ["--node-lock-timeout=2m"]
    not_carried = dict(migration.not_carried)
    assert (
        not_carried["devicePlugin.passDeviceSpecsEnabled"]
        == "not supported by hami's device plugin"
    )
    assert not_carried["devicePlugin.deviceSplitcount"] == (
        "unknown key; the nearest known key is devicePlugin.deviceSplitCount"
    )
    assert not_carried["devicePlugin.libPath"].startswith(
        "/opt/vgpu-lib: became global.gpuHookPath"
    )
    assert "passed on as they are" in not_carried["scheduler.extender.extraArgs"]


def test_nearest_is_the_templates_choice() -> None:
    known = KEYS["known"]["devicePlugin"]
    assert nearest("deviceSplitcount", known) == "deviceSplitCount"
    assert nearest("monitr", known) == "monitor"


@pytest.mark.e2e  # helm
def test_the_migrated_file_renders_and_lints(tmp_path: Path) -> None:
    out = tmp_path / "hami-values.yaml"
    result = CliRunner().invoke(app, ["chart", "migrate-values", str(HAMI_210), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "NOT carried over (3):" in result.output
    assert "  global.imageTag: 'v2.10.0' tags HAMi's image" in result.output
    helm("template", RELEASE, str(CHART), "-f", str(out))
    lint = helm("lint", str(CHART), "--strict", "-f", str(out))
    assert "0 chart(s) failed" in lint.stdout
    # the original fails, with a line per key (tests/chart/test_values_check.py)
    assert helm("template", RELEASE, str(CHART), "-f", str(HAMI_210), check=False).returncode


def test_bad_input_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    result = CliRunner().invoke(app, ["chart", "migrate-values", str(bad)])
    assert result.exit_code == 2
    assert "not a map of values" in result.output
    missing = CliRunner().invoke(app, ["chart", "migrate-values", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 2 and "none.yaml" in missing.output
