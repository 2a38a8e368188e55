"""Unknown values keys fail `helm template` with one line per key (templates/_validate.tpl): a
key of HAMi's chart 2.10 says what it became, any other names the nearest known key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helm import CHART, RELEASE, VALUES_DIR, helm

pytestmark = pytest.mark.e2e  # needs the helm binary that `make helm-bin` builds

HAMI_210 = VALUES_DIR / "hami-2.10.yaml"  # HAMi's default values keys (wire-format.md §7.4)
KEYS = yaml.safe_load((CHART / "files" / "values-keys.yaml").read_text())
FREE_FORM = "map"


def failure(*args: str) -> list[str]:
    """The problem lines of a failed `helm template`."""
    result = helm("template", RELEASE, str(CHART), *args, check=False)
    assert result.returncode != 0, "rendered although it should not"
    assert "don't meet the specifications of the schema" not in result.stderr, result.stderr
    return [line[2:] for line in result.stderr.splitlines() if line.startswith("  ")]


def key_tree(values: dict[str, Any], known: dict[str, Any]) -> dict[str, Any]:
    """values.yaml's keys in the table's form (free-form maps as `map`)."""
    tree: dict[str, Any] = {}
    for key, value in values.items():
        entry = known.get(key)
        if isinstance(value, dict) and isinstance(entry, dict):
            tree[key] = key_tree(value, entry)
        else:
            tree[key] = FREE_FORM if entry == FREE_FORM else "value"
    return tree


def unknown_paths(values: dict[str, Any], known: dict[str, Any], prefix: str = "") -> list[str]:
    """Where `values` leaves the table: what the template must report, one path per key."""
    paths = []
    for key, value in values.items():
        if key not in known:
            paths.append(prefix + key)
        elif isinstance(known[key], dict) and isinstance(value, dict):
            paths += unknown_paths(value, known[key], f"{prefix}{key}.")
    return paths


def test_the_table_is_values_yaml_and_the_schema_names_every_key() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert key_tree(values, KEYS["known"]) == KEYS["known"], (
        "charts/hami/files/values-keys.yaml (known) must list exactly the keys of values.yaml"
    )
    schema = json.loads((CHART / "values.schema.json").read_text())

    def check(node: dict[str, Any], known: dict[str, Any], path: str) -> None:
        properties = node.get("properties", {})
        for key, entry in known.items():
            if path == "devices." and key not in properties:  # vendor sections
                prop = node["additionalProperties"]
            else:
                assert key in properties, f"values.schema.json has no {path}{key}"
                prop = properties[key]
            if isinstance(entry, dict):
                check(prop, entry, f"{path}{key}.")
            elif entry == FREE_FORM:
                assert prop.get("type") == "object", f"{path}{key}"
        assert set(properties) <= set(known), f"schema keys at {path or '.'} not in the table"

    check(schema, KEYS["known"], "")


def test_hamis_default_values_fail_with_one_line_per_key_hami_does_not_have() -> None:
    hami_values = yaml.safe_load(HAMI_210.read_text())
    expected = unknown_paths(hami_values, KEYS["known"])
    assert len(expected) > 30
    assert set(expected) <= set(KEYS["hami210"]), "every HAMi key has a message"
    lines = failure("-f", str(HAMI_210))
    reported = {line.split(":", 1)[0]: line for line in lines}
    assert set(expected) <= set(reported)
    for path in expected:
        assert reported[path] == f"{path}: a key of HAMi's chart 2.10; {KEYS['hami210'][path]}"
    # and HAMi's port 443, where hami's non-root extender cannot listen
    assert set(reported) - set(expected) == {"scheduler.service.httpTargetPort"}
    assert "hami's default is 8443" in reported["scheduler.service.httpTargetPort"]


@pytest.mark.parametrize(
    ("flag", "line"),
    [
        (
            "scheduler.extender.image.tag=v2.10.0",
            "scheduler.extender.image: a key of HAMi's chart 2.10; became image (registry,",
        ),
        (
            "mluResourceName=cambricon.com/vmlu",
            "mluResourceName: a key of HAMi's chart 2.10; became an entry of "
            "devices.cambricon.customresources",
        ),
        (
            "scheduler.metricsBindAddress=:9395",
            "scheduler.metricsBindAddress: a key of HAMi's chart 2.10; became "
            "scheduler.service.monitorTargetPort",
        ),
        (
            "devicePlugin.passDeviceSpecsEnabled=true",
            "devicePlugin.passDeviceSpecsEnabled: a key of HAMi's chart 2.10; not supported",
        ),
        (
            "devicePlugin.deviceSplitcount=5",
            "devicePlugin.deviceSplitcount: unknown key; the nearest known key is "
            "devicePlugin.deviceSplitCount",
        ),
        (
            "scheduler.admissionWebhook.failurePolcy=Fail",
            "scheduler.admissionWebhook.failurePolcy: unknown key; the nearest known key is "
            "scheduler.admissionWebhook.failurePolicy",
        ),
        (
            "devices.mthread.enabled=true",
            "devices.mthread: unknown key; the nearest known key is devices.mthreads",
        ),
        (
            "Prometheus.enabled=true",
            "Prometheus: unknown key; the nearest known key is prometheus",
        ),
        (
            "global.imageregistry=r.example",
            "global.imageregistry: unknown key; the nearest known key is global.imageRegistry",
        ),
    ],
)
def test_one_key(flag: str, line: str) -> None:
    (reported,) = failure("--set", flag)
    assert reported.startswith(line), reported


def test_every_unknown_key_is_reported_at_once() -> None:
    flags = ["scheduler.replica=2", "image.tg=x", "devicePlugin.monitor.enable=false"]
    lines = failure(*(arg for flag in flags for arg in ("--set", flag)))
    assert [line.split(":", 1)[0] for line in lines] == [
        "devicePlugin.monitor.enable",
        "image.tg",
        "scheduler.replica",
    ]
    assert lines[1].endswith("the nearest known key is image.tag")


def test_free_form_maps_take_any_key() -> None:
    flags = [
        "global.labels.team=gpu",
        "scheduler.nodeSelector.pool=ctrl",
        "scheduler.podAnnotations.a=b",
        "scheduler.affinity.nodeAffinity.x=y",
        "scheduler.extender.resources.limits.cpu=1",
        "devicePlugin.nvidiaNodeSelector.accelerator=nvidia",
        "devicePlugin.updateStrategy.rollingUpdate.maxUnavailable=2",
        "prometheus.labels.release=kube-prometheus",
    ]
    helm("template", RELEASE, str(CHART), *(arg for flag in flags for arg in ("--set", flag)))


@pytest.mark.parametrize(
    ("flag", "line"),
    [
        (
            "scheduler.service.httpTargetPort=443",
            "scheduler.service.httpTargetPort: 443 is below 1024",
        ),
        (
            "scheduler.service.monitorTargetPort=8443",
            "scheduler.service.monitorTargetPort: 8443 is httpTargetPort too",
        ),
    ],
)
def test_ports_the_extender_cannot_listen_on(flag: str, line: str) -> None:
    (reported,) = failure("--set", flag)
    assert reported.startswith(line), reported


def test_as_a_subchart_globals_are_the_parents(tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    shutil.copytree(CHART, parent / "charts" / "hami")
    (parent / "Chart.yaml").write_text("apiVersion: v2\nname: parent\nversion: 0.1.0\n")
    (parent / "values.yaml").write_text("global:\n  storageClass: fast\n")
    helm("template", "p", str(parent))  # another subchart's global
    result = helm("template", "p", str(parent), "--set", "hami.schedulr.x=1", check=False)
    assert "hami.schedulr" not in result.stderr  # paths are the chart's own
    assert "schedulr: unknown key; the nearest known key is scheduler" in result.stderr
