"""The agent's Kubernetes port against an API server that is not there: every call fails
with a status-0 KubeError (lightkube 1.x raises httpx2 errors), so the pod watch backs off and
resumes instead of ending."""

from __future__ import annotations

import asyncio
import socket

import pytest
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig

from hami.agent.errors import KubeError
from hami.agent.kube import Backoff, LightkubePort, PodSelector, list_and_watch


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port() -> LightkubePort:
    server = f"http://127.0.0.1:{_closed_port()}"
    config = KubeConfig.from_dict(
        {
            "clusters": [{"name": "c", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
    )
    return LightkubePort(AsyncClient(config=config, trust_env=False))


async def test_calls_against_a_closed_port_are_kube_errors() -> None:
    port = _port()
    try:
        for call in (port.get_node("n1"), port.list_pods("n1"), port.get_pod("default", "p")):
            with pytest.raises(KubeError) as raised:
                await call
            assert raised.value.status == 0 and "connection" in str(raised.value)
    finally:
        await port.close()


async def test_the_pod_watch_backs_off_and_keeps_trying() -> None:
    port = _port()
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) >= 3:
            raise asyncio.CancelledError

    watch = list_and_watch(port, PodSelector(node_name="n1"), Backoff(), sleep=sleep)
    try:
        with pytest.raises(asyncio.CancelledError):
            async for _ in watch:
                pass
    finally:
        await port.close()
    assert len(delays) == 3 and delays[0] > 0  # backed off three times, never ended
