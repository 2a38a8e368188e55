"""`hami sim` end to end through the CLI: JSON shape, the shipped examples, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hami.api import keys
from hami.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOW = "2025-08-21T06:20:39+00:00"  # 1755757239, the value in §10
runner = CliRunner()

NODE = """
apiVersion: v1
kind: Node
metadata:
  name: node-a
  annotations:
    hami.io/node-nvidia-register: '[{"id":"GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448","count":10,"devmem":32768,"devcore":100,"type":"NVIDIA-Tesla V100-PCIE-32GB","mode":"hami-core","health":true}]'
"""

POD = """
apiVersion: v1
kind: Pod
metadata: {name: gpu-pod, namespace: default}
spec:
  containers:
  - name: cuda
    resources:
      limits: {nvidia.com/gpu: 1, nvidia.com/gpumem: %s, nvidia.com/gpucores: %s}
"""


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["sim", *args])
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_worked_example_of_wire_format_section_10(tmp_path: Path) -> None:
    cluster = write(tmp_path, "cluster.yaml", NODE)
    pods = write(tmp_path, "pods.yaml", POD % (3000, 30))
    code, out, _ = run(str(cluster), str(pods), "--format", "json", "--now", NOW)
    assert code == 0
    doc = json.loads(out)
    (result,) = doc["results"]
    allocation = "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448,NVIDIA,3000,30:;"
    assert result == {
        "pod": "default/gpu-pod",
        "node": "node-a",
        "annotations": {
            keys.VGPU_NODE: "node-a",
            keys.NVIDIA_TO_ALLOCATE: allocation,
            keys.NVIDIA_ALLOCATED: allocation,
            keys.VGPU_TIME: "1755757239",
        },
        "reasons": {},
    }
    summary = doc["summary"]
    assert (summary["placed"], summary["failed"]) == (1, 0)
    assert summary["nodes"]["node-a"]["memory_allocated_mib"] == 3000
    assert summary["cluster"]["cores_allocated_pct"] == 30.0
    assert summary["cluster"]["median_request_mib"] == 3000


def test_shipped_examples_place_every_pod_but_the_oversized_one() -> None:
    code, out, _ = run(
        str(EXAMPLES / "cluster.yaml"),
        str(EXAMPLES / "pods.yaml"),
        "--config",
        str(EXAMPLES / "config.yaml"),
        "--format",
        "json",
    )
    assert code == 0
    results = {r["pod"]: r for r in json.loads(out)["results"]}
    assert results["demo/too-big"]["node"] is None
    assert "CardInsufficientMemory" in results["demo/too-big"]["reasons"]["t4-a"]
    assert results["demo/train-nvlink"]["node"] == "a100-nvlink"
    assert results["demo/mig-pair"]["annotations"][keys.MIG_ALLOCATIONS].startswith("[{")
    assert all(r["node"] for name, r in results.items() if name != "demo/too-big")


def test_table_output_names_pods_and_nodes() -> None:
    code, out, _ = run(str(EXAMPLES / "cluster.yaml"), str(EXAMPLES / "pods.yaml"))
    assert code == 0
    assert "demo/infer-small" in out and "Nodes after placement" in out


@pytest.mark.parametrize(
    ("cluster", "pods", "message"),
    [
        (NODE, POD % (-5, 30), "container cuda: nvidia.com/gpumem: -5 is out of range"),
        (NODE, POD % (3000, 150), "container cuda: nvidia.com/gpucores: 150 is out of range"),
        (NODE, "kind: Pod\nmetadata: {name: [", "pods.yaml: not valid YAML"),
        (
            NODE + "---\nkind: Service\nmetadata: {name: web}\n",
            POD % (1, 1),
            "web: kind 'Service' is not supported",
        ),
        (
            NODE + "---\nkind: Pod\nmetadata: {name: old}\nspec: {nodeName: node-a}\n"
            "metadata:\n  name: old\n  annotations: {hami.io/vgpu-devices-allocated: 'u,NVIDIA,100:;'}\n",
            POD % (1, 1),
            "Pod default/old: hami.io/vgpu-devices-allocated",
        ),
    ],
)
def test_bad_input_is_one_line_naming_file_object_and_field(
    tmp_path: Path, cluster: str, pods: str, message: str
) -> None:
    code, out, err = run(
        str(write(tmp_path, "cluster.yaml", cluster)), str(write(tmp_path, "pods.yaml", pods))
    )
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message in err
    assert str(tmp_path) in err


def test_a_malformed_node_is_skipped_with_a_warning_as_the_scheduler_does(
    tmp_path: Path,
) -> None:
    bad = NODE.replace('"count":10', '"count":"ten"').replace("node-a", "node-bad")
    cluster = write(tmp_path, "cluster.yaml", bad + "---\n" + NODE)
    code, out, err = run(
        str(cluster), str(write(tmp_path, "pods.yaml", POD % (1000, 10))), "--format", "json"
    )
    assert code == 0, err
    warning = (
        f"warning: {cluster}: Node node-bad skipped, as the scheduler does: NVIDIA registration "
        "hami.io/node-nvidia-register"
    )
    assert err.startswith(warning) and "count" in err, err
    document = json.loads(out)
    assert document["results"][0]["node"] == "node-a"
    assert list(document["summary"]["nodes"]) == ["node-a"]
    assert document["summary"]["warnings"] == [err.removeprefix("warning: ").strip()]


def test_bad_config_is_named(tmp_path: Path) -> None:
    config = write(tmp_path, "config.yaml", "nvidia:\n  defaultCores: 300\n")
    code, _, err = run(
        str(EXAMPLES / "cluster.yaml"), str(EXAMPLES / "pods.yaml"), "--config", str(config)
    )
    assert code == 2
    assert "config.yaml: nvidia.defaultCores" in err


def test_missing_file_is_named(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path / "nope.yaml"), str(EXAMPLES / "pods.yaml"))
    assert code == 2
    assert "nope.yaml: cannot read" in err


def test_policy_examples_show_each_policy_and_filter() -> None:
    code, out, _ = run(
        str(EXAMPLES / "policies" / "cluster.yaml"),
        str(EXAMPLES / "policies" / "pods.yaml"),
        "--format",
        "json",
    )
    assert code == 0
    placed = {
        r["pod"].split("/")[1]: r["annotations"].get(keys.NVIDIA_ALLOCATED)
        for r in json.loads(out)["results"]
    }
    assert placed["binpack"] == "GPU-p0,NVIDIA,2000,10:;"  # joins the resident pod
    assert placed["spread"] == "GPU-p3,NVIDIA,2000,10:;"  # an idle card
    assert placed["mutex"] == "GPU-p2,NVIDIA,2000,0:;"  # the last idle card
    assert placed["pinned"] == "GPU-p1,NVIDIA,1000,0:;"
    assert placed["avoid"] == "GPU-p3,NVIDIA,1000,0:;"
    assert placed["numa-pair"] == "GPU-p2,NVIDIA,1000,0:GPU-p3,NVIDIA,1000,0:;"
    assert placed["wrong-type"] is None


def test_mixed_vendor_cluster_places_one_pod_per_vendor() -> None:
    vendors = EXAMPLES / "vendors"
    code, out, _ = run(
        str(vendors / "cluster.yaml"),
        str(vendors / "pods.yaml"),
        "--config",
        str(vendors / "config.yaml"),
        "--format",
        "json",
    )
    assert code == 0
    results = json.loads(out)["results"]
    assert len(results) == (vendors / "pods.yaml").read_text().count("\nkind: Pod")
    assert all(r["node"] for r in results), [r for r in results if not r["node"]]


def test_table_shows_every_vendors_devices() -> None:
    vendors = EXAMPLES / "vendors"
    code, out, _ = run(
        str(vendors / "cluster.yaml"),
        str(vendors / "pods.yaml"),
        "--config",
        str(vendors / "config.yaml"),
        "--now",
        NOW,
    )
    assert code == 0
    for shown in (
        "NVIDIA [0] GPU-t4-0",
        "Ascend910B2 [0]",
        "MLU [0]",
        "DCU [0] DCU-",
        "BI-V100 [0]",
        "Mthreads [0]",
        "Metax-SGPU [0]",
        "kunlun [0]",
        "GCU [0]",
        "AMD [0] amd-0",
        "Biren [0]",
        "Vastai [0]",
        "AWSNeuron [0]",
    ):
        assert shown in out, shown
