"""Helpers of the real-node tests (tests/e2e/test_real_node.py): probe pods on the testbox
image, waiting on pods, logs and Events through the real kubelet."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from hami.api import keys
from hami.api.annotations import decode_pod_devices
from hami.demo.stack import poll
from hami.k8s import objects
from hami.k8s.api import NODES, PODS, Kind, KubeAPIError, Manifest
from hami.k8s.client import LightkubeAPI
from hami.node.images import TESTBOX_IMAGE

NAMESPACE = "default"
MIB = 1024 * 1024
EVENTS = Kind("events", "api/v1", True, "Event")


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
