"""The scheduler service against the real control plane: kube-apiserver (webhook registered by
URL, TLS with the cluster CA), kube-scheduler (the chart's profile `hami-scheduler` and extender:
`nodeCacheCapable`, ignored managed resources, TLS with the cluster CA), kwok nodes whose GPUs are played by
`hami device-plugin --simulate`.

The module starts its own cluster: the extender is top-level in a KubeSchedulerConfiguration,
so sharing the session cluster would route every GPU pod of other tests through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hami.api import annotations as codec
from hami.api import keys
from hami.demo.stack import Stack, ready_probe
from hami.k8s import objects
from hami.k8s.api import NAMESPACES, NODES, PODS, KubeAPIError, Manifest
from hami.k8s.client import LightkubeAPI
from tests.e2e.localcluster import wait_until
from tests.e2e.stack import serve, stack_fixture

pytestmark = pytest.mark.e2e

MAIN_NODES = ("hami-main-0", "hami-main-1")
REQUEUE_NODE = "hami-requeue"
LOAD_NODES = tuple(f"hami-load-{i:02d}" for i in range(20))


def _inventory(directory: Path, gpus: int) -> Path:
    path = directory / f"inventory-{gpus}.yaml"
    items = "\n".join("  - {model: NVIDIA A10, memoryMiB: 23028, numa: 0}" for _ in range(gpus))
    path.write_text(f"gpus:\n{items}\n")
    return path


def _pool(node: str) -> dict[str, str]:
    return {"pool": "main" if node in MAIN_NODES else "load" if node in LOAD_NODES else "requeue"}


def _up(stack: Stack) -> None:
    nodes = (*MAIN_NODES, REQUEUE_NODE, *LOAD_NODES)
    four, one = _inventory(stack.cluster.run_dir, 4), _inventory(stack.cluster.run_dir, 1)
    inventories = {n: one if n == REQUEUE_NODE else four for n in nodes}
    serve(stack, nodes, inventories=inventories, labels=_pool)


# the chart's profile and extender (hami.demo.chart), TLS verified with the cluster CA
stack = stack_fixture("hami-scheduler-e2e", _up)


def _pod(
    name: str, limits: Mapping[str, object], pool: str = "main", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"pool": pool},
            "containers": [
                {
                    "name": "cuda",
                    "image": "example.invalid/cuda",
                    "resources": {"limits": {f"nvidia.com/{k}": str(v) for k, v in limits.items()}},
                }
            ],
            **spec,
        },
    }


@pytest_asyncio.fixture(loop_scope="function")
async def ns(api: LightkubeAPI) -> AsyncIterator[str]:
    name = f"hami-{os.urandom(4).hex()}"
    await api.create(NAMESPACES, {"metadata": {"name": name}})
    yield name
    for pod in (await api.list(PODS, namespace=name)).items:
        with contextlib.suppress(KubeAPIError):
            await api.delete(PODS, objects.name(pod), name, grace_seconds=0)


async def _bound(api: LightkubeAPI, ns: str, name: str) -> Manifest | None:
    pod = await api.get(PODS, name, ns)
    return pod if objects.spec(pod).get("nodeName") else None


async def _delete(api: LightkubeAPI, ns: str, name: str) -> None:
    await api.delete(PODS, name, ns, grace_seconds=0)


@pytest.mark.timeout(120)
async def test_worked_example_through_webhook_filter_and_bind(api: LightkubeAPI, ns: str) -> None:
    await api.create(PODS, _pod("gpu-pod", {"gpu": 1, "gpumem": 3000, "gpucores": 30}), ns)
    pod = await wait_until(lambda: _bound(api, ns, "gpu-pod"), 30, "gpu-pod to bind")
    assert objects.spec(pod)["schedulerName"] == "hami-scheduler"
    node = str(objects.spec(pod)["nodeName"])
    annotations = objects.annotations(pod)
    registered = objects.annotations(await api.get(NODES, node))[keys.NVIDIA_REGISTER]
    uuids = [d.id for d in codec.decode_node_devices(registered)]
    device = codec.decode_pod_devices(annotations[keys.NVIDIA_ALLOCATED])[0][0]
    assert device.uuid in uuids
    assert annotations[keys.NVIDIA_ALLOCATED] == f"{device.uuid},NVIDIA,3000,30:;"
    assert annotations[keys.VGPU_NODE] == node
    assert objects.labels(pod)[keys.VGPU_NODE] == node
    assert annotations[keys.VGPU_TIME].isdigit()
    assert annotations[keys.BIND_TIME].isdigit()
    assert annotations[keys.BIND_PHASE] in ("allocating", "success")

    async def allocated() -> bool:
        done = await api.get(PODS, "gpu-pod", ns)
        return objects.annotations(done).get(keys.BIND_PHASE) == "success"

    await wait_until(allocated, 30, "the device plugin to allocate")
    lock = objects.annotations(await api.get(NODES, node)).get(keys.NODE_LOCK)
    assert lock is None or not lock.endswith(f",{ns},gpu-pod")


@pytest.mark.timeout(60)
async def test_webhook_denies_invalid_request(api: LightkubeAPI, ns: str) -> None:
    with pytest.raises(KubeAPIError) as denied:
        await api.create(PODS, _pod("bad", {"gpu": 1, "gpucores": 300}), ns)
    assert "container cuda" in str(denied.value) and "nvidia.com/gpucores" in str(denied.value)
    privileged = _pod("priv", {"gpu": 1})
    privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    with pytest.raises(KubeAPIError, match="container cuda is privileged"):
        await api.create(PODS, privileged, ns)


@pytest.mark.timeout(120)
async def test_requeue_after_blocking_pod_is_deleted(api: LightkubeAPI, ns: str) -> None:
    await api.create(PODS, _pod("blocker", {"gpu": 1}, pool="requeue"), ns)
    await wait_until(lambda: _bound(api, ns, "blocker"), 30, "blocker to bind")
    await api.create(PODS, _pod("waiting", {"gpu": 1}, pool="requeue"), ns)
    await asyncio.sleep(3)
    assert await _bound(api, ns, "waiting") is None
    await _delete(api, ns, "blocker")
    started = time.monotonic()
    await wait_until(lambda: _bound(api, ns, "waiting"), 10, "waiting to bind")
    assert time.monotonic() - started <= 5.0


@pytest.mark.timeout(300)
async def test_no_overcommit_with_400_pods_on_20_nodes(api: LightkubeAPI, ns: str) -> None:
    shapes = [
        {"gpu": 1, "gpumem": 4000, "gpucores": 25},
        {"gpu": 1, "gpumem": 10000, "gpucores": 50},
        {"gpu": 2, "gpumem": 2000, "gpucores": 10},
        {"gpu": 1, "gpumem": 20000},
    ]
    await asyncio.gather(
        *(
            api.create(PODS, _pod(f"load-{i:03d}", shapes[i % len(shapes)], pool="load"), ns)
            for i in range(400)
        )
    )

    async def settled() -> bool:
        pods = (await api.list(PODS, namespace=ns)).items
        bound = sum(1 for p in pods if objects.spec(p).get("nodeName"))
        return bound > 0 and await _stable(api, ns, bound)

    await wait_until(settled, 240, "scheduling to settle", interval=2.0)
    usage: dict[str, list[int]] = {}
    pods = (await api.list(PODS, namespace=ns)).items
    for pod in pods:
        value = objects.annotations(pod).get(keys.NVIDIA_ALLOCATED)
        if not value or not objects.spec(pod).get("nodeName"):
            continue
        for container in codec.decode_pod_devices(value):
            for d in container:
                slot = usage.setdefault(d.uuid, [0, 0, 0])
                slot[0] += 1
                slot[1] += d.usedmem
                slot[2] += d.usedcores
    for uuid, (count, memory, cores) in usage.items():
        assert count <= 10 and memory <= 23028 and cores <= 100, uuid
    pending = [p for p in pods if not objects.spec(p).get("nodeName")]
    # every pending pod must really not fit: the smallest shape (4000 MiB, 25 cores) has no room
    free = [(23028 - m, 100 - c, 10 - n) for n, m, c in usage.values()]
    free += [(23028, 100, 10)] * (len(LOAD_NODES) * 4 - len(usage))
    if pending:
        assert not any(
            m >= 2000 and c >= 10 and n >= 1 for m, c, n in free if m >= 4000 and c >= 25
        )


async def _stable(api: LightkubeAPI, ns: str, bound: int) -> bool:
    await asyncio.sleep(3)
    pods = (await api.list(PODS, namespace=ns)).items
    return sum(1 for p in pods if objects.spec(p).get("nodeName")) == bound


@pytest.mark.timeout(240)
async def test_restart_while_scheduling(stack: Stack, api: LightkubeAPI, ns: str) -> None:
    names = [f"r-{i:02d}" for i in range(40)]
    await asyncio.gather(
        *(api.create(PODS, _pod(n, {"gpu": 1, "gpumem": 2000, "gpucores": 10}), ns) for n in names)
    )

    async def some_bound() -> bool:
        pods = (await api.list(PODS, namespace=ns)).items
        return sum(1 for p in pods if objects.spec(p).get("nodeName")) >= 3

    await wait_until(some_bound, 30, "the first pods to bind", interval=0.05)
    scheduler = next(c for c in stack.components if c.name == "hami-scheduler")
    assert scheduler.process is not None
    scheduler.process.kill()
    scheduler.process.wait(15)
    await asyncio.sleep(1)
    scheduler.start(die_with_parent=True)  # on this thread: it outlives the test's loop
    await asyncio.to_thread(scheduler.wait_ready, ready_probe(stack.port, stack.ca), 60.0)
    for name in names:
        await wait_until(functools.partial(_bound, api, ns, name), 120, f"{name} to bind")
    usage: dict[str, list[int]] = {}
    for pod in (await api.list(PODS, namespace=ns)).items:
        for container in codec.decode_pod_devices(objects.annotations(pod)[keys.NVIDIA_ALLOCATED]):
            for d in container:
                slot = usage.setdefault(d.uuid, [0, 0, 0])
                slot[0], slot[1], slot[2] = slot[0] + 1, slot[1] + d.usedmem, slot[2] + d.usedcores
    assert sum(n for n, _, _ in usage.values()) == len(names)
    assert all(n <= 10 and m <= 23028 and c <= 100 for n, m, c in usage.values())
