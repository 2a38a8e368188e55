"""The sweep of ``<hook>/vgpu/containers``: cache directories of pods gone from the node are
removed; nothing else is (the names are decided by `stale_container_dirs`, see test_allocate)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from pathlib import Path

from hami.agent.plugin import NodeAgent
from tests.agent.builders import a100_source, bound_pod, install_hook
from tests.agent.builders import settings as make_settings
from tests.agent.fake_kube import FakeKube
from tests.builders import container_device as dev

LIVE = "0b6f2a34-8c1d-4e5f-9a7b-1c2d3e4f5a6b"
GONE = "7e3c9d10-2b4a-4c6d-8e9f-0a1b2c3d4e5f"
ELSEWHERE = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"


def agent_with_pods(tmp_path: Path, prepare_host: bool = True) -> tuple[NodeAgent, Path]:
    kube = FakeKube()
    for uid, node in ((LIVE, "gpu-node-1"), (ELSEWHERE, "other-node")):
        pod = bound_pod(f"p-{uid[:4]}", [[dev("GPU-x")]], node=node)
        pod["metadata"]["uid"] = uid
        kube.add_pod(pod)
    settings = replace(install_hook(make_settings(tmp_path)), prepare_host=prepare_host)
    root = settings.hook_path / "vgpu" / "containers"
    root.mkdir(parents=True)
    return NodeAgent(settings, a100_source(), kube), root


async def test_removes_only_dirs_of_pods_gone_from_the_node(tmp_path: Path) -> None:
    agent, root = agent_with_pods(tmp_path)
    for name in (f"{LIVE}_cuda", f"{GONE}_cuda", f"{GONE}_side", f"{ELSEWHERE}_main", "keep"):
        (root / name).mkdir()
    (root / f"{GONE}_cuda" / "0.cache").write_bytes(b"x")
    (root / f"{GONE}_file").write_text("not a directory")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / f"{GONE}_link")
    removed = await agent.sweep()
    # a pod bound to another node is not this node's: its directory here is stale too
    assert removed == [f"{ELSEWHERE}_main", f"{GONE}_cuda", f"{GONE}_side"]
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [f"{LIVE}_cuda", "keep", f"{GONE}_file", f"{GONE}_link"]
    )
    assert outside.is_dir()
    assert await agent.sweep() == []


async def test_no_directories_no_api_call(tmp_path: Path) -> None:
    agent, root = agent_with_pods(tmp_path)
    root.rmdir()
    kube = agent.kube
    assert isinstance(kube, FakeKube)
    kube.calls.clear()
    assert await agent.sweep() == []
    assert kube.calls == []


async def test_simulate_mode_sweeps_nothing(tmp_path: Path) -> None:
    agent, root = agent_with_pods(tmp_path, prepare_host=False)
    (root / f"{GONE}_cuda").mkdir()
    assert await agent.sweep() == []
    assert (root / f"{GONE}_cuda").is_dir()


async def test_stopping_the_agent_sweeps_once_more(tmp_path: Path) -> None:
    """An uninstall stops the plugin before its next periodic sweep: the way out sweeps."""
    import asyncio

    agent, root = agent_with_pods(tmp_path)
    running = asyncio.create_task(agent.run(kubelet=False))
    await asyncio.sleep(0.2)  # the first sweep ran at start
    (root / f"{GONE}_cuda").mkdir()
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    assert not (root / f"{GONE}_cuda").exists()


async def test_a_deleted_pods_dirs_go_at_once(tmp_path: Path) -> None:
    import asyncio

    agent, root = agent_with_pods(tmp_path)
    kube = agent.kube
    assert isinstance(kube, FakeKube)
    watcher = asyncio.create_task(agent._sweep_deleted())
    (root / f"{LIVE}_cuda").mkdir()
    (root / f"{GONE}_cuda").mkdir()
    await asyncio.sleep(0.1)
    kube.delete_pod("default", f"p-{LIVE[:4]}")
    for _ in range(50):
        if not (root / f"{LIVE}_cuda").exists():
            break
        await asyncio.sleep(0.02)
    watcher.cancel()
    assert not (root / f"{LIVE}_cuda").exists()
    assert (root / f"{GONE}_cuda").exists()  # no event for it: left to the periodic sweep
