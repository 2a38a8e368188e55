"""Which device config explain, the web UI and sim read by default (issue #18)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hami import devconfig
from hami.cli import app
from hami.config import ConfigError
from hami.k8s import objects
from hami.k8s.api import NODES
from hami.k8s.fake import FakeKube
from hami.vendors import registry

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
VENDORS = EXAMPLES / "vendors"
runner = CliRunner()


def _nodes() -> list[dict[str, object]]:
    docs = yaml.safe_load_all((VENDORS / "cluster.yaml").read_text())
    return [d for d in docs if d and d.get("kind") == "Node"]


def test_vendors_are_learnt_from_the_nodes_registrations() -> None:
    learnt = devconfig.learnt(_nodes())
    configured = registry.build(devconfig.from_file(VENDORS / "config.yaml").config)
    built = registry.build(learnt.config)
    assert set(built) == set(configured)
    assert "defaults" in learnt.source


def test_a_malformed_registration_teaches_nothing() -> None:
    bad = {
        "kind": "Node",
        "metadata": {"name": "x", "annotations": {"hami.io/node-dcu-register": "[{"}},
    }
    assert set(registry.build(devconfig.learnt([bad]).config)) == {"NVIDIA"}


def test_every_vendor() -> None:
    built = registry.build(devconfig.every_vendor())
    assert {"NVIDIA", "MLU", "Ascend910B2", "BI-V100", "Enflame", "XPU"} <= set(built)


def _cluster(config_map: bool) -> FakeKube:
    kube = FakeKube()
    for node in _nodes():
        kube.put(NODES, node)
    if config_map:
        kube.put(
            devconfig.CONFIG_MAPS,
            {
                "kind": "ConfigMap",
                "metadata": {
                    "name": "hami-scheduler-device",
                    "namespace": "kube-system",
                    "labels": {"app.kubernetes.io/component": "hami-scheduler"},
                },
                "data": {"device-config.yaml": "hygon: {}\nnvidia: {enabled: false}\n"},
            },
        )
    return kube


def test_the_charts_config_map_wins_over_learning() -> None:
    resolved = asyncio.run(devconfig.from_cluster(_cluster(config_map=True)))
    assert resolved.source == "ConfigMap kube-system/hami-scheduler-device"
    assert set(registry.build(resolved.config)) == {"DCU"}


def test_without_a_config_map_the_nodes_teach() -> None:
    resolved = asyncio.run(devconfig.from_cluster(_cluster(config_map=False)))
    assert resolved.source == devconfig.LEARNT
    assert "MLU" in registry.build(resolved.config)


def test_a_bad_config_map_is_named() -> None:
    kube = _cluster(config_map=True)
    stored = kube.stored(devconfig.CONFIG_MAPS, "hami-scheduler-device", "kube-system")
    stored["data"] = {"device-config.yaml": "hygon: {memoryFactor: 0}\n"}
    kube.put(devconfig.CONFIG_MAPS, stored)
    with pytest.raises(ConfigError, match=r"ConfigMap kube-system/hami-scheduler-device.*hygon"):
        asyncio.run(devconfig.from_cluster(kube))


def test_an_unknown_local_cluster_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hami.cluster.paths.run_root", lambda: tmp_path)
    with pytest.raises(ConfigError, match="--name nowhere: no local cluster"):
        devconfig.local_cluster("nowhere")


def test_sim_without_config_places_every_vendor_pod() -> None:
    result = runner.invoke(
        app, ["sim", str(VENDORS / "cluster.yaml"), str(VENDORS / "pods.yaml"), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)["results"]
    assert all(r["node"] for r in results), [r for r in results if not r["node"]]


def test_explain_without_config_knows_the_vendors() -> None:
    cluster, pods = str(VENDORS / "cluster.yaml"), str(VENDORS / "pods.yaml")
    docs = yaml.safe_load_all((VENDORS / "pods.yaml").read_text())
    last = [d for d in docs if d and d.get("kind") == "Pod"][-1]["metadata"]
    pod = f"{last.get('namespace', 'default')}/{last['name']}"
    result = runner.invoke(app, ["explain", pod, "--cluster", cluster, "--pods", pods])
    assert result.exit_code == 0, result.output
    assert "fits" in result.stdout or "would" in result.stdout, result.stdout


TYPO_POD = """
apiVersion: v1
kind: Pod
metadata: {name: typo, namespace: demo}
spec:
  containers:
  - name: app
    resources:
      limits: {nvidia.com/gpus: 2, nvidia.com/gpumem: 1000}
"""

MLU_POD = """
apiVersion: v1
kind: Pod
metadata: {name: mlu, namespace: demo}
spec:
  containers:
  - name: app
    resources:
      limits: {cambricon.com/vmlu: 1}
"""


def test_a_typo_in_a_resource_name_is_an_error_not_a_smaller_request(tmp_path: Path) -> None:
    pods = tmp_path / "pods.yaml"
    pods.write_text(TYPO_POD)
    result = runner.invoke(app, ["sim", str(EXAMPLES / "cluster.yaml"), str(pods)])
    assert result.exit_code == 2
    assert (
        "Pod demo/typo: container app: nvidia.com/gpus: unknown resource — did you mean "
        "nvidia.com/gpu?" in result.output
    )


def test_a_resource_no_enabled_vendor_knows_is_named(tmp_path: Path) -> None:
    pods = tmp_path / "pods.yaml"
    pods.write_text(MLU_POD)
    config = tmp_path / "config.yaml"
    config.write_text("nvidia: {}\n")
    cluster = str(VENDORS / "cluster.yaml")
    result = runner.invoke(app, ["sim", cluster, str(pods), "--config", str(config)])
    assert result.exit_code == 2
    assert "cambricon.com/vmlu: no enabled vendor knows this resource (MLU's" in result.output
    explained = runner.invoke(
        app,
        ["explain", "demo/mlu", "--cluster", cluster, "--pods", str(pods), "--config", str(config)],
    )
    assert explained.exit_code == 2
    assert "pod demo/mlu: container app: cambricon.com/vmlu: no enabled vendor" in explained.output
    # without --config the vendors come from the nodes, MLU among them: the pod fits
    fits = runner.invoke(app, ["explain", "demo/mlu", "--cluster", cluster, "--pods", str(pods)])
    assert fits.exit_code == 0 and "demo/mlu fits on node cambricon-mlu" in fits.output


def test_a_registered_node_is_never_unregistered(tmp_path: Path) -> None:
    mlu = next(n for n in _nodes() if objects.name(n) == "cambricon-mlu")
    nvidia_only = registry.build(devconfig.from_file(EXAMPLES / "config.yaml").config)
    assert devconfig.unenabled(mlu, nvidia_only) == ["MLU"]
    pods = tmp_path / "pods.yaml"
    pods.write_text(TYPO_POD.replace("nvidia.com/gpus: 2", "nvidia.com/gpu: 8"))
    config = tmp_path / "config.yaml"
    config.write_text("nvidia: {}\n")
    cluster = str(VENDORS / "cluster.yaml")
    result = runner.invoke(
        app,
        [
            "explain",
            "demo/typo",
            "--cluster",
            cluster,
            "--pods",
            str(pods),
            "--config",
            str(config),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "amd-mi300x: registers AMD devices; the device config does not enable them" in (
        result.output
    )
    assert "is hami's device plugin running" not in result.output
