"""MIG GPUs in `hami sim` (issue 21): each MIG GPU with its reserved and realised instances."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hami.api import annotations as codec
from hami.api import keys
from hami.api.types import MigAllocation, MigPlacement
from hami.cli import app
from hami.core import migview as mig
from hami.core.accounting import PlacedPod
from hami.core.model import Device, Node

runner = CliRunner()
GPU = "GPU-h100-0"
H100 = (
    '[{"id":"GPU-h100-0","count":7,"devmem":81559,"devcore":100,"type":"NVIDIA H100 80GB HBM3",'
    '"mode":"mig","health":true,"migProfiles":['
    '{"name":"1g.10gb","memoryMB":9856,"core":14,"sliceCount":1,"placements":['
    '{"start":0,"size":1},{"start":1,"size":1},{"start":2,"size":1},{"start":3,"size":1},'
    '{"start":4,"size":1},{"start":5,"size":1},{"start":6,"size":1}]},'
    '{"name":"3g.40gb","memoryMB":40192,"core":42,"sliceCount":3,"placements":['
    '{"start":0,"size":4},{"start":4,"size":4}]},'
    '{"name":"7g.80gb","memoryMB":80896,"core":100,"sliceCount":7,"placements":['
    '{"start":0,"size":8}]}]}]'
)
REALISED = MigAllocation(0, 0, GPU, "3g.40gb", MigPlacement(4, 4), "MIG-aaaa", 2, 0)


def cluster_yaml() -> str:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "h100", "annotations": {keys.NVIDIA_REGISTER: H100}},
    }
    running = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "trainer",
            "namespace": "ml",
            "annotations": {
                keys.VGPU_NODE: "h100",
                keys.NVIDIA_ALLOCATED: f"{GPU},NVIDIA,40192,42:;",
                keys.MIG_ALLOCATIONS: codec.encode_mig_allocations([REALISED]),
            },
        },
        "spec": {"nodeName": "h100", "containers": [{"name": "c"}]},
    }
    return "---\n".join(json.dumps(d) + "\n" for d in (node, running))


PODS = """
apiVersion: v1
kind: Pod
metadata: {name: small, namespace: ml, annotations: {nvidia.com/vgpu-mode: mig}}
spec:
  containers:
  - name: c
    resources: {limits: {nvidia.com/gpu: 1, nvidia.com/gpumem: 8000}}
"""


def files(tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "cluster.yaml").write_text(cluster_yaml())
    (tmp_path / "pods.yaml").write_text(PODS)
    return str(tmp_path / "cluster.yaml"), str(tmp_path / "pods.yaml")


def test_json_lists_each_mig_gpu_with_reserved_and_realised_instances(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sim", *files(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    (gpu,) = json.loads(result.stdout)["summary"]["nodes"]["h100"]["mig"]
    assert (gpu["uuid"], gpu["slices"], gpu["slices_used"]) == (GPU, 8, 5)
    assert gpu["slice_map"] == "...abbbb"
    new, old = gpu["instances"]
    assert new == {
        "pod": "ml/small",
        "container": 0,
        "profile": "1g.10gb",
        "start": 3,  # 1g. profiles take the highest free start
        "size": 1,
        "state": "reserved",
        "mig_uuid": None,
        "gpu_instance_id": None,
        "compute_instance_id": None,
    }
    assert old["pod"] == "ml/trainer" and old["state"] == "realised"
    assert (old["mig_uuid"], old["gpu_instance_id"], old["compute_instance_id"]) == (
        "MIG-aaaa",
        2,
        0,
    )


def test_nodes_without_mig_gpus_have_no_mig_key() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    result = runner.invoke(
        app,
        ["sim", str(examples / "cluster.yaml"), str(examples / "pods.yaml"), "--format", "json"],
    )
    nodes = json.loads(result.stdout)["summary"]["nodes"]
    assert [name for name, info in nodes.items() if "mig" in info] == ["h100-mig"]
    assert nodes["h100-mig"]["mig"][0]["slice_map"] == ".....ab."


def test_table_draws_the_slices_and_names_the_mig_uuid(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sim", *files(tmp_path)], terminal_width=200)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "MIG GPUs after placement" in out and "[...abbbb]" in out and "5/8 used" in out
    assert "a  1g.10gb  slices 3-3  ml/small [0]  reserved, not realised yet" in out
    assert "b  3g.40gb  slices 4-7  ml/trainer [0]  MIG-aaaa (GI 2, CI 0)" in out


def test_gpus_instances_and_slice_map() -> None:
    plain = Device("GPU-t4", "NVIDIA", "Tesla T4", 10, 15360, 100)
    idle = Device("GPU-m", "NVIDIA", "A100", 7, 81920, 100, index=1, mode="mig")
    node = Node("n", (idle, plain))
    overlap = (
        MigAllocation(0, 0, "GPU-m", "2g.20gb", MigPlacement(0, 2)),
        MigAllocation(1, 0, "GPU-m", "1g.10gb", MigPlacement(1, 1), "MIG-x", 7, 0),
    )
    elsewhere = PlacedPod("a/other-node", "m", {}, mig=overlap)
    assert [g.instances for g in mig.mig_gpus([node], [elsewhere])] == [()]
    (gpu,) = mig.mig_gpus([node], [PlacedPod("a/p", "n", {}, mig=overlap)])
    assert (gpu.index, gpu.slices, gpu.slices_used, gpu.slice_map()) == (1, 8, 2, "a!......")
    lines = mig.render([gpu])
    assert lines[0] == "  n GPU 1 (A100) GPU-m: [a!......] 2/8 slices"
    assert lines[2] == "      b  1g.10gb  slices 1-1  a/p [1]  MIG-x (GI 7, CI 0)"
    assert mig.render([mig.MigGpu("n", "GPU-m", 1, "A100", 8)])[1] == "      no instances"
    found, problem = mig.safe_from_annotations("a/b", {keys.MIG_ALLOCATIONS: "garbage"})
    assert found == [] and keys.MIG_ALLOCATIONS in problem
