"""Helpers of the real-node tests (tests/e2e/test_real_node.py and the modules beside it): the
chart installed on a real node (:func:`chart_node_up`), probe pods on the testbox image, waiting
on pods, logs and Events through the real kubelet."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hami.api import keys
from hami.api.annotations import decode_pod_devices
from hami.cluster.binaries import NodeBinaries, find_binaries, find_node_binaries
from hami.cluster.control_plane import ClusterOptions, LocalCluster
from hami.cluster.paths import cache_root
from hami.demo.chart import CHART, helm
from hami.demo.stack import poll
from hami.k8s import objects
from hami.k8s.api import NODES, PODS, Kind, KubeAPIError, Manifest
from hami.k8s.client import LightkubeAPI, load_kubeconfig
from hami.node import host
from hami.node.hamiimage import build_hami_image
from hami.node.images import TESTBOX_IMAGE, kube_scheduler_image, write_archives
from hami.node.node import NodeOptions, RealNode

NAMESPACE = "default"
MIB = 1024 * 1024
EVENTS = Kind("events", "api/v1", True, "Event")
REPO = Path(__file__).resolve().parents[2]
LIBVGPU = REPO / "libvgpu" / "build" / "rel"
T4_PAIR = REPO / "examples" / "inventory" / "t4-pair.yaml"
SYSTEM = "kube-system"
RELEASE = "hami"


@dataclass
class ChartNode:
    """The chart installed on a real node: its cluster, node, hook directory (libvgpu and the
    fake inventory), kubectl and the host as it was before."""

    cluster: LocalCluster
    node: RealNode
    hook: Path
    kubectl: Path
    before: host.HostSnapshot

    def api(self) -> LightkubeAPI:
        return LightkubeAPI(load_kubeconfig(self.cluster.kubeconfig), timeout=10.0)

    def kubectl_run(self, *args: str) -> str:
        return kubectl(self.kubectl, self.cluster.kubeconfig, *args)

    async def log(self, pod: str, text: str) -> str:
        return await wait_log(self.kubectl, self.cluster.kubeconfig, pod, text)

    def helm(self, *args: str) -> str:
        return helm(*args, "--kubeconfig", str(self.cluster.kubeconfig)).stdout


def fake_args(hook: Path) -> list[str]:
    """The device plugin's (and the DRA plugin's) flags for the fake backend in ``hook``."""
    return ["--backend=fake", f"--inventory={hook}/vgpu/fake-inventory.yaml"]


@contextlib.contextmanager
def real_node_up(
    work: Path, cluster_name: str, node_name: str
) -> Iterator[tuple[LocalCluster, RealNode, NodeBinaries]]:
    """A control plane with kube-controller-manager (ServiceAccount tokens, webhook Services
    reached at their pods, ResourceClaims from templates) and a real node ``node_name`` on it;
    the node goes down and the cluster stops on exit."""
    binaries = find_node_binaries()
    cluster = LocalCluster(
        ClusterOptions(
            run_dir=work / "cluster",
            name=cluster_name,
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
                binaries=binaries,
                fake_driver=LIBVGPU / "fake",
                name=node_name,
                apiserver_port=cluster.ports.apiserver,
            )
        ).up()
        yield cluster, node, binaries
    finally:
        if node is not None:
            node.down()
        cluster.stop()


@contextlib.contextmanager
def chart_node_up(
    work: Path,
    cluster_name: str,
    node_name: str,
    label: str,
    values: Callable[[Path], Mapping[str, Any]],
) -> Iterator[ChartNode]:
    """:func:`real_node_up` with the hami and kube-scheduler images imported, the node labelled
    ``label``, and `helm install` of the chart with ``values(hook)`` (the hook directory made
    here, the t4-pair inventory in it)."""
    before = host.take_snapshot()
    with real_node_up(work, cluster_name, node_name) as (cluster, node, binaries):
        control = find_binaries()
        images = work / "images"
        archives = [
            build_hami_image(
                REPO, LIBVGPU / "libvgpu.so", cache_root() / "node-images", images / "hami.tar"
            )
        ]
        scheduler = kube_scheduler_image(
            control.kube_scheduler, str(control.manifest["kubernetes"])
        )
        archives += write_archives([scheduler], images)
        node.import_images(archives)
        hook = work / "hook"
        (hook / "vgpu").mkdir(parents=True)
        shutil.copy2(T4_PAIR, hook / "vgpu" / "fake-inventory.yaml")
        real = ChartNode(cluster, node, hook, binaries.kubectl, before)
        real.kubectl_run("label", "node", node_name, label)
        path = work / "values.yaml"
        path.write_text(yaml.safe_dump(dict(values(hook))))
        real.helm(
            "install", RELEASE, str(CHART), "--namespace", SYSTEM, "-f", str(path),
            "--wait", "--timeout", "5m",
        )  # fmt: skip
        yield real


def kubectl(binary: Path, kubeconfig: Path, *args: str, timeout: float = 60) -> str:
    argv = [str(binary), "--kubeconfig", str(kubeconfig), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


async def allocatable(api: LightkubeAPI, node: str, count: str) -> bool:
    found = await api.get(NODES, node)
    return objects.section(objects.status(found), "allocatable").get("nvidia.com/gpu") == count


async def event_names(api: LightkubeAPI, pod: str, text: str) -> bool:
    """True once an Event about ``pod`` mentions ``text``."""
    events = (await api.list(EVENTS, namespace=NAMESPACE)).items
    return any(
        objects.section(e, "involvedObject").get("name") == pod
        and text in str(e.get("message", ""))
        for e in events
    )


def probe_pod(name: str, command: str, *, gpumem: int | None = 1000) -> dict[str, Any]:
    limits = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": str(gpumem)} if gpumem else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "probe",
                    "image": TESTBOX_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", command],
                    "resources": {"limits": limits},
                }
            ],
        },
    }


async def run_pod(api: LightkubeAPI, body: dict[str, Any], until: str = "Running") -> Manifest:
    name = objects.name(body)
    await api.create(PODS, body, NAMESPACE)
    phases = {"Running": {"Running", "Succeeded"}, "Succeeded": {"Succeeded"}}[until]
    found: dict[str, Manifest] = {}

    async def reached() -> bool:
        found["pod"] = await api.get(PODS, name, NAMESPACE)
        phase = objects.status(found["pod"]).get("phase")
        if phase == "Failed":
            raise AssertionError(f"pod {name} failed: {objects.status(found['pod'])}")
        return phase in phases

    await poll(reached, 90, f"pod {name} to be {until}")
    return found["pod"]


async def delete_pod(api: LightkubeAPI, name: str) -> None:
    try:
        await api.delete(PODS, name, NAMESPACE)
    except KubeAPIError:
        return

    async def gone() -> bool:
        try:
            await api.get(PODS, name, NAMESPACE)
        except KubeAPIError:
            return True
        return False

    await poll(gone, 60, f"pod {name} to be deleted")


def allocated_uuid(pod: Manifest) -> str:
    devices = decode_pod_devices(objects.annotations(pod)[keys.NVIDIA_ALLOCATED])
    return devices[0][0].uuid


async def wait_log(kubectl_binary: Path, kubeconfig: Path, name: str, text: str) -> str:
    logs: dict[str, str] = {}

    async def has() -> bool:
        logs["text"] = kubectl(kubectl_binary, kubeconfig, "logs", name, "-n", NAMESPACE)
        return text in logs["text"]

    await poll(has, 60, f"{text!r} in the log of {name}", interval=0.5)
    return logs["text"]


async def bind_phase(api: LightkubeAPI, name: str, phase: str) -> bool:
    pod = await api.get(PODS, name, NAMESPACE)
    return objects.annotations(pod).get(keys.BIND_PHASE) == phase
