"""The device plugin's port against an API server that is not there: every call fails with a
status-0 `KubeAPIError` (`Unavailable`), which the allocator takes as "try again", never as a
verdict on the pod (the watch's back-off and resume: tests/k8s/test_reconnect.py)."""

from __future__ import annotations

import pytest

from hami.k8s.api import Unavailable
from hami.k8s.client import LightkubeAPI
from hami.k8s.port import KubeAPIPort
from tests.k8s.apiserver import free_port, kubeconfig


async def test_calls_against_a_closed_port_are_status_0() -> None:
    port = KubeAPIPort(LightkubeAPI(kubeconfig(free_port()), timeout=2.0))
    try:
        for call in (port.get_node("n1"), port.list_pods("n1"), port.get_pod("default", "p")):
            with pytest.raises(Unavailable) as raised:
                await call
            assert raised.value.status == 0
    finally:
        await port.close()
