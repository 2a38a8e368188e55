"""NOTES.txt: what was installed and how to check it. `helm template` does not print NOTES, so
the test renders its text (the define `hami.notes`) through a ConfigMap in a copy of the chart."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.chart.helm import CHART, NAMESPACE, RELEASE, VALUES, helm

pytestmark = pytest.mark.e2e  # needs the helm binary that `make helm-bin` builds

APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
PROBE = """apiVersion: v1
kind: ConfigMap
metadata: {name: notes}
data:
  notes: |
    {{- include "hami.notes" . | nindent 4 }}
"""


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("chart") / "hami"
    shutil.copytree(CHART, copy)
    (copy / "templates" / "zz-notes-probe.yaml").write_text(PROBE)
    return copy


def notes(chart: Path, *args: str) -> str:
    out = helm(
        "template", RELEASE, str(chart), "--namespace", NAMESPACE,
        "--show-only", "templates/zz-notes-probe.yaml", *args,
    ).stdout  # fmt: skip
    return str(yaml.safe_load(out)["data"]["notes"])


def test_notes_txt_is_the_define() -> None:
    assert (CHART / "templates" / "NOTES.txt").read_text() == '{{ include "hami.notes" . }}\n'


def test_default_notes_name_the_objects_the_commands_and_the_metrics_endpoints(
    chart: Path,
) -> None:
    text = notes(chart)
    for line in [
        f"hami {APP_VERSION} is installed as release {RELEASE} in namespace {NAMESPACE}.",
        f"Deployment {RELEASE}-scheduler (1 replica(s), leader election",
        "monitor 31993 -> 9395 (plain-HTTP /metrics)",
        "extender 8444 -> 8444 (/filter /bind, mTLS: kube-scheduler's client certificate only)",
        f"MutatingWebhookConfiguration {RELEASE}-webhook (failurePolicy Ignore)",
        f"DaemonSet {RELEASE}-device-plugin on nodes labelled gpu=on: device plugin + monitor",
        f"kubectl -n {NAMESPACE} rollout status deploy/{RELEASE}-scheduler",
        "kubectl label node <gpu-node> gpu=on",
        f"kubectl -n {NAMESPACE} port-forward svc/{RELEASE}-scheduler 31993:31993",
        "curl -s http://127.0.0.1:31993/metrics",
        "curl -s http://<gpu-node-ip>:31992/metrics",
        "nvidia.com/gpu: 1, nvidia.com/gpumem: 3000, nvidia.com/gpucores: 30",
        f"the TLS Secret {RELEASE}-scheduler-tls stays",
    ]:
        assert line in text, f"{line!r} not in\n{text}"
    assert "ServiceMonitors" not in text.split("Check it:")[0]
    assert "Service hami-scheduler (ClusterIP)" in text  # no NodePort unless asked for
    text = notes(chart, "--set", "scheduler.service.type=NodePort")
    assert "http://<any-node-ip>:31993/metrics (NodePort)" in text


def test_notes_follow_the_values(chart: Path) -> None:
    text = notes(chart, "-f", str(VALUES["webhook-off"]), "--set", "prometheus.enabled=true")
    assert "MutatingWebhookConfiguration" not in text
    assert "http 443 -> 8443 (http)" in text
    assert "with the webhook off, schedulerName: hami-scheduler" in text
    assert (
        f"ServiceMonitors {RELEASE}-scheduler and {RELEASE}-device-plugin (port monitor, http)"
        in text
    )
    assert "TLS Secret" not in text
    text = notes(
        chart,
        "--set", "devicePlugin.enabled=false",
        "--set", "scheduler.service.type=ClusterIP",
        "--set", "scheduler.leaderElect=false",
    )  # fmt: skip
    assert "DaemonSet" not in text and "<gpu-node>" not in text and "NodePort" not in text
    assert f"Deployment {RELEASE}-scheduler (1 replica(s)):" in text
    assert "extender 8444" not in text  # 127.0.0.1 only: no Service port


def test_helm_lint_strict_with_notes() -> None:
    assert "0 chart(s) failed" in helm("lint", str(CHART), "--strict").stdout
