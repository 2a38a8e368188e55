"""`helm install charts/hami` onto a real node, as a user does: the chart's scheduler Deployment
(kube-scheduler + our extender and webhook) and device-plugin DaemonSet (plugin + monitor) run
as pods from the hami image on a real kubelet + containerd, next to kube-controller-manager;
a GPU pod then gets its slice, enforced by libvgpu (docs/real-node.md).

Root only (containerd, kubelet, mounts, a bridge, a nat chain); one real node per machine."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from hami.agent.discovery.fake import load_inventory
from hami.api import keys
from hami.api.annotations import decode_mig_allocations
from hami.demo.chart import CHART
from hami.demo.stack import poll
from hami.k8s import objects
from hami.k8s.api import NODES, PODS, Kind, Manifest
from hami.k8s.client import LightkubeAPI
from hami.node import host
from tests.e2e.realnode import (
    MIB,
    NAMESPACE,
    RELEASE,
    REPO,
    SYSTEM,
    ChartNode,
    allocatable,
    allocated_uuid,
    bind_phase,
    chart_node_up,
    delete_pod,
    event_names,
    fake_args,
    probe_pod,
    run_pod,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.real_node,
    pytest.mark.skipif(os.geteuid() != 0, reason="a real node needs root (containerd, kubelet)"),
]

MIG_INVENTORY = REPO / "examples" / "inventory" / "h100-mig.yaml"
NODE = "real-node"
DAEMONSETS = Kind("daemonsets", "apis/apps/v1", True, "DaemonSet")
DEPLOYMENTS = Kind("deployments", "apis/apps/v1", True, "Deployment")
JOBS = Kind("jobs", "apis/batch/v1", True, "Job")
SECRETS = Kind("secrets", "api/v1", True, "Secret")
PLUGIN_SELECTOR = "app.kubernetes.io/component=hami-device-plugin"


def chart_values(hook: Path) -> dict[str, Any]:
    """The chart's defaults but: a hook path of the test's, one scheduler replica (its extender
    on 127.0.0.1), and the device plugin on the fake backend with the inventory beside libvgpu."""
    return {
        "global": {"gpuHookPath": str(hook)},
        "scheduler": {"leaderElect": False, "admissionWebhook": {"failurePolicy": "Fail"}},
        "devicePlugin": {"extraArgs": fake_args(hook)},
    }


@pytest.fixture(scope="module")
def chart_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartNode]:
    work = tmp_path_factory.mktemp("hami-chart-node")
    with chart_node_up(work, "hami-chart-node", NODE, "gpu=on", chart_values) as real:
        asyncio.run(_registered(real))
        yield real


async def _registered(real: ChartNode) -> None:
    api = real.api()
    try:
        await poll(lambda: allocatable(api, NODE, "20"), 120, f"{NODE} to advertise 20 GPUs")
    finally:
        await api.close()


async def _plugin_pod(api: LightkubeAPI) -> Manifest:
    pods = (await api.list(PODS, namespace=SYSTEM, label_selector=PLUGIN_SELECTOR)).items
    running = [p for p in pods if objects.status(p).get("phase") == "Running"]
    assert running, f"no running device-plugin pod: {[objects.status(p) for p in pods]}"
    return running[0]


# --- the tests, in the order a user meets them -------------------------------------------------


async def test_chart_pods_run_on_the_real_node(chart_node: ChartNode) -> None:
    api = chart_node.api()
    try:
        deployment = await api.get(DEPLOYMENTS, f"{RELEASE}-scheduler", SYSTEM)
        assert objects.status(deployment).get("readyReplicas") == 1
        daemonset = await api.get(DAEMONSETS, f"{RELEASE}-device-plugin", SYSTEM)
        assert objects.status(daemonset).get("numberReady") == 1
        node = await api.get(NODES, NODE)
        assert keys.NVIDIA_REGISTER in objects.annotations(node)

        async def reported() -> bool:  # the plugin answers the scheduler's handshake
            notes = objects.annotations(await api.get(NODES, NODE))
            return notes.get(keys.NVIDIA_HANDSHAKE, "").startswith("Reported")

        await poll(reported, 90, "hami.io/node-handshake to reach Reported", interval=0.5)
    finally:
        await api.close()


async def test_gpu_pod_gets_its_memory_limit(chart_node: ChartNode) -> None:
    api = chart_node.api()
    try:
        pod = await run_pod(api, probe_pod("gpu-probe", "memprobe 256 3600"))
        assert objects.spec(pod)["schedulerName"] == "hami-scheduler"
        assert objects.spec(pod)["nodeName"] == NODE
        log = await chart_node.log("gpu-probe", "RESULT:")
        assert "total=1000 MiB" in log and "cuDeviceTotalMem 1000 MiB" in log, log
        assert "alloc 4 (256 MiB): CUDA_ERROR_OUT_OF_MEMORY" in log, log
        assert "RESULT: allocated 768 MiB" in log, log
        assert f"uuid: {allocated_uuid(pod)}".lower() in log.lower(), log
        await poll(lambda: bind_phase(api, "gpu-probe", keys.BIND_PHASE_SUCCESS), 30, "success")
    finally:
        await api.close()


async def test_a_second_process_shares_the_limit(chart_node: ChartNode) -> None:
    out = chart_node.kubectl_run("exec", "gpu-probe", "-n", NAMESPACE, "--", "memprobe", "64")
    assert "total=1000 MiB" in out, out
    assert int(out.split("RESULT: allocated ")[1].split()[0]) <= 1000 - 768, out
    assert "CUDA_ERROR_OUT_OF_MEMORY" in out, out


async def test_the_charts_monitor_reports_the_allocated_gpu(chart_node: ChartNode) -> None:
    api = chart_node.api()
    try:
        uuid = allocated_uuid(await api.get(PODS, "gpu-probe", NAMESPACE))
        ip = objects.status(await _plugin_pod(api))["podIP"]
    finally:
        await api.close()
    found: dict[str, float] = {}

    async def reported() -> bool:
        try:
            text = httpx.get(f"http://{ip}:9394/metrics", timeout=2, trust_env=False).text
        except httpx.HTTPError:
            return False
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                if (
                    sample.name == "hami_vgpu_memory_used_bytes"
                    and labels.get("pod") == "gpu-probe"
                ):
                    found[labels.get("device_uuid", "")] = sample.value
        return bool(found)

    await poll(reported, 60, "the monitor to report gpu-probe", interval=0.5)
    assert set(found) == {uuid} and found[uuid] >= 768 * MIB, found


async def test_missing_preload_file_fails_the_pod_loudly(chart_node: ChartNode) -> None:
    preload = chart_node.hook / "vgpu" / "ld.so.preload"
    saved = preload.read_text()
    preload.unlink()
    api = chart_node.api()
    try:
        await api.create(PODS, probe_pod("no-preload", "memprobe 256"), NAMESPACE)
        await poll(
            lambda: event_names(api, "no-preload", "ld.so.preload"), 60, "an Event naming it"
        )
        pod = await api.get(PODS, "no-preload", NAMESPACE)
        assert objects.status(pod).get("phase") != "Running"
        assert objects.annotations(pod).get(keys.BIND_PHASE) == keys.BIND_PHASE_FAILED
    finally:
        preload.write_text(saved)
        await delete_pod(api, "no-preload")
        await api.close()


async def test_kubelet_restart_keeps_pods_and_allocates_again(chart_node: ChartNode) -> None:
    api = chart_node.api()
    try:
        chart_node.node.restart_kubelet()
        await poll(lambda: allocatable(api, NODE, "20"), 120, "the plugin to re-register")
        status = objects.status(await api.get(PODS, "gpu-probe", NAMESPACE))
        assert status.get("phase") == "Running"
        statuses = status["containerStatuses"]
        assert isinstance(statuses, list) and statuses[0]["restartCount"] == 0
        await run_pod(api, probe_pod("after-restart", "memprobe 256", gpumem=512), "Succeeded")
        log = await chart_node.log("after-restart", "RESULT:")
        assert "total=512 MiB" in log and "RESULT: allocated 256 MiB" in log, log
    finally:
        await delete_pod(api, "after-restart")
        await api.close()


async def test_plugin_pod_deleted_is_recreated_and_running_pods_unaffected(
    chart_node: ChartNode,
) -> None:
    api = chart_node.api()
    try:
        old = await _plugin_pod(api)
        await api.delete(PODS, objects.name(old), SYSTEM)

        async def replaced() -> bool:
            try:
                new = await _plugin_pod(api)
            except AssertionError:
                return False
            statuses = objects.status(new).get("containerStatuses", [])
            assert isinstance(statuses, list)
            ready = all(c.get("ready") for c in statuses)
            return objects.name(new) != objects.name(old) and ready

        await poll(replaced, 120, "the DaemonSet to recreate the plugin pod")
        status = objects.status(await api.get(PODS, "gpu-probe", NAMESPACE))
        assert status.get("phase") == "Running"
        statuses = status["containerStatuses"]
        assert isinstance(statuses, list) and statuses[0]["restartCount"] == 0
        await run_pod(api, probe_pod("after-plugin", "memprobe 256", gpumem=512), "Succeeded")
    finally:
        await delete_pod(api, "after-plugin")
        await api.close()


async def test_a_mig_pod_runs_on_the_real_node(chart_node: ChartNode) -> None:
    """Dynamic MIG end to end (issue 21): `helm upgrade` turns the node into a MIG node (an H100
    of the fake backend, operatingmode mig); a pod asking for a 1g.10gb-sized slice gets an
    instance created at Allocate, and its container sees that MIG device."""
    api = chart_node.api()
    try:
        await delete_pod(api, "gpu-probe")
        shutil.copy2(MIG_INVENTORY, chart_node.hook / "vgpu" / "fake-inventory.yaml")
        values = chart_values(chart_node.hook)
        config = {"nodeconfig": [{"name": NODE, "operatingmode": "mig"}]}
        values["devicePlugin"]["nodeConfiguration"] = {"config": json.dumps(config)}
        path = chart_node.hook.parent / "values-mig.yaml"
        path.write_text(yaml.safe_dump(values))
        chart_node.helm(
            "upgrade",
            RELEASE,
            str(CHART),
            "--namespace",
            SYSTEM,
            "-f",
            str(path),
            "--wait",
            "--timeout",
            "3m",
        )
        h100 = load_inventory(MIG_INVENTORY, NODE).gpus[0].uuid

        async def registered() -> bool:
            node = await api.get(NODES, NODE)
            alloc = objects.section(objects.status(node), "allocatable").get("nvidia.com/gpu")
            return h100 in objects.annotations(node).get(keys.NVIDIA_REGISTER, "") and bool(
                alloc and alloc != "0"
            )

        await poll(registered, 120, "the MIG node's registration (the H100)")
        body = probe_pod("mig-probe", 'echo "visible=$NVIDIA_VISIBLE_DEVICES"; sleep 3600')
        body["metadata"]["annotations"] = {"nvidia.com/vgpu-mode": "mig"}
        body["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpumem"] = "9000"
        pod = await run_pod(api, body)
        await poll(lambda: bind_phase(api, "mig-probe", keys.BIND_PHASE_SUCCESS), 30, "success")
        notes = objects.annotations(await api.get(PODS, "mig-probe", NAMESPACE))
        (instance,) = decode_mig_allocations(notes[keys.MIG_ALLOCATIONS])
        assert instance.profile == "1g.10gb" and instance.mig_uuid, instance
        log = await chart_node.log("mig-probe", "visible=")
        assert f"visible={instance.mig_uuid}" in log, log
        assert objects.spec(pod)["nodeName"] == NODE
    finally:
        await delete_pod(api, "mig-probe")
        await api.close()


async def test_uninstall_leaves_no_hami_object(chart_node: ChartNode) -> None:
    api = chart_node.api()
    try:
        await delete_pod(api, "gpu-probe")
        chart_node.helm("uninstall", RELEASE, "--namespace", SYSTEM, "--wait", "--timeout", "2m")

        async def gone() -> bool:
            pods = (await api.list(PODS, namespace=SYSTEM)).items
            jobs = (await api.list(JOBS, namespace=SYSTEM)).items
            return not pods and not jobs

        await poll(gone, 120, "hami's pods and hook Jobs to go")
        listed = chart_node.kubectl_run(
            "get",
            "all,cm,secret,sa,role,rolebinding,mutatingwebhookconfiguration,clusterrole,"
            "clusterrolebinding",
            "-A",
            "-l",
            f"app.kubernetes.io/instance={RELEASE}",
            "-o",
            "name",
        )
        assert listed.strip() == "", listed
        secrets = {objects.name(x) for x in (await api.list(SECRETS, namespace=SYSTEM)).items}
        kept = {f"{RELEASE}-scheduler-tls", f"{RELEASE}-scheduler-client-tls"}
        assert secrets <= kept, secrets  # docs/install.md: the TLS Secrets stay
        left = sorted(p.name for p in (chart_node.hook / "vgpu").iterdir())
        # documented in docs/install.md: the host keeps libvgpu.so, ld.so.preload, containers/
        # (+ mig/: the ledger of the MIG instances hami made, kept for the pods still running)
        kept = {"libvgpu.so", "ld.so.preload", "containers", "mig", "fake-inventory.yaml"}
        assert set(left) <= kept, left
        assert not list((chart_node.hook / "vgpu" / "containers").iterdir())
    finally:
        await api.close()


async def test_down_leaves_the_host_as_before(chart_node: ChartNode) -> None:
    began = time.monotonic()
    chart_node.node.down()
    assert time.monotonic() - began < 60
    after = host.take_snapshot()
    assert after == chart_node.before, host.difference(chart_node.before, after)
