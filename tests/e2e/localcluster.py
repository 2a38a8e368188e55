"""pytest fixtures and helpers for tests that run against the local control plane.

Import the fixtures into a ``conftest.py``::

    from tests.e2e.localcluster import k8s_cluster, kube, namespace  # noqa: F401

* ``k8s_cluster`` (session): a started :class:`~hami.cluster.LocalCluster`. Override the
  session fixtures ``k8s_scheduler_profiles`` / ``k8s_scheduler_extenders`` in a conftest to
  extend the scheduler configuration (e.g. add ``hami-scheduler`` and an HTTP extender).
* ``kube`` (function): a lightkube ``AsyncClient`` for it, closed after the test.
* ``namespace`` (function): a fresh namespace; its pods are deleted afterwards.

Missing binaries make ``k8s_cluster`` *fail* with the reason; it never skips.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

import httpx2
import pytest
import pytest_asyncio
from lightkube import AsyncClient, KubeConfig
from lightkube.models.core_v1 import NodeSpec, NodeStatus, Taint, Toleration
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, Node, Pod
from lightkube.types import PatchType

from hami.cluster.control_plane import ClusterOptions, LocalCluster
from hami.cluster.render import KWOK_NODE_ANNOTATION, KWOK_NODE_VALUE

T = TypeVar("T")

GPU_RESOURCE = "nvidia.com/gpu"
KWOK_TAINT = Taint(key=KWOK_NODE_ANNOTATION, value=KWOK_NODE_VALUE, effect="NoSchedule")
KWOK_TOLERATION = Toleration(
    key=KWOK_NODE_ANNOTATION, operator="Exists", effect="NoSchedule"
)  # add to pods meant for nodes created with ``taint=True``
BASE_CAPACITY = {"cpu": "32", "memory": "256Gi", "pods": "110"}


def client_for(cluster: LocalCluster, timeout: float = 10.0) -> AsyncClient:
    """A new lightkube ``AsyncClient`` authenticated as the cluster admin."""
    config = KubeConfig.from_file(cluster.kubeconfig)
    return AsyncClient(config=config, timeout=httpx2.Timeout(timeout), trust_env=False)


def gpu_node(
    name: str,
    *,
    gpus: int = 8,
    resource: str = GPU_RESOURCE,
    extra_resources: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    taint: bool = False,
) -> Node:
    """A kwok-managed Node whose status advertises ``gpus`` of ``resource``.

    kwok manages nodes annotated ``kwok.x-k8s.io/node: fake``. With ``taint=True`` the node
    also carries kwok's conventional ``NoSchedule`` taint, so only pods with
    :data:`KWOK_TOLERATION` land on it.
    """
    resources = {**BASE_CAPACITY, resource: str(gpus), **(extra_resources or {})}
    return Node(
        metadata=ObjectMeta(
            name=name,
            labels={"kubernetes.io/hostname": name, "type": "kwok", **(labels or {})},
            annotations={KWOK_NODE_ANNOTATION: KWOK_NODE_VALUE, **(annotations or {})},
        ),
        spec=NodeSpec(taints=[KWOK_TAINT] if taint else None),
        status=NodeStatus(capacity=dict(resources), allocatable=dict(resources)),
    )


async def create_gpu_node(
    client: AsyncClient, name: str, *, wait_ready: bool = True, **options: Any
) -> Node:
    """Create :func:`gpu_node` ``name``, set its resources through the status subresource and
    (by default) wait until kwok reports it Ready. ``options`` go to :func:`gpu_node`."""
    node = gpu_node(name, **options)
    await client.create(node)
    assert node.status is not None
    await set_node_resources(client, name, node.status.capacity or {})
    if wait_ready:
        await wait_until(lambda: _node_ready(client, name), 30.0, f"node {name} to become Ready")
    return await client.get(Node, name)


async def set_node_resources(client: AsyncClient, name: str, resources: Mapping[str, str]) -> None:
    """Merge-patch capacity and allocatable of node ``name`` (the ``status`` subresource)."""
    patch = {"status": {"capacity": dict(resources), "allocatable": dict(resources)}}
    await client.patch(Node.Status, name, patch, patch_type=PatchType.MERGE)


async def wait_until(
    check: Callable[[], Awaitable[T | None]], timeout: float, what: str, interval: float = 0.2
) -> T:
    """Await ``check()`` until it returns something other than None/False; fail after
    ``timeout`` seconds with a message saying what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


async def _node_ready(client: AsyncClient, name: str) -> bool:
    node = await client.get(Node, name)
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


# ---- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def k8s_scheduler_profiles() -> list[dict[str, Any]]:
    """Extra kube-scheduler profiles (after ``default-scheduler``); override to extend."""
    return []


@pytest.fixture(scope="session")
def k8s_scheduler_extenders() -> list[dict[str, Any]]:
    """kube-scheduler extenders (top level, shared by all profiles); override to extend."""
    return []


@pytest.fixture(scope="session")
def k8s_cluster(
    tmp_path_factory: pytest.TempPathFactory,
    k8s_scheduler_profiles: list[dict[str, Any]],
    k8s_scheduler_extenders: list[dict[str, Any]],
) -> Iterator[LocalCluster]:
    """A local control plane for the whole test session (logs kept under pytest's tmp)."""
    options = ClusterOptions(
        run_dir=tmp_path_factory.mktemp("k8s-cluster"),
        name="hami-test",
        scheduler_profiles=k8s_scheduler_profiles,
        scheduler_extenders=k8s_scheduler_extenders,
    )
    cluster = LocalCluster(options).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest_asyncio.fixture(loop_scope="function")
async def kube(k8s_cluster: LocalCluster) -> AsyncIterator[AsyncClient]:
    """A lightkube AsyncClient for the session cluster, closed after the test."""
    client = client_for(k8s_cluster)
    try:
        yield client
    finally:
        await client.close()


@pytest_asyncio.fixture(loop_scope="function")
async def namespace(kube: AsyncClient) -> AsyncIterator[str]:
    """A fresh namespace. Without kube-controller-manager it never finishes terminating, so
    teardown deletes its pods at once and does not wait for the namespace."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    await kube.create(Namespace(metadata=ObjectMeta(name=name)))
    try:
        yield name
    finally:
        await kube.deletecollection(Pod, namespace=name, grace_period=0)
        await kube.delete(Namespace, name)
