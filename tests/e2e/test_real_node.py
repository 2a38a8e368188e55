"""The path a user's pod takes on a real node: kube-scheduler + our extender and webhook pick the
GPU, a real kubelet (built from the Go module) calls our device plugin over its real socket,
containerd + runc start the container, and libvgpu — loaded through the mounted
/etc/ld.so.preload — holds a CUDA program to its slice (docs/real-node.md).

Root only (containerd, kubelet, mounts, a bridge); one real node per machine."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hami.api import keys
from hami.cluster.binaries import find_node_binaries
from hami.cluster.ports import free_port
from hami.cluster.process import Component
from hami.demo.stack import HAMI, Stack, poll, register_webhook
from hami.k8s import objects
from hami.k8s.api import PODS
from hami.k8s.client import LightkubeAPI
from hami.node import host
from hami.node.node import NodeOptions, RealNode
from tests.e2e.realnode import (
    MIB,
    NAMESPACE,
    allocatable,
    allocated_uuid,
    bind_phase,
    delete_pod,
    event_names,
    kubectl,
    probe_pod,
    run_pod,
    wait_log,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.real_node,
    pytest.mark.skipif(os.geteuid() != 0, reason="a real node needs root (containerd, kubelet)"),
]

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "examples" / "inventory" / "t4-pair.yaml"
CONFIG = REPO / "examples" / "config.yaml"
LIBVGPU = REPO / "libvgpu" / "build" / "rel"
NODE = "real-node"


@dataclass
class RealStack:
    stack: Stack
    node: RealNode
    hook: Path
    kubectl: Path
    monitor_port: int
    before: host.HostSnapshot

    def api(self) -> LightkubeAPI:
        return self.stack.api()

    def kubectl_run(self, *args: str) -> str:
        return kubectl(self.kubectl, self.stack.cluster.kubeconfig, *args)

    async def log(self, pod: str, text: str) -> str:
        return await wait_log(self.kubectl, self.stack.cluster.kubeconfig, pod, text)

    def start(self, component: Component) -> Component:
        component.start(die_with_parent=True)
        self.stack.components.append(component)
        return component


def install_hook(hook: Path) -> None:
    """What the chart's init container provides: libvgpu.so and an ld.so.preload naming its
    in-container path (the same path: the plugin mounts it there)."""
    vgpu = hook / "vgpu"
    vgpu.mkdir(parents=True, exist_ok=True)
    shutil.copy2(LIBVGPU / "libvgpu.so", vgpu / "libvgpu.so")
    (vgpu / "ld.so.preload").write_text(f"{vgpu / 'libvgpu.so'}\n")


def plugin_component(stack: Stack, hook: Path, lock_dir: Path) -> Component:
    kubeconfig = str(stack.cluster.kubeconfig)
    argv = [HAMI, "device-plugin", "--node-name", NODE, "--backend", "fake"]
    argv += ["--inventory", str(INVENTORY), "--config-file", str(CONFIG)]
    argv += ["--kubeconfig", kubeconfig, "--socket-dir", "/var/lib/kubelet/device-plugins"]
    argv += ["--hook-path", str(hook), "--lock-dir", str(lock_dir)]
    log = stack.cluster.run_dir / "logs" / "device-plugin.log"
    return Component("hami-device-plugin", argv, log)


def monitor_component(stack: Stack, hook: Path, port: int) -> Component:
    argv = [HAMI, "monitor", "--node-name", NODE, "--hook-path", str(hook)]
    argv += ["--metrics-bind-address", f"127.0.0.1:{port}", "--interval", "1s"]
    argv += ["--kubeconfig", str(stack.cluster.kubeconfig)]
    return Component("hami-monitor", argv, stack.cluster.run_dir / "logs" / "monitor.log")


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealStack]:
    work = tmp_path_factory.mktemp("hami-real")
    before = host.take_snapshot()
    stack = Stack.start(work / "cluster", "hami-real", default_profile=True)
    node: RealNode | None = None
    try:
        stack.scheduler()
        binaries = find_node_binaries()
        options = NodeOptions(
            work=work / "node",
            kubeconfig=stack.cluster.kubeconfig,
            kubelet=binaries.kubelet,
            fake_driver=LIBVGPU / "fake",
            name=NODE,
        )
        node = RealNode(options).up()
        hook = work / "hook"
        install_hook(hook)
        real = RealStack(stack, node, hook, binaries.kubectl, free_port(), before)
        real.start(plugin_component(stack, hook, work / "vgpulock"))
        real.start(monitor_component(stack, hook, real.monitor_port))
        asyncio.run(_ready(real))
        yield real
    finally:
        if node is not None:
            node.down()
        stack.stop()


async def _ready(real: RealStack) -> None:
    api = real.api()
    try:
        await register_webhook(api, real.stack.port, real.stack.ca)
        await poll(lambda: allocatable(api, NODE, "20"), 90, f"{NODE} to advertise 20 GPUs")
    finally:
        await api.close()


# --- the tests, in the order a user meets them -------------------------------------------------


async def test_gpu_pod_gets_its_memory_limit_on_the_real_node(real: RealStack) -> None:
    api = real.api()
    try:
        pod = await run_pod(api, probe_pod("gpu-probe", "memprobe 256 3600"))
        notes = objects.annotations(pod)
        assert objects.spec(pod)["schedulerName"] == "hami-scheduler"
        assert objects.spec(pod)["nodeName"] == NODE
        log = await real.log("gpu-probe", "RESULT:")
        assert "cuMemGetInfo free=" in log and "total=1000 MiB" in log, log
        assert "cuDeviceTotalMem 1000 MiB" in log, log
        assert "alloc 4 (256 MiB): CUDA_ERROR_OUT_OF_MEMORY" in log, log
        assert "RESULT: allocated 768 MiB" in log, log
        # the fake driver shows the GPU the plugin handed out (NVIDIA_VISIBLE_DEVICES)
        assert f"uuid: {allocated_uuid(pod)}".lower() in log.lower(), log
        await poll(
            lambda: bind_phase(api, "gpu-probe", keys.BIND_PHASE_SUCCESS), 30, "bind success"
        )
        assert notes.get(keys.VGPU_NODE) == NODE
    finally:
        await api.close()


async def test_a_second_process_shares_the_containers_limit(real: RealStack) -> None:
    out = real.kubectl_run("exec", "gpu-probe", "-n", NAMESPACE, "--", "memprobe", "64")
    assert "total=1000 MiB" in out, out
    got = int(out.split("RESULT: allocated ")[1].split()[0])
    assert got <= 1000 - 768, out  # the first process still holds 768 MiB
    assert "CUDA_ERROR_OUT_OF_MEMORY" in out, out


async def test_monitor_reports_used_memory_under_the_allocated_gpu(real: RealStack) -> None:
    api = real.api()
    try:
        uuid = allocated_uuid(await api.get(PODS, "gpu-probe", NAMESPACE))
    finally:
        await api.close()
    url = f"http://127.0.0.1:{real.monitor_port}/metrics"
    found: dict[str, float] = {}

    async def reported() -> bool:
        try:
            text = httpx.get(url, timeout=2, trust_env=False).text
        except httpx.HTTPError:
            return False
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if (
                    sample.name == "hami_vgpu_memory_used_bytes"
                    and sample.labels.get("pod") == "gpu-probe"
                ):
                    found[sample.labels.get("device_uuid", "")] = sample.value
        return bool(found)

    await poll(reported, 60, "the monitor to report gpu-probe's memory", interval=0.5)
    assert set(found) == {uuid}, found
    assert found[uuid] >= 768 * MIB, found


async def test_missing_preload_file_fails_the_pod_loudly(real: RealStack) -> None:
    preload = real.hook / "vgpu" / "ld.so.preload"
    saved = preload.read_text()
    preload.unlink()
    api = real.api()
    try:
        await api.create(PODS, probe_pod("no-preload", "memprobe 256"), NAMESPACE)

        await poll(
            lambda: event_names(api, "no-preload", "ld.so.preload"),
            60,
            "an Event naming the missing ld.so.preload",
            interval=0.5,
        )
        pod = await api.get(PODS, "no-preload", NAMESPACE)
        assert objects.status(pod).get("phase") != "Running"
        assert objects.annotations(pod).get(keys.BIND_PHASE) == keys.BIND_PHASE_FAILED
    finally:
        preload.write_text(saved)
        await delete_pod(api, "no-preload")
        await api.close()


async def test_kubelet_restart_keeps_pods_and_allocates_again(real: RealStack) -> None:
    api = real.api()
    try:
        real.node.restart_kubelet()
        await poll(lambda: allocatable(api, NODE, "20"), 90, "the plugin to re-register")
        pod = await api.get(PODS, "gpu-probe", NAMESPACE)
        status = objects.status(pod)
        assert status.get("phase") == "Running"
        assert status["containerStatuses"][0]["restartCount"] == 0
        await run_pod(api, probe_pod("after-restart", "memprobe 256", gpumem=512), "Succeeded")
        log = await real.log("after-restart", "RESULT:")
        assert "total=512 MiB" in log and "RESULT: allocated 256 MiB" in log, log
    finally:
        await delete_pod(api, "after-restart")
        await api.close()


async def test_down_leaves_the_host_as_before(real: RealStack) -> None:
    api = real.api()
    try:
        await delete_pod(api, "gpu-probe")
    finally:
        await api.close()
    began = time.monotonic()
    real.node.down()
    assert time.monotonic() - began < 60
    after = host.take_snapshot()
    assert after == real.before, host.difference(real.before, after)
    assert not host.processes_with(str(real.node.layout.containerd_socket))
