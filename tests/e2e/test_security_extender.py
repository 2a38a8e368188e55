"""The extender's side of issue 17 against the real control plane (docs/security.md): the real
kube-scheduler calls /filter and /bind over mTLS with its client certificate and places pods;
anyone else is refused — no certificate (403), a certificate of another CA (the cluster
admin's: handshake refused); even the certificate's holder cannot bind another scheduler's pod
or move a pod off the node its filter chose; oversized and slow requests are refused while
/healthz keeps answering."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from hami.api import keys
from hami.api.extender import filter_args_json
from hami.demo.stack import (
    Stack,
    extender_access,
    gpu_pod,
)
from hami.k8s import objects
from hami.k8s.api import NAMESPACES, PODS, Manifest
from hami.k8s.client import LightkubeAPI
from tests.e2e.localcluster import wait_until
from tests.e2e.stack import serve, stack_fixture
from tests.scheduler.test_security import assert_fast, big_body, healthz_times, slow_header

pytestmark = [pytest.mark.e2e, pytest.mark.security]

NODES = ("sec-0", "sec-1")
NS = "tenant-a"


async def _namespaces(api: LightkubeAPI) -> None:
    for ns in (NS, "tenant-b"):
        await api.create(NAMESPACES, {"metadata": {"name": ns}})


stack = stack_fixture("hami-security", lambda s: serve(s, NODES, prepare=_namespaces))


def context(stack: Stack, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    tls = ssl.create_default_context(cafile=str(stack.ca))
    if client is not None:
        tls.load_cert_chain(str(client[0]), str(client[1]))
    return tls


def extender(stack: Stack, client: tuple[Path, Path] | None = None) -> httpx.AsyncClient:
    access = extender_access(stack.cluster.run_dir)
    return httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{access.port}",
        verify=context(stack, client),
        trust_env=False,
        timeout=30,
    )


def kube_schedulers_certificate(stack: Stack) -> tuple[Path, Path]:
    access = extender_access(stack.cluster.run_dir)
    return access.client.cert, access.client.key


def bind_body(pod: Manifest, node: str) -> dict[str, Any]:
    return {
        "PodName": objects.name(pod),
        "PodNamespace": objects.namespace(pod),
        "PodUID": objects.uid(pod),
        "Node": node,
    }


async def _node_of(api: LightkubeAPI, name: str, ns: str = NS) -> str | None:
    node = objects.spec(await api.get(PODS, name, ns)).get("nodeName")
    return str(node) if node else None


async def test_kube_scheduler_places_pods_over_mtls(stack: Stack, api: LightkubeAPI) -> None:
    await api.create(PODS, gpu_pod("legit", {"gpu": 1, "gpumem": 3000, "gpucores": 30}), NS)
    node = await wait_until(lambda: _node_of(api, "legit"), 60, "the pod to be bound")
    pod = await api.get(PODS, "legit", NS)
    assert objects.annotations(pod)[keys.VGPU_NODE] == node
    assert "client certificates required" in stack.log()


async def test_anonymous_filter_and_bind_refused(stack: Stack, api: LightkubeAPI) -> None:
    selector = {"nodeSelector": {"no-such-label": "x"}}  # kube-scheduler never places it
    pod = await api.create(PODS, gpu_pod("anon", {"gpu": 1, "gpumem": 1000}, **selector), NS)
    async with extender(stack) as anonymous:
        for path, body in (
            ("/filter", filter_args_json(pod, list(NODES))),
            ("/bind", bind_body(pod, NODES[0])),
        ):
            reply = await anonymous.post(path, json=body)
            assert reply.status_code == 403, reply.text
            assert "client certificate required" in reply.json()["error"]
    # a client certificate of the cluster CA (the admin's) is not one the extender trusts
    pki = stack.cluster.run_dir / "pki"
    async with extender(stack, (pki / "admin.crt", pki / "admin.key")) as admin:
        with pytest.raises(httpx.HTTPError):
            await admin.post("/bind", json=bind_body(pod, NODES[0]))
    # and /filter, /bind are not served on the webhook's listener
    async with httpx.AsyncClient(verify=context(stack), trust_env=False) as client:
        reply = await client.post(f"https://127.0.0.1:{stack.port}/bind", json={})
        assert reply.status_code == 404
    pod = await api.get(PODS, "anon", NS)
    assert not objects.spec(pod).get("nodeName")
    assert keys.VGPU_NODE not in objects.annotations(pod)


async def test_foreign_pods_and_other_nodes_refused(stack: Stack, api: LightkubeAPI) -> None:
    # another tenant's Pending pod, another scheduler's, with a nodeSelector nothing meets
    theirs = await api.create(
        PODS,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "theirs"},
            "spec": {
                "schedulerName": "other-scheduler",
                "nodeSelector": {"no-such-label": "x"},
                "containers": [{"name": "c", "image": "example.invalid/app"}],
            },
        },
        "tenant-b",
    )
    ours = await api.create(
        PODS, gpu_pod("pinned", {"gpu": 1, "gpumem": 1000}, nodeSelector={"no": "x"}), NS
    )
    async with extender(stack, kube_schedulers_certificate(stack)) as client:
        reply = (await client.post("/bind", json=bind_body(theirs, NODES[0]))).json()
        assert "scheduled by 'other-scheduler', not 'hami-scheduler'" in reply["Error"]
        body = filter_args_json(ours, [NODES[0]])
        decided = (await client.post("/filter", json=body)).json()
        assert decided["NodeNames"] == [NODES[0]], decided
        moved = (await client.post("/bind", json=bind_body(ours, NODES[1]))).json()
        assert f"placed on node {NODES[0]} by the filter, not {NODES[1]}" in moved["Error"]
        ghost = {**bind_body(ours, NODES[0]), "PodName": "ghost", "PodUID": "made-up"}
        assert "not found" in (await client.post("/bind", json=ghost)).json()["Error"]
    assert await _node_of(api, "theirs", "tenant-b") is None
    assert await _node_of(api, "pinned") is None
    assert "bind refused: pod tenant-b/theirs is scheduled by 'other-scheduler'" in stack.log()


async def test_oversized_and_slow_requests_refused_healthz_answers(stack: Stack) -> None:
    tls = context(stack)
    (server,) = [c for c in stack.components if c.name == "hami-scheduler"]
    assert server.process is not None
    probe = asyncio.create_task(healthz_times(stack.port, stack.ca, 4.0, server.process.pid))
    slow = []
    for _ in range(10):  # 100 slow-header connections over 0.5 s
        slow += [asyncio.create_task(slow_header(stack.port, tls)) for _ in range(10)]
        await asyncio.sleep(0.05)
    url = f"https://127.0.0.1:{stack.port}/webhook"
    bodies = [
        asyncio.create_task(big_body(url, tls, 100 << 20, declared)) for declared in (True, False)
    ]
    probes = await probe
    held = await asyncio.gather(*slow)
    statuses = await asyncio.gather(*bodies)
    assert_fast(probes, "under attack (real process)")
    assert all(h < 13 for h in held), held  # the 10 s head deadline
    assert all(code in (413, 0) for code in statuses), statuses
    assert "refused a request with 413" in stack.log()
