"""`hami sim` scenarios replayed through the real path: the same nodes (registered exactly as in
the scenario's CLUSTER.yaml), the same placed pods, the same pods created one at a time through
the webhook, kube-scheduler, `/filter` and `/bind` — the same decisions, node and devices.

The test plays the device plugin's part after each bind (bind-phase success, node lock
released), as the simulated plugin would; the registrations are the scenario's own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from hami.api import keys
from hami.config import load_config
from hami.core.decide import Decision
from hami.demo.report import why_pending
from hami.demo.stack import Stack, create_node
from hami.k8s import objects
from hami.k8s.api import NAMESPACES, NODES, PODS, Conflict
from hami.k8s.client import LightkubeAPI
from hami.scheduler.events import FILTERING_FAILED
from hami.sim.load import load_cluster, load_pods
from hami.sim.run import simulate
from hami.vendors import registry
from tests.e2e.stack import stack_fixture, webhook

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIG = EXAMPLES / "config.yaml"
SCENARIOS = {
    "examples": (EXAMPLES / "cluster.yaml", EXAMPLES / "pods.yaml"),
    "policies": (EXAMPLES / "policies" / "cluster.yaml", EXAMPLES / "policies" / "pods.yaml"),
}
# The scheduler's own keys that ride on every decision but differ by design between runs.
VOLATILE = {keys.VGPU_TIME}


def _up(stack: Stack) -> None:
    stack.scheduler(config=CONFIG)
    webhook(stack)


stack = stack_fixture("hami-replay", _up)


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _expected(cluster: Path, pods: Path) -> list[Decision]:
    config = load_config(CONFIG)
    vendors = registry.build(config)
    requests = load_pods(pods, vendors, config)
    return list(simulate(load_cluster(cluster, vendors), requests, vendors).decisions)


async def _namespace(api: LightkubeAPI, name: str) -> None:
    with contextlib.suppress(Conflict):
        await api.create(NAMESPACES, {"metadata": {"name": name}})


async def _build(api: LightkubeAPI, scenario: str, cluster: Path) -> None:
    """The scenario's nodes (their annotations verbatim) and its already placed pods."""
    for doc in _documents(cluster):
        meta = doc["metadata"]
        if doc["kind"] == "Node":
            await create_node(
                api,
                meta["name"],
                labels={"scenario": scenario},
                annotations=meta.get("annotations") or {},
                resources={"nvidia.com/gpu": "40"},  # the plugin's heartbeat for the handshake
            )
            continue
        await _namespace(api, meta.get("namespace", "default"))
        # HAMi tracks a placed pod only by its hami.io/vgpu-node annotation (wire-format.md
        # §3.15), which every pod HAMi placed carries; `hami sim` also accepts spec.nodeName.
        node = doc["spec"]["nodeName"]
        annotations = {keys.VGPU_NODE: node, **(meta.get("annotations") or {})}
        labels = {**(meta.get("labels") or {}), keys.WEBHOOK_LABEL: "ignore"}
        placed = {**doc, "metadata": {**meta, "labels": labels, "annotations": annotations}}
        await api.create(PODS, placed, meta.get("namespace", "default"))


async def _wait_assessed(api: LightkubeAPI, cluster: Path) -> None:
    """Until the scheduler has seen every node: it writes its handshake on each."""
    names = {d["metadata"]["name"] for d in _documents(cluster) if d["kind"] == "Node"}
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        nodes = (await api.list(NODES, label_selector="scenario")).items
        seen = {objects.name(n) for n in nodes if keys.NVIDIA_HANDSHAKE in objects.annotations(n)}
        if names <= seen:
            return
        assert asyncio.get_running_loop().time() < deadline, f"handshakes: {sorted(names - seen)}"
        await asyncio.sleep(0.2)


async def _outcome(api: LightkubeAPI, namespace: str, name: str) -> dict[str, Any] | None:
    pod = await api.get(PODS, name, namespace)
    node = objects.spec(pod).get("nodeName")
    if node:
        annotations = objects.annotations(pod)
        return {"node": node, "annotations": annotations}
    reason = await why_pending(api, namespace, name)
    return {"node": None, "reason": reason} if reason.startswith(FILTERING_FAILED) else None


async def _allocate(api: LightkubeAPI, namespace: str, name: str, node: str) -> None:
    """What the device plugin does after Allocate: phase success, node lock released."""
    await api.merge_patch(
        PODS, name, {"metadata": {"annotations": {keys.BIND_PHASE: "success"}}}, namespace
    )
    await api.merge_patch(NODES, node, {"metadata": {"annotations": {keys.NODE_LOCK: None}}})


async def _replay(api: LightkubeAPI, scenario: str, pods: Path) -> list[dict[str, Any]]:
    outcomes = []
    for doc in _documents(pods):
        meta = doc["metadata"]
        namespace, name = meta.get("namespace", "default"), meta["name"]
        await _namespace(api, namespace)
        spec = {**doc["spec"], "nodeSelector": {"scenario": scenario}}
        await api.create(PODS, {**doc, "spec": spec}, namespace)
        outcome = await _wait(api, namespace, name)
        if outcome["node"] is not None:
            await _allocate(api, namespace, name, outcome["node"])
        else:  # the simulation drops a pod that does not fit; so does the replay
            await api.delete(PODS, name, namespace, grace_seconds=0)
        outcomes.append({"pod": f"{namespace}/{name}", **outcome})
    return outcomes


async def _wait(api: LightkubeAPI, namespace: str, name: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        outcome = await _outcome(api, namespace, name)
        if outcome is not None:
            return outcome
        assert asyncio.get_running_loop().time() < deadline, f"{namespace}/{name}: no decision"
        await asyncio.sleep(0.2)


def _compare(decision: Decision, outcome: Mapping[str, Any]) -> None:
    where = f"{outcome['pod']}: simulated {decision.node}, live {outcome['node']}"
    assert outcome["node"] == decision.node, where
    if decision.node is None:
        return
    live = outcome["annotations"]
    for key, value in decision.annotations_at(datetime.now(UTC)).items():
        if key not in VOLATILE:
            assert live.get(key) == value, f"{where}: {key}: {live.get(key)!r} != {value!r}"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_live_path_makes_the_simulated_decisions(api: LightkubeAPI, scenario: str) -> None:
    cluster, pods = SCENARIOS[scenario]
    expected = _expected(cluster, pods)
    await _build(api, scenario, cluster)
    await _wait_assessed(api, cluster)
    outcomes = await _replay(api, scenario, pods)
    assert len(outcomes) == len(expected)
    for decision, outcome in zip(expected, outcomes, strict=True):
        _compare(decision, outcome)
    assert any(d.placed for d in expected)
