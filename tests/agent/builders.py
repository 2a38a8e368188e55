"""Builders shared by the agent tests: settings, bound pods, a FakeKube node."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hami.agent.config.settings import NodeConfig, Settings
from hami.agent.discovery.fake import FakeSource, load_inventory
from hami.api import keys
from hami.api.annotations import encode_node_lock, encode_pod_devices
from hami.api.types import ContainerDevice, NodeLock
from tests.agent.fake_kube import FakeKube

REPO = Path(__file__).resolve().parents[2]
INVENTORIES = REPO / "examples" / "inventory"
A100 = INVENTORIES / "a100-nvlink.yaml"
T4 = INVENTORIES / "t4-pair.yaml"
NODE = "gpu-node-1"
A100_UUIDS = [f"GPU-5b8a2f1e-3c47-4d9a-8e21-7f0c9b6a1d0{i}" for i in range(1, 5)]


def settings(tmp: Path, **node: Any) -> Settings:
    """Settings for NODE with hook/lock/socket dirs under ``tmp``."""
    return Settings(
        node_name=NODE,
        node=NodeConfig(**node),
        socket_dir=tmp,
        hook_path=tmp / "hook",
        lock_dir=tmp / "vgpulock",
        cdi_spec_dir=tmp / "cdi",
        register_interval=0.2,
    )


def install_hook(settings: Settings) -> Settings:
    """The HAMi-core files a hami-core answer mounts, as regular files under the hook path."""
    vgpu = settings.hook_path / "vgpu"
    vgpu.mkdir(parents=True, exist_ok=True)
    (vgpu / "libvgpu.so").write_bytes(b"\x7fELF")
    (vgpu / "ld.so.preload").write_text(f"{vgpu}/libvgpu.so\n")
    return settings


def a100_source() -> FakeSource:
    return FakeSource(load_inventory(A100, NODE), A100, NODE)


def bound_pod(
    name: str,
    entries: Sequence[Sequence[ContainerDevice]],
    *,
    containers: Sequence[str] = ("main",),
    init: Sequence[str] = (),
    node: str = NODE,
    namespace: str = "default",
    phase: str = "Pending",
    bind_phase: str = keys.BIND_PHASE_ALLOCATING,
    env: Mapping[str, Mapping[str, str]] | None = None,
    gpus: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """A pod as HAMi's scheduler leaves it after bind (annotations written by our codec)."""
    env = env or {}
    gpus = gpus or {}

    def spec(c: str) -> dict[str, Any]:
        out: dict[str, Any] = {"name": c, "image": "cuda"}
        if c in env:
            out["env"] = [{"name": k, "value": v} for k, v in env[c].items()]
        if gpus.get(c):
            out["resources"] = {"limits": {keys.NVIDIA_GPU: str(gpus[c])}}
        return out

    value = encode_pod_devices(entries)
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "annotations": {
                keys.VGPU_NODE: node,
                keys.BIND_TIME: "1755757240",
                keys.BIND_PHASE: bind_phase,
                keys.NVIDIA_TO_ALLOCATE: value,
                keys.NVIDIA_ALLOCATED: value,
            },
        },
        "spec": {
            "nodeName": node,
            "initContainers": [spec(c) for c in init],
            "containers": [spec(c) for c in containers],
        },
        "status": {"phase": phase},
    }


def locked_node(kube: FakeKube, pod: Mapping[str, Any], node: str = NODE) -> None:
    """The node as bind leaves it: the lock names the pod."""
    from datetime import UTC, datetime

    meta = pod["metadata"]
    lock = NodeLock(
        time=datetime(2026, 8, 21, 6, 20, 40, tzinfo=UTC),
        namespace=meta["namespace"],
        name=meta["name"],
    )
    kube.add_node(node, {keys.NODE_LOCK: encode_node_lock(lock)})
