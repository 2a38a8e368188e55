"""A malformed registration annotation on one node: that node is skipped (a log line and a Node
event naming the annotation), every other node still schedules, and fixing the annotation
brings the node back."""

from __future__ import annotations

import functools

import pytest

from hami.api import keys
from hami.demo.report import why_pending
from hami.demo.stack import Stack, create_node, gpu_pod
from hami.k8s import objects
from hami.k8s.api import EVENTS, NAMESPACES, NODES, PODS, Manifest
from hami.k8s.client import LightkubeAPI
from hami.scheduler.events import FILTERING_FAILED, REGISTRATION_INVALID
from tests.e2e.localcluster import wait_until
from tests.e2e.stack import serve, stack_fixture

pytestmark = pytest.mark.e2e

GOOD_NODES = ("reg-ok-0", "reg-ok-1")
BAD_NODE = "reg-bad"
MALFORMED = '[{"id":"GPU-bad-0","count":10,"devmem":'  # truncated JSON
VALID = (
    '[{"id":"GPU-bad-0","count":10,"devmem":23028,"devcore":100,"type":"NVIDIA A10",'
    '"mode":"hami-core","health":true}]'
)


async def _bad_node(api: LightkubeAPI) -> None:
    await create_node(
        api,
        BAD_NODE,
        annotations={keys.NVIDIA_REGISTER: MALFORMED},
        resources={"nvidia.com/gpu": "10"},
    )
    await api.create(NAMESPACES, {"metadata": {"name": "reg"}})


stack = stack_fixture("hami-bad-reg", lambda s: serve(s, GOOD_NODES, prepare=_bad_node))


async def _node_event(api: LightkubeAPI) -> Manifest | None:
    selector = (
        f"involvedObject.kind=Node,involvedObject.name={BAD_NODE},reason={REGISTRATION_INVALID}"
    )
    found = (await api.list(EVENTS, namespace="default", field_selector=selector)).items
    return found[0] if found else None


async def _node_of(api: LightkubeAPI, name: str) -> str | None:
    node = objects.spec(await api.get(PODS, name, "reg")).get("nodeName")
    return str(node) if node else None


@pytest.mark.timeout(180)
async def test_malformed_node_is_skipped_and_the_rest_schedule(
    stack: Stack, api: LightkubeAPI
) -> None:
    event = await wait_until(lambda: _node_event(api), 30, "the RegistrationInvalid event")
    assert event["type"] == "Warning"
    assert keys.NVIDIA_REGISTER in str(event["message"])
    log = stack.log()
    assert f"node {BAD_NODE} skipped: malformed registration" in log
    assert keys.NVIDIA_REGISTER in log

    names = [f"spread-{i}" for i in range(8)]
    for name in names:
        await api.create(PODS, gpu_pod(name, {"gpu": 1, "gpumem": 1000}), "reg")
    for name in names:
        await wait_until(functools.partial(_node_of, api, name), 60, f"{name} to bind")
    placed = {await _node_of(api, name) for name in names}
    assert placed <= set(GOOD_NODES), placed

    pinned = gpu_pod("pinned", {"gpu": 1}, nodeSelector={"kubernetes.io/hostname": BAD_NODE})
    await api.create(PODS, pinned, "reg")

    async def refused() -> bool:
        return (await why_pending(api, "reg", "pinned")).startswith(FILTERING_FAILED)

    await wait_until(refused, 30, "pinned to be refused by the filter")
    assert await _node_of(api, "pinned") is None

    await api.merge_patch(
        NODES, BAD_NODE, {"metadata": {"annotations": {keys.NVIDIA_REGISTER: VALID}}}
    )
    node = await wait_until(lambda: _node_of(api, "pinned"), 60, "pinned to bind once fixed")
    assert node == BAD_NODE
