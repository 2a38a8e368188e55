"""The local control plane end to end: default scheduling of a GPU pod onto kwok nodes, clean
shutdown with no leftover process, and a start failure that names the component."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from lightkube import AsyncClient
from lightkube.models.core_v1 import Container, PodSpec, ResourceRequirements
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Node, Pod

from hami.cluster import ClusterOptions, ComponentStartError, LocalCluster, find_binaries
from hami.cluster.process import group_members, pid_alive
from tests.e2e.localcluster import GPU_RESOURCE, create_gpu_node, wait_until

pytestmark = pytest.mark.e2e


def _gpu_pod(name: str, gpus: int) -> Pod:
    limits = {GPU_RESOURCE: str(gpus)}
    container = Container(
        name="main",
        image="example.invalid/cuda:latest",
        resources=ResourceRequirements(limits=limits),
    )
    return Pod(metadata=ObjectMeta(name=name), spec=PodSpec(containers=[container]))


async def _pod_running(kube: AsyncClient, name: str, namespace: str) -> Pod | None:
    pod = await kube.get(Pod, name, namespace=namespace)
    running = pod.status is not None and pod.status.phase == "Running"
    return pod if running and pod.spec and pod.spec.nodeName else None


async def _pod_gone(kube: AsyncClient, name: str, namespace: str) -> bool:
    pods = [p async for p in kube.list(Pod, namespace=namespace)]
    return all(p.metadata is None or p.metadata.name != name for p in pods)


@pytest.mark.timeout(120)
async def test_gpu_pod_is_bound_by_default_scheduler_and_run_by_kwok(
    kube: AsyncClient, namespace: str
) -> None:
    suffix = uuid.uuid4().hex[:6]
    nodes = [f"gpu-{suffix}-a", f"gpu-{suffix}-b"]
    for name in nodes:
        node = await create_gpu_node(kube, name, gpus=4, annotations={"hami.io/test": "yes"})
        assert node.status is not None and node.status.allocatable is not None
        assert node.status.allocatable[GPU_RESOURCE] == "4"
        assert node.metadata is not None and node.metadata.annotations is not None
        assert node.metadata.annotations["hami.io/test"] == "yes"
    try:
        # lightkube's create overloads omit namespace= (the call accepts it)
        await kube.create(_gpu_pod("cuda", 1), namespace=namespace)  # type: ignore[call-overload]
        pod = await wait_until(
            lambda: _pod_running(kube, "cuda", namespace), 60.0, "pod cuda to run"
        )
        assert pod.spec is not None and pod.spec.nodeName in nodes
        await kube.delete(Pod, "cuda", namespace=namespace)
        await wait_until(lambda: _pod_gone(kube, "cuda", namespace), 30.0, "pod cuda to go")
    finally:
        for name in nodes:
            await kube.delete(Node, name)


def _assert_all_gone(pids: dict[str, int]) -> None:
    alive = {name: pid for name, pid in pids.items() if pid_alive(pid) or group_members(pid)}
    assert not alive, f"processes left after stop: {alive}"


@pytest.mark.timeout(120)
def test_stop_leaves_no_process(tmp_path: Path) -> None:
    cluster = LocalCluster(ClusterOptions(run_dir=tmp_path / "run", name="hami-stop-test"))
    with cluster:
        pids = cluster.pids
        assert set(pids) == {"etcd", "kube-apiserver", "kube-scheduler", "kwok"}
        assert all(pid_alive(pid) for pid in pids.values())
        assert cluster.state_path.is_file()
    _assert_all_gone(pids)
    assert not cluster.state_path.exists()


@pytest.mark.timeout(120)
def test_start_failure_names_component_quotes_its_log_and_stops_the_rest(
    tmp_path: Path,
) -> None:
    options = ClusterOptions(
        run_dir=tmp_path / "run",
        extra_args={"kube-scheduler": ["--no-such-flag=1"]},
        ready_timeout=60.0,
    )
    cluster = LocalCluster(options)
    with pytest.raises(ComponentStartError) as caught:
        cluster.start()
    error = caught.value
    assert error.component == "kube-scheduler"
    assert "kube-scheduler failed to start: exited with code" in str(error)
    assert "unknown flag: --no-such-flag" in error.log_tail
    assert "unknown flag: --no-such-flag" in str(error)
    assert error.log_path == cluster.run_dir / "logs" / "kube-scheduler.log"
    assert error.log_path.is_file(), "the run directory is kept on failure"
    started = cluster.pids
    assert {"etcd", "kube-apiserver"} <= set(started)
    _assert_all_gone(started)


def _hami(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from hami.cli import main; main()", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=100)


@pytest.mark.timeout(180)
def test_cli_up_status_env_down(tmp_path: Path) -> None:
    env = {**os.environ, "HAMI_CACHE": str(tmp_path / "cache")}
    env["HAMI_K8S_BIN_DIR"] = str(find_binaries().directory)
    up = _hami("cluster", "up", "--name", "cli", env=env)
    assert up.returncode == 0, up.stderr
    state_path = tmp_path / "cache" / "run" / "cli" / "state.json"
    pids = {c["name"]: c["pid"] for c in json.loads(state_path.read_text())["components"]}
    try:
        assert "export KUBECONFIG=" in up.stdout
        status = _hami("cluster", "status", "--name", "cli", env=env)
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("running") == 4
        shown = _hami("cluster", "env", "--name", "cli", env=env)
        kubeconfig = shown.stdout.strip().removeprefix("export KUBECONFIG=")
        assert Path(kubeconfig).is_file()
    finally:
        down = _hami("cluster", "down", "--name", "cli", env=env)
    assert down.returncode == 0, down.stderr
    assert "kube-apiserver" in down.stdout
    _assert_all_gone(pids)
    assert not state_path.parent.exists()
