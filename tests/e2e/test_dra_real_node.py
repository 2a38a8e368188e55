"""DRA mode on the real node (issue 22): kubelet finds ``hami dra-plugin`` through its
plugin-registration socket, calls ``NodePrepareResources`` for a pod whose claim came from the
webhook's template, and ``NodeUnprepareResources`` when the pod goes; the claim goes with the pod.

Root only; one real node per machine (run under ``flock /tmp/hami-real-node.lock``). The node's
containerd (1.7, built by ``make node-bin``) applies the CDI spec the plugin writes, so the
container's probe sees libvgpu's limit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hami.agent.dra.prepare import SpecStore
from hami.cluster.control_plane import LocalCluster
from hami.core.dra import names, records
from hami.core.dra.translate import DraMode, translate
from hami.demo.stack import poll
from hami.k8s import objects
from hami.k8s.api import Kind, KubeAPIError
from hami.k8s.client import LightkubeAPI, load_kubeconfig
from hami.node.images import TESTBOX_IMAGE
from hami.node.node import RealNode
from hami.node.render import CDI_SPEC_DIR
from tests.e2e.dra_stack import apply_patch, device_class, pod_manifest
from tests.e2e.realnode import (
    LIBVGPU,
    NAMESPACE,
    T4_PAIR,
    delete_pod,
    kubectl,
    real_node_up,
    run_pod,
    wait_log,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.real_node,
    pytest.mark.dra,
    pytest.mark.skipif(os.geteuid() != 0, reason="a real node needs root (containerd, kubelet)"),
]

INVENTORY = T4_PAIR
NODE = "dra-real-node"
HAMI = str(Path(sys.executable).with_name("hami"))
DEVICE_CLASSES = Kind("deviceclasses", "apis/resource.k8s.io/v1", False, "DeviceClass")
TEMPLATES = Kind("resourceclaimtemplates", "apis/resource.k8s.io/v1", True, "ResourceClaimTemplate")
CLAIMS = Kind("resourceclaims", "apis/resource.k8s.io/v1", True, "ResourceClaim")
SLICES = Kind("resourceslices", "apis/resource.k8s.io/v1", False, "ResourceSlice")


@dataclass
class DraNode:
    cluster: LocalCluster
    node: RealNode
    cdi: Path
    kubectl: Path
    plugin_log: Path
    argv: list[str]
    plugin: subprocess.Popen[bytes] | None = None

    def start_plugin(self) -> None:
        self.plugin = subprocess.Popen(
            self.argv, stdout=self.plugin_log.open("ab"), stderr=subprocess.STDOUT
        )

    def stop_plugin(self) -> None:
        if self.plugin is not None:
            self.plugin.terminate()
            self.plugin.wait(15)
            self.plugin = None

    def api(self) -> LightkubeAPI:
        return LightkubeAPI(load_kubeconfig(self.cluster.kubeconfig), timeout=10.0)


@pytest.fixture(scope="module")
def dra_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DraNode]:
    work = tmp_path_factory.mktemp("hami-dra-node")
    real: DraNode | None = None
    with real_node_up(work, "hami-dra-node", NODE) as (cluster, node, binaries):
        try:
            kubectl(
                binaries.kubectl, cluster.kubeconfig, "label", "node", NODE,
                f"{names.DRA_NODE_LABEL}=true",
            )  # fmt: skip
            hook = work / "hook"
            (hook / "vgpu").mkdir(parents=True)
            shutil.copy2(LIBVGPU / "libvgpu.so", hook / "vgpu" / "libvgpu.so")
            (hook / "vgpu" / "ld.so.preload").write_text(f"{hook}/vgpu/libvgpu.so\n")
            cdi = CDI_SPEC_DIR
            argv = [
                HAMI, "dra-plugin", "--node-name", NODE, "--backend", "fake",
                "--inventory", str(INVENTORY), "--kubeconfig", str(cluster.kubeconfig),
                "--hook-path", str(hook), "--lock-dir", str(work / "vgpulock"),
                "--cdi-spec-dir", str(cdi),
            ]  # fmt: skip
            real = DraNode(cluster, node, cdi, binaries.kubectl, work / "dra-plugin.log", argv)
            real.start_plugin()
            yield real
        finally:
            if real is not None:
                real.stop_plugin()


async def test_dra_pod_is_prepared_and_unprepared_by_the_real_kubelet(dra_node: DraNode) -> None:
    api = dra_node.api()
    try:
        await api.create(DEVICE_CLASSES, device_class())

        async def registered() -> bool:
            return "kubelet registered DRA driver" in dra_node.plugin_log.read_text(
                errors="replace"
            )

        await poll(registered, 60, "kubelet to register the DRA plugin", interval=0.5)
        slices = (await api.list(SLICES)).items
        assert [objects.spec(s)["nodeName"] for s in slices] == [NODE]
        devices = objects.spec(slices[0])["devices"]
        assert isinstance(devices, list) and len(devices) == 2

        pod = pod_manifest(
            "dra-probe",
            NAMESPACE,
            {"probe": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}},
            node_selector={names.DRA_NODE_LABEL: "true"},
        )
        done = translate(pod, DraMode())
        for template in done.templates:
            await api.create(TEMPLATES, dict(template), NAMESPACE)
        body = apply_patch(pod, done.patch)
        container = body["spec"]["containers"][0]
        container.update(
            image=TESTBOX_IMAGE, imagePullPolicy="Never", command=["sh", "-c", "memprobe 256 3600"]
        )
        body["spec"].update(terminationGracePeriodSeconds=1, restartPolicy="Never")
        running = await run_pod(api, body)
        assert objects.spec(running)["nodeName"] == NODE

        claims = (await api.list(CLAIMS, namespace=NAMESPACE)).items
        (allocation,) = records.allocations(claims)
        assert allocation.owner == "dra-probe" and allocation.memory_mib == 1000
        store = SpecStore(dra_node.cdi)
        assert store.prepared() == [allocation.claim_uid]
        spec = json.loads(store.path(allocation.claim_uid).read_text())
        assert "CUDA_DEVICE_MEMORY_LIMIT_0=1000m" in spec["containerEdits"]["env"]
        log = await wait_log(dra_node.kubectl, dra_node.cluster.kubeconfig, "dra-probe", "RESULT:")
        assert "total=1000 MiB" in log, log

        # the plugin restarts while the claim is prepared: kubelet registers it again and the
        # spec file (the whole record of a prepared claim) is what the new one unprepares
        dra_node.stop_plugin()
        dra_node.start_plugin()
        await _registered(dra_node, 2)
        await delete_pod(api, "dra-probe")

        async def unprepared() -> bool:
            return store.prepared() == []

        await poll(unprepared, 60, "kubelet to unprepare the claim")

        async def claim_gone() -> bool:
            try:
                await api.get(CLAIMS, allocation.claim, NAMESPACE)
            except KubeAPIError:
                return True
            return False

        await poll(claim_gone, 60, "the claim to go with its pod")
    finally:
        await api.close()


async def _registered(dra_node: DraNode, times: int) -> None:
    async def registered() -> bool:
        text = dra_node.plugin_log.read_text(errors="replace")
        return text.count("kubelet registered DRA driver") >= times

    await poll(registered, 60, f"kubelet to register the DRA plugin ({times})", interval=0.5)
