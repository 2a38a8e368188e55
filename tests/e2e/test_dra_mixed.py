"""Both modes in one cluster (issue 22): kwok nodes labelled ``hami.io/dra=true`` are served by
the DRA plugin's simulate twin (``hami dra-plugin --simulate``), the others by the device
plugin's; the webhook (``hami scheduler --dra-namespaces ''``) turns pods that select DRA nodes
into claims and routes the rest to the extender, which skips DRA nodes. Also: a malformed
annotation is a denial, and a deleted DRA pod takes its claim with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import pytest_asyncio
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.resources.core_v1 import Namespace, Pod
from prometheus_client.parser import text_string_to_metric_families

from hami.api import keys
from hami.cluster.binaries import find_node_binaries
from hami.cluster.control_plane import LocalCluster
from hami.cluster.ports import free_port
from hami.cluster.process import Component
from hami.config import load_config
from hami.core.dra import names, records
from hami.demo import stack as demo
from hami.vendors import registry
from hami.webui.app import WebUI, create_app
from hami.webui.history import History
from hami.webui.livesource import KubeSource
from tests.e2e.dra_stack import Claim, create_dra_nodes, ensure_device_class, pod_manifest
from tests.e2e.localcluster import client_for, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.dra]

EXTENDER_NODES = ("ext-0", "ext-1")
DRA_NODES = 3
HAMI = str(Path(sys.executable).with_name("hami"))
INVENTORY = "gpus:\n" + "  - {model: NVIDIA A10, memoryMiB: 23028, numa: 0}\n" * 2


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[demo.Stack]:
    run_dir = tmp_path_factory.mktemp("dra-mixed")
    port = free_port()
    options = dataclasses.replace(
        demo.cluster_options(run_dir / "cluster", "hami-dra-mixed", port),
        controller_manager=find_node_binaries().kube_controller_manager,
    )
    result = demo.Stack(LocalCluster(options).start(), port)
    try:
        inventory = run_dir / "inventory.yaml"
        inventory.write_text(INVENTORY)
        result.create_nodes(EXTENDER_NODES)
        dra_nodes = asyncio.run(_dra_nodes(result.cluster))
        result.scheduler(args=["--dra-namespaces", ""])
        result.plugin(dict.fromkeys(EXTENDER_NODES, inventory))
        twin = Component(
            "hami-dra-plugin",
            [
                HAMI,
                "dra-plugin",
                "--simulate",
                "--kubeconfig",
                str(result.cluster.kubeconfig),
                "--inventory",
                str(inventory),
                "--interval",
                "2",
                "--nodes",
                ",".join(dra_nodes),
            ],
            result.cluster.run_dir / "logs" / "dra-plugin.log",
        )
        twin.start(die_with_parent=True)
        result.components.append(twin)
        result.wait_serving(EXTENDER_NODES)
        yield result
    finally:
        result.stop()


async def _dra_nodes(cluster: LocalCluster) -> list[str]:
    client = client_for(cluster)
    try:
        await ensure_device_class(client)
        return await create_dra_nodes(client, DRA_NODES)
    finally:
        await client.close()


@pytest_asyncio.fixture(loop_scope="function")
async def kube(stack: demo.Stack) -> AsyncIterator[AsyncClient]:
    client = client_for(stack.cluster, timeout=30.0)
    try:
        yield client
    finally:
        await client.close()


def _pod(name: str, ns: str, limits: dict[str, str], dra: bool, **annotations: str) -> Pod:
    selector = {names.DRA_NODE_LABEL: names.DRA_NODE_VALUE} if dra else {}
    return cast(Pod, Pod.from_dict(pod_manifest(name, ns, {"cuda": limits}, annotations, selector)))


async def _bound(kube: AsyncClient, ns: str, count: int) -> list[dict[str, Any]] | None:
    pods = [p.to_dict() async for p in kube.list(Pod, namespace=ns)]
    done = [p for p in pods if p["spec"].get("nodeName")]
    return pods if len(done) == count else None


async def test_dra_and_extender_pods_side_by_side(stack: demo.Stack, kube: AsyncClient) -> None:
    ns = "mixed"
    await kube.create(cast(Namespace, Namespace.from_dict({"metadata": {"name": ns}})))
    slices = await wait_until(lambda: _slices(kube), 30.0, "the DRA twin's slices", interval=0.5)
    assert {s["spec"]["nodeName"] for s in slices} == {f"dra-{i:03d}" for i in range(DRA_NODES)}
    limits = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4000", "nvidia.com/gpucores": "20"}
    for i in range(4):
        await kube.create(_pod(f"ext-{i}", ns, limits, dra=False))
        await kube.create(_pod(f"dra-{i}", ns, limits, dra=True))
    pods = await wait_until(lambda: _bound(kube, ns, 8), 60.0, "8 pods bound", interval=0.5)
    for pod in pods:
        name, node = pod["metadata"]["name"], pod["spec"]["nodeName"]
        if name.startswith("ext-"):
            assert node in EXTENDER_NODES, (name, node)
            assert pod["spec"]["schedulerName"] == "hami-scheduler"
            assert keys.NVIDIA_TO_ALLOCATE in pod["metadata"]["annotations"]
            assert not pod["spec"].get("resourceClaims")
        else:
            assert node.startswith("dra-"), (name, node)
            assert pod["spec"]["resourceClaims"][0]["resourceClaimTemplateName"]
            limits_left = pod["spec"]["containers"][0]["resources"].get("limits") or {}
            assert not any(k.startswith("nvidia.com/") for k in limits_left)
    claims = [c.to_dict() async for c in kube.list(Claim, namespace=ns)]
    allocated = records.allocations(claims)
    assert sorted(a.owner for a in allocated) == [f"dra-{i}" for i in range(4)]
    assert all(a.memory_mib == 4000 and a.cores == 20 for a in allocated)
    assert records.overcommitted(records.usage(allocated), records.capacities(slices)) == []
    await _dra_shown(stack, ns, allocated[0])

    # a deleted DRA pod takes its claim with it (the pod owns it: no orphan)
    gone = next(a for a in allocated if a.owner == "dra-0")
    await kube.delete(Pod, "dra-0", namespace=ns, grace_period=0)

    async def claim_gone() -> bool:
        try:
            await kube.get(Claim, gone.claim, namespace=ns)
        except ApiError as exc:
            return exc.status.code == 404
        return False

    await wait_until(claim_gone, 60.0, f"claim {gone.claim} to be deleted with its pod")


async def _dra_shown(stack: demo.Stack, ns: str, allocation: records.Allocation) -> None:
    """The DRA allocation in the scheduler's /metrics (the extender's families) and on the web
    UI's API (the pod's slice, the node's device), as the claim has it."""
    context = ssl.create_default_context(cafile=str(stack.ca))
    wanted = {"namespace": ns, "pod": allocation.owner, "node": allocation.node}

    async def in_metrics() -> float | None:
        async with httpx.AsyncClient(verify=context, timeout=5.0) as client:
            text = (await client.get(f"https://127.0.0.1:{stack.port}/metrics")).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "hami_vgpu_memory_allocated_bytes" and (
                    wanted.items() <= sample.labels.items()
                ):
                    return sample.value
        return None

    value = await wait_until(in_metrics, 30.0, "the DRA allocation in /metrics", interval=0.5)
    assert value == allocation.memory_bytes

    settings = load_config(None)
    ui = WebUI(KubeSource(stack.api(timeout=30), registry.build(settings), settings, ttl=0),
               History(interval=0))  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(ui))
    async with httpx.AsyncClient(transport=transport, base_url="http://ui") as client:
        pod = (await client.get(f"/api/v1/pods/{ns}/{allocation.owner}")).json()
        assert pod["node"] == allocation.node, pod
        assert (pod["memory_mib"], pod["cores"]) == (allocation.memory_mib, allocation.cores)
        node = (await client.get(f"/api/v1/nodes/{allocation.node}")).json()
        assert {d["mode"] for d in node["devices"]} == {"dra"}
        held = [h["pod"] for d in node["devices"] for h in d["pods"]]
        assert f"{ns}/{allocation.owner}" in held


