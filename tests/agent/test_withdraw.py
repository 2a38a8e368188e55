"""A device-plugin restart keeps the scheduler off the node (issue 24, docs/device-plugin.md
"Restarts"): on SIGTERM the plugin writes ``Deleted_<time>`` into the node's handshake before its
kubelet socket closes and serves the pods already bound here; the next plugin answers the
handshake only once kubelet has called ListAndWatch (holds its devices)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest_asyncio

from hami.agent.annotator import NodeAnnotator
from hami.agent.discovery.health import HealthTable
from hami.agent.kubelet.wire import pb
from hami.agent.plugin import NodeAgent
from hami.api import keys
from hami.api.annotations import decode_handshake
from hami.scheduler.registration import HandshakeSpec, assess
from tests.agent.builders import A100_UUIDS, NODE, a100_source, bound_pod, install_hook, locked_node
from tests.agent.builders import settings as make_settings
from tests.agent.fake_kube import FakeKube
from tests.agent.fake_kubelet import FakeKubelet, plugin_stub
from tests.builders import container_device as dev

SPEC = HandshakeSpec("NVIDIA", keys.NVIDIA_HANDSHAKE, keys.NVIDIA_GPU)
NOW = datetime(2026, 12, 7, 5, 30, 0, tzinfo=UTC)


def annotator(tmp_path: Path, kube: FakeKube, ready: asyncio.Event | None) -> NodeAnnotator:
    source = a100_source()
    health = HealthTable({g.uuid: True for g in source.gpus()})
    return NodeAnnotator(
        kube,
        make_settings(tmp_path),
        source.gpus,
        source.pair_scores,
        health,
        clock=lambda: NOW,
        ready=ready,
    )


async def test_the_handshake_is_answered_only_once_kubelet_holds_the_devices(
    tmp_path: Path,
) -> None:
    kube = FakeKube()
    kube.add_node(NODE, {keys.NVIDIA_HANDSHAKE: "Deleted_2026-12-07 05:29:59"})
    ready = asyncio.Event()
    writer = annotator(tmp_path, kube, ready)
    assert await writer.sync() is True  # the registration, but no answer yet
    notes = kube.node_annotations(NODE)
    assert keys.NVIDIA_REGISTER in notes
    assert notes[keys.NVIDIA_HANDSHAKE] == "Deleted_2026-12-07 05:29:59"
    assert not assess(SPEC, notes, 8, 8, False, NOW, 60.0).healthy  # still kept off
    ready.set()
    assert await writer.sync() is True
    notes = kube.node_annotations(NODE)
    assert notes[keys.NVIDIA_HANDSHAKE].startswith(keys.HANDSHAKE_REPORTED)
    assert assess(SPEC, notes, 8, 8, False, NOW, 60.0).healthy


async def test_withdraw_writes_the_notice_and_nothing_after_it(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.add_node(NODE)
    writer = annotator(tmp_path, kube, None)
    await writer.sync()
    await writer.withdraw()
    value = kube.node_annotations(NODE)[keys.NVIDIA_HANDSHAKE]
    assert decode_handshake(value).state == keys.HANDSHAKE_DELETED
    assert decode_handshake(value).time == NOW
    kube.add_node(NODE, {keys.NVIDIA_HANDSHAKE: "Requesting_2026-12-07 05:30:00"})
    assert await writer.sync() is False  # a stopping plugin answers nothing
    await asyncio.wait_for(writer.run(), 1)  # and its loop ends
    assert kube.node_annotations(NODE)[keys.NVIDIA_HANDSHAKE].startswith("Requesting_")


class Running:
    def __init__(self, agent: NodeAgent, kube: FakeKube, kubelet: FakeKubelet) -> None:
        self.agent, self.kube, self.kubelet = agent, kube, kubelet


@pytest_asyncio.fixture(loop_scope="function")
async def running(sockdir: Path) -> AsyncIterator[Running]:
    kube = FakeKube()
    kube.add_node(NODE)
    settings = install_hook(make_settings(sockdir, split_count=2))
    agent = NodeAgent(settings, a100_source(), kube)
    kubelet = FakeKubelet(sockdir)
    await kubelet.start()
    task = asyncio.create_task(agent.run())
    try:
        yield Running(agent, kube, kubelet)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await kubelet.stop()


async def until(check: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_a_started_plugin_answers_after_list_and_watch(running: Running) -> None:
    await asyncio.wait_for(running.kubelet.requests.get(), 5)
    await until(lambda: keys.NVIDIA_REGISTER in running.kube.node_annotations(NODE))
    await asyncio.sleep(0.3)
    assert keys.NVIDIA_HANDSHAKE not in running.kube.node_annotations(NODE)
    channel, stub = plugin_stub(running.kubelet.directory)
    async with channel:
        stream = stub.ListAndWatch(pb.Empty())
        await asyncio.wait_for(stream.read(), 5)
        await until(lambda: keys.NVIDIA_HANDSHAKE in running.kube.node_annotations(NODE))
        stream.cancel()
    value = running.kube.node_annotations(NODE)[keys.NVIDIA_HANDSHAKE]
    assert value.startswith(keys.HANDSHAKE_REPORTED)


async def test_withdraw_serves_a_bound_pod_before_the_socket_closes(running: Running) -> None:
    """A pod bound just before the notice (the scheduler had not seen it yet) gets its
    Allocate from the stopping plugin: the drain waits for it."""
    await asyncio.wait_for(running.kubelet.requests.get(), 5)
    pod = bound_pod("late", [[dev(A100_UUIDS[1], 3000, 30)]], containers=["cuda"])
    running.kube.add_pod(pod)
    locked_node(running.kube, pod)
    withdrawing = asyncio.create_task(running.agent.withdraw(settle=0.1, drain=5.0, poll=0.05))
    await asyncio.sleep(0.4)
    assert not withdrawing.done()  # the pod still waits for its Allocate
    notes = running.kube.node_annotations(NODE)
    assert decode_handshake(notes[keys.NVIDIA_HANDSHAKE]).state == keys.HANDSHAKE_DELETED
    channel, stub = plugin_stub(running.kubelet.directory)
    async with channel:
        request = pb.AllocateRequest(
            container_requests=[pb.ContainerAllocateRequest(devices_ids=[f"{A100_UUIDS[1]}-1"])]
        )
        await stub.Allocate(request, timeout=5)
    assert await asyncio.wait_for(withdrawing, 5) == []
    assert keys.NODE_LOCK not in running.kube.node_annotations(NODE)


async def test_withdraw_gives_up_after_the_drain_bound(running: Running) -> None:
    pod = bound_pod("never", [[dev(A100_UUIDS[0], 3000, 30)]], containers=["cuda"])
    running.kube.add_pod(pod)
    locked_node(running.kube, pod)
    left = await asyncio.wait_for(running.agent.withdraw(settle=0.0, drain=0.3, poll=0.05), 3)
    assert left == ["default/never"]


async def test_withdraw_without_pods_takes_the_settle_time_only(running: Running) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await running.agent.withdraw(settle=0.2, drain=5.0, poll=0.05) == []
    assert 0.2 <= loop.time() - began < 1.0
