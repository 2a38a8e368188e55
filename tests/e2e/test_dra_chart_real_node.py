"""`helm install charts/hami --set dra.enabled=true` onto the real node (issue 22): the chart's
DRA plugin DaemonSet runs from the hami image, registers with the real kubelet, publishes the
node's slice through the ValidatingAdmissionPolicy (its token names its node), and a GPU pod
selecting the DRA node is turned into a claim by the chart's webhook and prepared by the plugin.

Root only; one real node per machine (run under ``flock /tmp/hami-real-node.lock``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hami.cluster.binaries import find_binaries, find_node_binaries
from hami.cluster.control_plane import ClusterOptions, LocalCluster
from hami.core.dra import names, records
from hami.demo.chart import CHART, helm
from hami.demo.stack import poll
from hami.k8s import objects
from hami.k8s.api import Kind
from hami.k8s.client import LightkubeAPI, load_kubeconfig
from hami.node.hamiimage import build_hami_image
from hami.node.images import TESTBOX_IMAGE, kube_scheduler_image, write_archives
from hami.node.node import NodeOptions, RealNode
from tests.e2e.realnode import NAMESPACE, delete_pod, kubectl, run_pod

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.real_node,
    pytest.mark.dra,
    pytest.mark.skipif(os.geteuid() != 0, reason="a real node needs root (containerd, kubelet)"),
]

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "examples" / "inventory" / "t4-pair.yaml"
LIBVGPU = REPO / "libvgpu" / "build" / "rel"
NODE = "dra-chart-node"
SYSTEM = "kube-system"
RELEASE = "hami"
CLAIMS = Kind("resourceclaims", "apis/resource.k8s.io/v1", True, "ResourceClaim")
SLICES = Kind("resourceslices", "apis/resource.k8s.io/v1", False, "ResourceSlice")
DAEMONSETS = Kind("daemonsets", "apis/apps/v1", True, "DaemonSet")


@dataclass
class ChartNode:
    cluster: LocalCluster
    kubectl: Path

    def api(self) -> LightkubeAPI:
        return LightkubeAPI(load_kubeconfig(self.cluster.kubeconfig), timeout=10.0)


def _values(hook: Path) -> dict[str, object]:
    fake = ["--backend=fake", f"--inventory={hook}/vgpu/fake-inventory.yaml"]
    return {
        "global": {"gpuHookPath": str(hook)},
        "scheduler": {"leaderElect": False, "admissionWebhook": {"failurePolicy": "Fail"}},
        "devicePlugin": {"extraArgs": fake},
        "dra": {"enabled": True, "extraArgs": fake},
    }


@pytest.fixture(scope="module")
def chart_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartNode]:
    work = tmp_path_factory.mktemp("hami-dra-chart-node")
    binaries = find_node_binaries()
    cluster = LocalCluster(
        ClusterOptions(
            run_dir=work / "cluster",
            name="hami-dra-chart",
            controller_manager=binaries.kube_controller_manager,
        )
    )
    node: RealNode | None = None
    try:
        cluster.start()
        assert cluster.ports is not None
        node = RealNode(
            NodeOptions(
                work=work / "node",
                kubeconfig=cluster.kubeconfig,
                kubelet=binaries.kubelet,
                fake_driver=LIBVGPU / "fake",
                name=NODE,
                apiserver_port=cluster.ports.apiserver,
            )
        ).up()
        version = str(find_binaries().manifest["kubernetes"])
        images = work / "images"
        from hami.cluster.paths import cache_root

        archives = [
            build_hami_image(
                REPO, LIBVGPU / "libvgpu.so", cache_root() / "node-images", images / "hami.tar"
            )
        ]
        archives += write_archives(
            [kube_scheduler_image(find_binaries().kube_scheduler, version)], images
        )
        node.import_images(archives)
        hook = work / "hook"
        (hook / "vgpu").mkdir(parents=True)
        shutil.copy2(INVENTORY, hook / "vgpu" / "fake-inventory.yaml")
        kubectl(
            binaries.kubectl,
            cluster.kubeconfig,
            "label",
            "node",
            NODE,
            f"{names.DRA_NODE_LABEL}=true",
        )
        values = work / "values.yaml"
        values.write_text(yaml.safe_dump(_values(hook)))
        helm(
            "install", RELEASE, str(CHART), "--namespace", SYSTEM, "-f", str(values),
            "--wait", "--timeout", "5m", "--kubeconfig", str(cluster.kubeconfig),
        )  # fmt: skip
        yield ChartNode(cluster, binaries.kubectl)
    finally:
        if node is not None:
            node.down()
        cluster.stop()


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
                        "command": ["sh", "-c", "sleep 3600"],
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
        await delete_pod(api, "dra-chart-probe")

        async def claim_gone() -> bool:
            return not (await api.list(CLAIMS, namespace=NAMESPACE)).items

        await poll(claim_gone, 60, "the claim to go with its pod")
    finally:
        await api.close()
