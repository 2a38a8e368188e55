"""`helm install charts/hami --set dra.enabled=true` onto the real node (issue 22): the chart's
DRA plugin DaemonSet runs from the hami image, registers with the real kubelet, publishes the
node's slice through the ValidatingAdmissionPolicy (its token names its node), and a GPU pod
selecting the DRA node is turned into a claim by the chart's webhook and prepared by the plugin;
its container sees the claim's memory through libvgpu (the CDI spec, applied by containerd).

Root only; one real node per machine (run under ``flock /tmp/hami-real-node.lock``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hami.core.dra import names, records
from hami.demo.stack import poll
from hami.draview import CLAIMS, SLICES
from hami.k8s import objects
from hami.k8s.api import Kind
from hami.node.images import TESTBOX_IMAGE
from tests.e2e.realnode import (
    NAMESPACE,
    RELEASE,
    SYSTEM,
    ChartNode,
    chart_node_up,
    delete_pod,
    fake_args,
    kubectl,
    run_pod,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.real_node,
    pytest.mark.dra,
    pytest.mark.skipif(os.geteuid() != 0, reason="a real node needs root (containerd, kubelet)"),
]

NODE = "dra-chart-node"
DAEMONSETS = Kind("daemonsets", "apis/apps/v1", True, "DaemonSet")


def _values(hook: Path) -> dict[str, object]:
    return {
        "global": {"gpuHookPath": str(hook)},
        "scheduler": {"leaderElect": False, "admissionWebhook": {"failurePolicy": "Fail"}},
        "devicePlugin": {"extraArgs": fake_args(hook)},
        "dra": {"enabled": True, "extraArgs": fake_args(hook)},
    }


@pytest.fixture(scope="module")
def chart_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartNode]:
    work = tmp_path_factory.mktemp("hami-dra-chart-node")
    label = f"{names.DRA_NODE_LABEL}=true"
    with chart_node_up(work, "hami-dra-chart", NODE, label, _values) as real:
        yield real


async def test_chart_dra_plugin_serves_the_real_node(chart_node: ChartNode) -> None:
    api = chart_node.api()
    try:

        async def ready() -> bool:
            plugin = await api.get(DAEMONSETS, f"{RELEASE}-dra-plugin", SYSTEM)
            return objects.status(plugin).get("numberReady") == 1

        try:
            await poll(ready, 90, "the DRA plugin pod to be ready")
        except Exception as exc:
            selector = "app.kubernetes.io/component=hami-dra-plugin"
            logs = kubectl(
                chart_node.kubectl, chart_node.cluster.kubeconfig, "-n", SYSTEM, "logs",
                "-l", selector, "--all-containers", "--tail=40",
            )  # fmt: skip
            pods = kubectl(
                chart_node.kubectl, chart_node.cluster.kubeconfig, "-n", SYSTEM, "get", "pods",
                "-l", selector, "-o", "yaml",
            )  # fmt: skip
            raise AssertionError(f"{exc}\n{logs}\n{pods[-3000:]}") from exc
        device_plugin = await api.get(DAEMONSETS, f"{RELEASE}-device-plugin", SYSTEM)
        assert (
            objects.status(device_plugin).get("desiredNumberScheduled", 0) == 0
        )  # not on DRA nodes

        async def published() -> bool:
            return len((await api.list(SLICES)).items) == 1

        try:
            await poll(published, 90, "the plugin pod to publish the node's slice (policy)")
        except Exception as exc:
            logs = kubectl(
                chart_node.kubectl, chart_node.cluster.kubeconfig, "-n", SYSTEM, "logs",
                "-l", "app.kubernetes.io/component=hami-dra-plugin", "--all-containers", "--tail=60",
            )  # fmt: skip
            raise AssertionError(f"{exc}\n{logs}") from exc
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "dra-chart-probe"},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "restartPolicy": "Never",
                "nodeSelector": {names.DRA_NODE_LABEL: "true"},
                "containers": [
                    {
                        "name": "probe",
                        "image": TESTBOX_IMAGE,
                        "imagePullPolicy": "Never",
                        "command": ["sh", "-c", "memprobe 256 3600"],
                        "resources": {
                            "limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}
                        },
                    }
                ],
            },
        }
        running = await run_pod(api, pod)  # Running: kubelet's NodePrepareResources succeeded
        assert objects.spec(running)["resourceClaims"]  # the chart's webhook made it a claim
        (allocation,) = records.allocations((await api.list(CLAIMS, namespace=NAMESPACE)).items)
        assert allocation.node == NODE and allocation.memory_mib == 1000
        log = await chart_node.log("dra-chart-probe", "RESULT:")
        assert "total=1000 MiB" in log, log
        await delete_pod(api, "dra-chart-probe")

        async def claim_gone() -> bool:
            return not (await api.list(CLAIMS, namespace=NAMESPACE)).items

        await poll(claim_gone, 60, "the claim to go with its pod")
    finally:
        await api.close()
