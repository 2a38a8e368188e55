"""Every vendor of `examples/vendors/` on the local control plane: the nodes of its cluster.yaml
played by `hami device-plugin --simulate --node-manifests` (registration, capacity, handshake,
post-bind bookkeeping), the scheduler run with its config.yaml, kube-scheduler with every
vendor's resources managed (the chart's `devices.*.enabled`), and each pod of its pods.yaml
created through the webhook, one at a time: it binds to the node `hami sim` picks for it, with
the annotations `hami sim` writes (the vendor's allocated devices among them), the simulated
plugin marks it `success` and the node's vendor locks are released.

The test iterates over whatever the example files hold, so a vendor added there is covered.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hami.agent.simulation.vendornodes import lock_keys
from hami.api import keys
from hami.api.keys import FILTERING_FAILED
from hami.config import load_config
from hami.core.decide import Decision
from hami.core.vendor import Vendor
from hami.demo import chart
from hami.demo.report import why_pending
from hami.demo.stack import Stack, wait_manifest_nodes, with_images
from hami.k8s import objects
from hami.k8s.api import NAMESPACES, NODES, PODS, Conflict
from hami.k8s.client import LightkubeAPI
from hami.k8s.manifests import ManifestNode, load_manifests
from hami.sim.load import load_cluster, load_pods
from hami.sim.run import simulate
from hami.vendors import registry
from tests.e2e.stack import stack_fixture, webhook, with_api

pytestmark = pytest.mark.e2e

VENDORS = Path(__file__).resolve().parents[2] / "examples" / "vendors"
CLUSTER, POD_FILE, CONFIG = (VENDORS / f for f in ("cluster.yaml", "pods.yaml", "config.yaml"))


def _vendors() -> dict[str, Vendor]:
    return registry.build(load_config(CONFIG))


def _manifest_nodes() -> list[ManifestNode]:
    return load_manifests([CLUSTER], _vendors())


def _up(stack: Stack) -> None:
    stack.scheduler(config=CONFIG)
    stack.plugin({}, ["--register-interval", "2"], manifests=[CLUSTER], config=CONFIG)
    webhook(stack)
    try:
        with_api(stack, lambda api: wait_manifest_nodes(api, _manifest_nodes()))
    except Exception as exc:
        raise AssertionError(f"{exc}\ndevice plugin log:\n{stack.log('device-plugin')}") from exc


stack = stack_fixture("hami-vendors", _up, chart_values=chart.vendor_values())


def _pods() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(POD_FILE.read_text()) if d is not None]


def _expected() -> list[Decision]:
    config = load_config(CONFIG)
    vendors = registry.build(config)
    requests = load_pods(POD_FILE, vendors, config)
    return list(simulate(load_cluster(CLUSTER, vendors), requests, vendors).decisions)


def _limits(pod: dict[str, Any]) -> set[str]:
    spec = pod.get("spec") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    return {str(k) for c in containers for k in ((c.get("resources") or {}).get("limits") or {})}


async def _outcome(api: LightkubeAPI, namespace: str, name: str) -> dict[str, Any] | None:
    """The pod once the simulated plugin finished it (or the filter refused it), else None."""
    pod = await api.get(PODS, name, namespace)
    annotations = objects.annotations(pod)
    node = objects.spec(pod).get("nodeName")
    if node:
        done = annotations.get(keys.BIND_PHASE) == keys.BIND_PHASE_SUCCESS
        return {"node": node, "annotations": annotations} if done else None
    reason = await why_pending(api, namespace, name)
    return {"node": None, "reason": reason} if reason.startswith(FILTERING_FAILED) else None


async def _wait(api: LightkubeAPI, namespace: str, name: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        outcome = await _outcome(api, namespace, name)
        if outcome is not None:
            return outcome
        if asyncio.get_running_loop().time() >= deadline:
            pod = await api.get(PODS, name, namespace)
            raise AssertionError(
                f"{namespace}/{name}: not bound and allocated within 60 s: node "
                f"{objects.spec(pod).get('nodeName')!r}, annotations {objects.annotations(pod)}"
            )
        await asyncio.sleep(0.2)


async def _check(api: LightkubeAPI, decision: Decision, vendors: dict[str, Vendor]) -> None:
    namespace, name = decision.pod.split("/", 1)
    outcome = await _wait(api, namespace, name)
    where = f"{decision.pod}: simulated {decision.node}, live {outcome['node']}"
    assert outcome["node"] == decision.node, f"{where} ({outcome.get('reason', '')})"
    if decision.node is None or decision.fit is None:
        return
    live = outcome["annotations"]
    used = sorted(decision.fit.picks)
    for key in used:
        assert vendors[key].allocated_devices(live), f"{where}: no {key} allocation in {live}"
    for key, value in decision.annotations.items():
        assert live.get(key) == value, f"{where}: {key}: {live.get(key)!r} != {value!r}"
    # the plugin releases the lock right after it marks the pod allocated: give it a moment
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        node = objects.annotations(await api.get(NODES, decision.node))
        held = [k for k in lock_keys(vendors, used) if k in node]
        if not held or asyncio.get_running_loop().time() >= deadline:
            break
        await asyncio.sleep(0.2)
    assert not held, f"{where}: node lock(s) {held} not released within 10 s of the bind"


@pytest.mark.timeout(300)
async def test_every_vendor_pod_binds_where_hami_sim_places_it(
    api: LightkubeAPI, stack: Stack
) -> None:
    vendors = _vendors()
    pods, expected = _pods(), _expected()
    assert len(pods) == len(expected) and any(d.placed for d in expected)
    managed = chart.managed_resources(chart.kube_scheduler_config(chart.vendor_values()))
    unmanaged = sorted(set().union(*map(_limits, pods)) - managed)
    assert not unmanaged, f"the chart's devices.*.customresources lack {unmanaged}"
    for doc, decision in zip(pods, expected, strict=True):
        namespace = objects.namespace(doc) or "default"
        with contextlib.suppress(Conflict):
            await api.create(NAMESPACES, {"metadata": {"name": namespace}})
        await api.create(PODS, with_images(doc), namespace)
        try:
            await _check(api, decision, vendors)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\nplugin log:\n{stack.log('device-plugin')[-3000:]}"
            ) from exc


def _node_names() -> set[str]:
    return {n.name for n in load_cluster(CLUSTER, _vendors()).nodes}


def _oversized(doc: dict[str, Any], counts: set[str], namespace: str) -> dict[str, Any]:
    """The pod asking for 64 whole devices of its vendor (its count resource only; 64 of what
    it asks for when it names no count, as a NeuronCore pod)."""
    out = copy.deepcopy(doc)
    out["metadata"] = {"name": f"{doc['metadata']['name']}-big", "namespace": namespace}
    for container in out["spec"].get("containers", []):
        limits = container.get("resources", {}).get("limits", {})
        named = [k for k in limits if k in counts] or list(limits)
        container["resources"] = {"limits": dict.fromkeys(named, 64)}
    return out


async def _refusal(api: LightkubeAPI, namespace: str, doc: dict[str, Any]) -> str:
    """The scheduler's word on a pod it does not place: our extender's FilteringFailed event,
    or kube-scheduler's Unschedulable condition (a count above every node's capacity)."""
    name = doc["metadata"]["name"]
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        pod = await api.get(PODS, name, namespace)
        assert not objects.spec(pod).get("nodeName"), f"{name} bound"
        reason = await why_pending(api, namespace, name, pod)
        if reason != "pending":
            return reason
        assert asyncio.get_running_loop().time() < deadline, f"{name}: no verdict in 60 s"
        await asyncio.sleep(0.2)


def _mixed(pods: list[dict[str, Any]], namespace: str) -> dict[str, Any]:
    """One NVIDIA container and one Ascend container: no node of the cluster has both."""
    cuda, npu = (copy.deepcopy(p["spec"]["containers"][0]) for p in pods[:2])
    cuda["name"], npu["name"] = "cuda", "npu"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nvidia-and-ascend", "namespace": namespace},
        "spec": {"containers": [cuda, npu]},
    }


_EXPLAIN_NS = "explain"
_EVENT_GROUP = re.compile(r"(\d+) nodes (\w[\w ]*?)\(")


async def _explained(stack: Stack, namespace: str, name: str) -> Any:
    """`hami explain NAMESPACE/NAME` against the live cluster, without --config."""
    from hami import explain_cli

    snapshot, vendors, manifest = await explain_cli._live(
        stack.cluster.kubeconfig, None, (namespace, name)
    )
    return explain_cli._explain(snapshot, namespace, name, vendors, manifest), snapshot


async def _refused(api: LightkubeAPI, doc: dict[str, Any]) -> str:
    with contextlib.suppress(Conflict):
        await api.create(NAMESPACES, {"metadata": {"name": _EXPLAIN_NS}})
    await api.create(PODS, with_images(doc), _EXPLAIN_NS)
    return await _refusal(api, _EXPLAIN_NS, doc)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("pod", [d["metadata"]["name"] for d in _pods()])
async def test_explain_without_flags_agrees_with_the_scheduler(
    api: LightkubeAPI, stack: Stack, pod: str
) -> None:
    """Per vendor (after the placement test above): its placed pod fits where the scheduler put
    it, and the same pod asking for 64 devices fits nowhere, for the same reasons per node as
    the scheduler's FilteringFailed event. explain learns the vendors from the cluster, as a
    user running `hami explain POD` without --config gets."""
    from hami.vendors.family import SpecVendor

    doc = next(d for d in _pods() if d["metadata"]["name"] == pod)
    decision = next(d for d in _expected() if d.pod.endswith(f"/{pod}"))
    namespace = doc["metadata"].get("namespace", "default")
    said, _ = await _explained(stack, namespace, pod)
    assert isinstance(said, str) and f"on node {decision.node}" in said, (decision.pod, said)
    counts = {v.count_name for v in _vendors().values() if isinstance(v, SpecVendor)}
    big = _oversized(doc, counts, _EXPLAIN_NS)
    event = await _refused(api, big)
    said, snapshot = await _explained(stack, _EXPLAIN_NS, big["metadata"]["name"])
    assert not isinstance(said, str) and not said.fits, (pod, said, event)
    assert said.total == len(snapshot.nodes), said.summary()
    if event.startswith(FILTERING_FAILED):
        by_event = {reason: int(n) for n, reason in _EVENT_GROUP.findall(event)}
        assert {g.reason: g.count for g in said.groups} == by_event, (event, said.lines())


@pytest.mark.timeout(120)
async def test_explain_names_the_vendors_no_node_has_together(
    api: LightkubeAPI, stack: Stack
) -> None:
    mixed = _mixed(_pods(), _EXPLAIN_NS)
    event = await _refused(api, mixed)
    said, _ = await _explained(stack, _EXPLAIN_NS, "nvidia-and-ascend")
    assert not isinstance(said, str) and not said.fits, (said, event)
    hints = " ".join(g.hint for g in said.groups)
    assert "no node has both Ascend910B2 and NVIDIA" in hints, (hints, event)


@pytest.mark.timeout(60)
async def test_the_web_ui_counts_every_registered_device(stack: Stack) -> None:
    """Without --config, the web UI learns every vendor the nodes register."""
    from hami import explain_cli
    from hami.webui import views
    from hami.webui.names import VendorNames

    registered = sum(len(n.devices) for n in load_cluster(CLUSTER, _vendors()).nodes)
    snapshot, learnt, _ = await explain_cli._live(stack.cluster.kubeconfig, None)
    summary = views.summary_doc(snapshot, views.Filters(), VendorNames(learnt))
    assert summary["devices"] == registered, (summary["devices"], registered)
    assert all(n.node.devices for n in snapshot.nodes if n.name in _node_names())
