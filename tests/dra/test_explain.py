from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hami.core.dra import names
from hami.core.dra.explain import explain_pod, is_dra_pod

SLICE = {
    "spec": {
        "driver": names.DRIVER,
        "pool": {"name": "n1"},
        "devices": [
            {
                "name": "hami-gpu-0",
                "capacity": {"memory": {"value": "4Gi"}, "cores": {"value": "100"}},
            }
        ],
    }
}


def _claim(name: str, allocated: bool, memory: str = "3Gi") -> dict[str, Any]:
    claim: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "ns", "uid": name},
        "spec": {
            "devices": {
                "requests": [
                    {
                        "name": "gpu",
                        "exactly": {"capacity": {"requests": {"memory": memory, "cores": "10"}}},
                    }
                ]
            }
        },
    }
    if allocated:
        result = {
            "driver": names.DRIVER,
            "pool": "n1",
            "device": "hami-gpu-0",
            "request": "gpu",
            "consumedCapacity": {"memory": memory, "cores": "10"},
        }
        claim["status"] = {"allocation": {"devices": {"results": [result]}}}
    return claim


def _pod(claim: str, node: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {
        "resourceClaimStatuses": [{"name": "gpu-0", "resourceClaimName": claim}],
    }
    if not node:
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "message": "0/1 nodes: cannot allocate all claims",
            }
        ]
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "nodeName": node or None,
            "resourceClaims": [{"name": "gpu-0", "resourceClaimTemplateName": "hami-gpu-x"}],
        },
        "status": status,
    }


def test_allocated_claim_names_device_and_amounts() -> None:
    claims = [_claim("c1", True)]
    assert is_dra_pod(_pod("c1", "n1"))
    assert explain_pod(_pod("c1", "n1"), claims, [SLICE]) == [
        "ns/p uses DRA claims, on node n1",
        "  gpu-0 (c1): hami-gpu-0 on n1, 3072 MiB, 10 cores",
    ]


def test_pending_claim_says_why() -> None:
    claims = [_claim("c1", True), _claim("c2", False, memory="2Gi")]
    assert explain_pod(_pod("c2"), claims, [SLICE]) == [
        "ns/p uses DRA claims, not scheduled",
        "  gpu-0 (c2): not allocated",
        "    request gpu: no node has a device with 2048 MiB and 10 cores free "
        "(the most free on any device: 1024 MiB, 90 cores)",
        "kube-scheduler: 0/1 nodes: cannot allocate all claims",
    ]


def test_claim_not_made_yet() -> None:
    pod = _pod("c9")
    pod["status"] = {}
    assert explain_pod(pod, [], [SLICE])[1] == (
        "  gpu-0: no claim yet (template hami-gpu-x; kube-controller-manager makes it)"
    )


def test_capacity_is_judged_on_the_devices_the_annotations_allow() -> None:
    from hami.core.dra.explain import eligible

    def dev(name: str, uuid: str, product: str) -> dict[str, Any]:
        attrs = {"uuid": {"string": uuid}, "productName": {"string": product}}
        return {"name": name, "attributes": attrs}

    slices = [
        {
            "spec": {
                "pool": {"name": "n1"},
                "devices": [dev("g0", "U0", "NVIDIA A100"), dev("g1", "U1", "Tesla T4")],
            }
        }
    ]
    assert eligible({}, slices) == {("n1", "g0"), ("n1", "g1")}
    assert eligible({"nvidia.com/use-gpuuuid": "U1"}, slices) == {("n1", "g1")}
    assert eligible({"nvidia.com/use-gputype": "a100"}, slices) == {("n1", "g0")}
    assert eligible({"nvidia.com/nouse-gputype": "T4,A100"}, slices) == set()


def test_other_namespaces_claims_count_against_the_devices_but_never_stand_in() -> None:
    elsewhere = _claim("c1", True)  # a namesake of the pod's claim, allocated, 3 GiB
    elsewhere["metadata"]["namespace"] = "other"
    lines = explain_pod(_pod("c1"), [elsewhere, _claim("c1", False, memory="2Gi")], [SLICE])
    assert lines[1] == "  gpu-0 (c1): not allocated"  # the pod's own claim, not the namesake
    assert "(the most free on any device: 1024 MiB, 90 cores)" in lines[2]  # its use counts


def test_hami_explain_reads_a_dra_pods_claims_and_slices_from_the_sim_files(
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from hami.cli import app

    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
    held = {"apiVersion": names.RESOURCE_API, "kind": "ResourceClaim", **_claim("c1", True)}
    waiting = {"apiVersion": names.RESOURCE_API, "kind": "ResourceClaim", **_claim("c2", False)}
    published = {"apiVersion": names.RESOURCE_API, "kind": "ResourceSlice", **SLICE}
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(yaml.safe_dump_all([node, published, held, waiting]))
    pods = tmp_path / "pods.yaml"
    pods.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", **_pod("c2")}))
    result = CliRunner().invoke(
        app, ["explain", "ns/p", "--cluster", str(cluster), "--pods", str(pods)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [
        "ns/p uses DRA claims, not scheduled",
        "  gpu-0 (c2): not allocated",
    ]
    assert "the most free on any device: 1024 MiB" in result.output
