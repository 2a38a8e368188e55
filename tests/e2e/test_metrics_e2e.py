"""The scheduler's /metrics against the real control plane: after kube-scheduler, the webhook,
`/filter`, `/bind` and the simulated device plugin have placed pods, the allocation series equal
what the pods' `hami.io/vgpu-devices-allocated` annotations say within 2 s (HAMi lags up to
15 s), and they drop within 2 s of a pod's deletion."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hami.api import keys
from hami.api.annotations import decode_pod_devices
from hami.demo.stack import Stack, gpu_pod
from hami.k8s import objects
from hami.k8s.api import PODS, KubeAPIError, Manifest
from hami.k8s.client import LightkubeAPI
from tests.e2e.localcluster import wait_until
from tests.e2e.stack import serve, stack_fixture

pytestmark = pytest.mark.e2e

NODES = ("metrics-0", "metrics-1")
NAMESPACE = "default"
MIB = 1024 * 1024
FRESH = 2.0  # seconds: how stale the metrics may be
VGPU_MEMORY = "hami_vgpu_memory_allocated_bytes"
VGPU_CORES = "hami_vgpu_core_allocated_ratio"
DEVICE_MEMORY = "hami_gpu_memory_allocated_bytes"
SHARED = "hami_gpu_shared_count"

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


stack = stack_fixture("hami-metrics", lambda s: serve(s, NODES))


# --- scraping ---------------------------------------------------------------------------------


def scrape(stack: Stack) -> Series:
    """Every sample of the scheduler's /metrics, keyed by (name, labels)."""
    context = ssl.create_default_context(cafile=str(stack.ca))
    url = f"https://127.0.0.1:{stack.port}/metrics"
    response = httpx.get(url, verify=context, timeout=5, trust_env=False)
    response.raise_for_status()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def pod_series(series: Series, name: str) -> dict[tuple[str, str, str], float]:
    """(pod, container_index, device_uuid) → value of one per-container family, our pods only."""
    out = {}
    for (sample, labels), value in series.items():
        tags = dict(labels)
        if sample == name and tags.get("namespace") == NAMESPACE:
            out[(tags["pod"], tags["container_index"], tags["device_uuid"])] = value
    return out


def device_series(series: Series, name: str) -> dict[str, float]:
    """device_uuid → value of one per-device family."""
    return {
        dict(labels)["device_uuid"]: v for (sample, labels), v in series.items() if sample == name
    }


# --- what the annotations say ----------------------------------------------------------------


def allocation(pod: Manifest) -> dict[tuple[str, str, str], tuple[float, float]]:
    """(pod, container_index, device_uuid) → (bytes, cores) from the pod's annotation."""
    value = objects.annotations(pod).get(keys.NVIDIA_ALLOCATED, "")
    out: dict[tuple[str, str, str], tuple[float, float]] = {}
    for index, devices in enumerate(decode_pod_devices(value)):
        for device in devices:
            key = (objects.name(pod), str(index), device.uuid)
            mem, cores = out.get(key, (0.0, 0.0))
            out[key] = (mem + device.usedmem * MIB, cores + device.usedcores)
    return out


def expected_devices(pods: list[Manifest]) -> tuple[dict[str, float], dict[str, float]]:
    """device_uuid → (allocated bytes, shared count) summed over ``pods``."""
    memory: dict[str, float] = defaultdict(float)
    shared: dict[str, float] = defaultdict(float)
    for pod in pods:
        for (_, _, uuid), (mem, _) in allocation(pod).items():
            memory[uuid] += mem
            shared[uuid] += 1
    return dict(memory), dict(shared)


async def wait_fresh(stack: Stack, matches: Any, what: str) -> Series:
    """Scrape until ``matches(series)`` holds; fail after FRESH seconds."""
    deadline = time.monotonic() + FRESH
    while True:
        series = await asyncio.to_thread(scrape, stack)
        if matches(series):
            return series
        if time.monotonic() > deadline:
            raise AssertionError(f"/metrics did not show {what} within {FRESH} s")
        await asyncio.sleep(0.05)