async def _slices(kube: AsyncClient) -> list[dict[str, Any]] | None:
    from tests.e2e.dra_stack import Slice

    found = [s.to_dict() async for s in kube.list(Slice)]
    return found if len(found) == DRA_NODES else None


async def test_malformed_selector_annotation_is_denied(kube: AsyncClient) -> None:
    bad = _pod(
        "bad", "default", {"nvidia.com/gpu": "1"}, dra=True, **{keys.USE_GPUTYPE: "A100') ||"}
    )
    with pytest.raises(ApiError) as denied:
        await kube.create(bad)
    assert denied.value.status.message is not None
    assert "nvidia.com/use-gputype" in denied.value.status.message
    too_many = _pod("many", "default", {"nvidia.com/gpucores": "150"}, dra=True)
    with pytest.raises(ApiError, match="0–100"):
        await kube.create(too_many)


async def test_chart_dra_objects_are_accepted_by_the_api_server(kube: AsyncClient) -> None:
    """The chart's DRA templates (DaemonSet, RBAC, DeviceClass, ValidatingAdmissionPolicy with
    its CEL) pass the API server's validation (server-side dry run)."""
    from lightkube import codecs

    from hami.demo.chart import CHART, NAMESPACE, RELEASE, helm

    shown = [
        f"templates/{name}"
        for name in ("dra-plugin.yaml", "dra-deviceclass.yaml", "dra-admission-policy.yaml")
    ]
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    args += ["--set", "dra.enabled=true", "--set", "dra.extendedResourceName=example.com/gpu"]
    for path in shown:
        args += ["--show-only", path]
    rendered = helm(*args).stdout
    objects = codecs.load_all_yaml(rendered)
    kinds = sorted(type(o).__name__ for o in objects)
    assert kinds == [
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "DaemonSet",
        "DeviceClass",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    with contextlib.suppress(ApiError):
        await kube.create(cast(Namespace, Namespace.from_dict({"metadata": {"name": NAMESPACE}})))
    for obj in objects:
        if type(obj).__name__ == "DeviceClass":  # the stack made the real one already
            assert obj.metadata is not None
            obj.metadata.name = "dry-run-class"
        await kube.create(obj, dry_run=True)


async def test_a_dra_plugin_may_write_only_its_own_nodes_slices(
    stack: demo.Stack, kube: AsyncClient
) -> None:
    """The chart's ValidatingAdmissionPolicy: a token of the plugin's ServiceAccount bound to a
    pod on node A may create A's ResourceSlice and not B's."""
    from lightkube import codecs
    from lightkube.models.authentication_v1 import BoundObjectReference, TokenRequestSpec
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import ServiceAccount

    from hami.demo.chart import CHART, NAMESPACE, RELEASE, helm
    from tests.e2e.dra_stack import Slice

    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--set", "dra.enabled=true"]
    args += ["--show-only", "templates/dra-admission-policy.yaml"]
    args += ["--show-only", "templates/dra-plugin.yaml"]
    applied = [
        o for o in codecs.load_all_yaml(helm(*args).stdout) if type(o).__name__ != "DaemonSet"
    ]
    with contextlib.suppress(ApiError):
        await kube.create(cast(Namespace, Namespace.from_dict({"metadata": {"name": NAMESPACE}})))
    for obj in applied:
        with contextlib.suppress(ApiError):  # a rerun in the same cluster
            await kube.create(obj)
    account = f"{RELEASE}-dra-plugin"
    pod = pod_manifest("plugin", NAMESPACE, {"plugin": {}})
    pod["spec"].update(nodeName="dra-000", serviceAccountName=account)
    made = await kube.create(cast(Pod, Pod.from_dict(pod)))
    assert made.metadata is not None
    request = ServiceAccount.Token(
        metadata=ObjectMeta(name=account, namespace=NAMESPACE),
        spec=TokenRequestSpec(
            audiences=[],
            boundObjectRef=BoundObjectReference(
                kind="Pod",
                name="plugin",
                uid=made.metadata.uid,
            ),
        ),
    )
    token = await kube.create(request, account, namespace=NAMESPACE)
    assert token.status is not None
    cluster = stack.cluster
    assert cluster.ports is not None and cluster.pki is not None
    config = {
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": f"https://127.0.0.1:{cluster.ports.apiserver}",
                    "certificate-authority": str(cluster.pki.ca.cert),
                },
            }
        ],
        "users": [{"name": "plugin", "user": {"token": token.status.token}}],
        "contexts": [{"name": "plugin", "context": {"cluster": "local", "user": "plugin"}}],
        "current-context": "plugin",
    }
    as_plugin = AsyncClient(config=KubeConfig.from_dict(config), trust_env=False)

    def slice_for(node: str) -> Any:
        return Slice.from_dict(
            {
                "metadata": {"name": f"policy-{node}"},
                "spec": {
                    "driver": names.DRIVER,
                    "nodeName": node,
                    "pool": {"name": f"policy-{node}", "generation": 1, "resourceSliceCount": 1},
                    "devices": [],
                },
            }
        )

    async def refusal(node: str) -> str | None:
        try:
            await as_plugin.create(slice_for(node), dry_run=True)
        except ApiError as exc:
            return str(exc.status.message)
        return None

    # the policy is in force once kube-apiserver has loaded it (a second or so)
    refused = await wait_until(lambda: refusal("dra-001"), 30.0, "the policy to refuse dra-001")
    assert (
        "the DRA plugin on node dra-000 may not write the ResourceSlices of node dra-001" in refused
    )
    assert await refusal("dra-000") is None
    await as_plugin.close()
    await kube.delete(Pod, "plugin", namespace=NAMESPACE, grace_period=0)
