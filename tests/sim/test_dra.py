"""`hami sim` over a cluster file with ResourceSlices and ResourceClaims (DRA mode, docs/dra.md):
the DRA nodes and allocations are shown beside the extender's; the simulation never places an
extender pod on a DRA device (kube-scheduler does that)."""

from __future__ import annotations

import json
from pathlib import Path

from .test_cli import NODE, POD, run, write

DRA = """
---
apiVersion: v1
kind: Node
metadata:
  name: dra-1
  labels: {hami.io/dra: "true"}
---
apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {name: dra-1-hami-core-gpu}
spec:
  driver: hami-core-gpu.project-hami.io
  nodeName: dra-1
  pool: {name: dra-1, generation: 1, resourceSliceCount: 1}
  devices:
  - name: hami-gpu-0
    attributes:
      uuid: {string: GPU-dra-0}
      productName: {string: NVIDIA A100-SXM4-80GB}
      minor: {int: 0}
    capacity:
      memory: {value: 80Gi}
      cores: {value: "100"}
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata:
  name: train-gpu-0-x7k2
  namespace: ml
  ownerReferences: [{apiVersion: v1, kind: Pod, name: train, uid: u1}]
status:
  allocation:
    devices:
      results:
      - {driver: hami-core-gpu.project-hami.io, pool: dra-1, device: hami-gpu-0, request: gpu,
         consumedCapacity: {memory: 10Gi, cores: "40"}}
---
apiVersion: v1
kind: Pod
metadata: {name: train, namespace: ml}
spec:
  nodeName: dra-1
  resourceClaims: [{name: gpu-0, resourceClaimTemplateName: hami-gpu-abc}]
  containers: [{name: main, resources: {claims: [{name: gpu-0}]}}]
"""


def test_dra_nodes_and_allocations_beside_the_extender_ones(tmp_path: Path) -> None:
    cluster = write(tmp_path, "cluster.yaml", NODE + DRA)
    pods = write(tmp_path, "pods.yaml", POD % (40000, 30))  # fits only the DRA GPU's memory
    code, out, _ = run(str(cluster), str(pods), "--format", "json")
    assert code == 0, out
    summary = json.loads(out)["summary"]
    assert (summary["placed"], summary["failed"]) == (0, 1)  # never on the DRA node
    (result,) = json.loads(out)["results"]
    assert "dra-1" not in result["reasons"]
    dra = summary["nodes"]["dra-1"]
    assert dra["mode"] == "dra" and dra["devices"] == 1 and dra["tasks"] == 1
    assert (dra["memory_mib"], dra["memory_allocated_mib"]) == (80 * 1024, 10 * 1024)
    assert dra["cores_allocated"] == 40
    assert summary["dra_allocations"] == [
        {
            "namespace": "ml",
            "claim": "train-gpu-0-x7k2",
            "pod": "train",
            "node": "dra-1",
            "device": "hami-gpu-0",
            "memory_mib": 10240,
            "cores": 40,
        }
    ]
    assert summary["nodes"]["node-a"]["devices"] == 1


def test_table_shows_the_dra_allocations(tmp_path: Path) -> None:
    cluster = write(tmp_path, "cluster.yaml", NODE + DRA)
    pods = write(tmp_path, "pods.yaml", POD % (3000, 30))
    code, out, _ = run(str(cluster), str(pods))
    assert code == 0, out
    assert "dra-1 (DRA)" in out and "DRA allocations" in out
    assert "ml/train" in out and "train-gpu-0-x7k2" in out and "10240 MiB" in out


def test_a_cluster_without_dra_objects_has_no_dra_section(tmp_path: Path) -> None:
    cluster = write(tmp_path, "cluster.yaml", NODE)
    code, out, _ = run(
        str(cluster), str(write(tmp_path, "pods.yaml", POD % (3000, 30))), "--format", "json"
    )
    assert code == 0 and "dra_allocations" not in json.loads(out)["summary"]