def agrees(series: Series, pods: list[Manifest]) -> bool:
    wanted: dict[tuple[str, str, str], tuple[float, float]] = {}
    for pod in pods:
        wanted.update(allocation(pod))
    memory = {k: v[0] for k, v in wanted.items()}
    cores = {k: v[1] for k, v in wanted.items()}
    device_memory, shared = expected_devices(pods)
    got_memory = device_series(series, DEVICE_MEMORY)
    got_shared = device_series(series, SHARED)
    return (
        pod_series(series, VGPU_MEMORY) == memory
        and pod_series(series, VGPU_CORES) == cores
        and all(got_memory.get(uuid) == mem for uuid, mem in device_memory.items())
        and all(got_shared.get(uuid) == n for uuid, n in shared.items())
        and sum(got_memory.values()) == sum(device_memory.values())
    )


# --- pods ------------------------------------------------------------------------------------


def two_container_pod(name: str) -> dict[str, Any]:
    pod = gpu_pod(name, {"gpu": 1, "gpumem": 3000, "gpucores": 20})
    second = {
        "name": "second",
        "image": "example.invalid/cuda",
        "resources": {"limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "5000"}},
    }
    pod["spec"]["containers"].append(second)
    return pod


async def placed(api: LightkubeAPI, name: str) -> Manifest | None:
    pod = await api.get(PODS, name, NAMESPACE)
    annotations = objects.annotations(pod)
    if not objects.spec(pod).get("nodeName") or keys.NVIDIA_ALLOCATED not in annotations:
        return None
    return pod


async def create_placed(api: LightkubeAPI, bodies: Mapping[str, dict[str, Any]]) -> list[Manifest]:
    for body in bodies.values():
        await api.create(PODS, body, NAMESPACE)
    return [
        await wait_until(lambda n=name: placed(api, n), 60, f"pod {name} to be bound")  # type: ignore[misc]
        for name in bodies
    ]


async def gone(api: LightkubeAPI, name: str) -> bool:
    try:
        await api.get(PODS, name, NAMESPACE)
    except KubeAPIError as exc:
        return exc.status == 404
    return False


@pytest.mark.timeout(300)
async def test_allocation_metrics_follow_pods_without_lag(stack: Stack) -> None:
    api = stack.api(timeout=30)
    try:
        await check_follows_pods(stack, api)
    finally:
        await api.close()


async def check_follows_pods(stack: Stack, api: LightkubeAPI) -> None:
    bodies = {
        "m-small": gpu_pod("m-small", {"gpu": 1, "gpumem": 1000, "gpucores": 10}),
        "m-pair": gpu_pod("m-pair", {"gpu": 2, "gpumem": 2000}),
        "m-two": two_container_pod("m-two"),
    }
    pods = await create_placed(api, bodies)
    series = await wait_fresh(stack, lambda s: agrees(s, pods), "the placed pods' allocations")
    indexes = {index for (pod, index, _) in pod_series(series, VGPU_MEMORY) if pod == "m-two"}
    assert indexes == {"0", "1"}  # container_index is real
    assert len(pod_series(series, VGPU_MEMORY)) == 5  # 1 + 2 + 1 + 1 devices

    await api.delete(PODS, "m-pair", NAMESPACE, grace_seconds=0)
    await wait_until(lambda: gone(api, "m-pair"), 30, "m-pair to be deleted")
    rest = [p for p in pods if objects.name(p) != "m-pair"]
    series = await wait_fresh(stack, lambda s: agrees(s, rest), "m-pair's devices released")
    assert all(pod != "m-pair" for (pod, _, _) in pod_series(series, VGPU_MEMORY))

    for name in ("m-small", "m-two"):
        await api.delete(PODS, name, NAMESPACE, grace_seconds=0)
        await wait_until(lambda n=name: gone(api, n), 30, f"{name} to be deleted")  # type: ignore[misc]
    series = await wait_fresh(stack, lambda s: agrees(s, []), "every allocation released")
    assert set(device_series(series, DEVICE_MEMORY).values()) == {0.0}
