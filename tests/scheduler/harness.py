"""A scheduler service over the in-memory KubeAPI, driven through its HTTP app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from hami.api import annotations as codec
from hami.api import keys
from hami.api.extender import filter_args_json
from hami.api.types import DeviceInfo
from hami.core.config import SchedulerConfig
from hami.k8s import objects
from hami.k8s.api import NODES, PODS
from hami.k8s.fake import FakeKube, node_manifest
from hami.scheduler.app import create_app
from hami.scheduler.service import SchedulerService
from hami.scheduler.settings import SchedulerSettings
from hami.vendors.registry import build
from tests import builders

T0 = datetime(2026, 8, 21, 6, 20, 39, tzinfo=UTC)  # unix 1755757239
V100 = "NVIDIA-Tesla V100-PCIE-32GB"
UUID_A = "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448"


@dataclass(slots=True)
class FakeClock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def registration(*uuids: str, count: int = 10, memory: int = 32768) -> str:
    return codec.encode_node_devices(
        [
            DeviceInfo(
                id=u,
                index=i,
                count=count,
                devmem=memory,
                devcore=100,
                type=V100,
                mode="hami-core",
                health=True,
            )
            for i, u in enumerate(uuids)
        ]
    )


def gpu_node(
    name: str,
    gpus: int = 1,
    *,
    memory: int = 32768,
    count: int = 10,
    uuids: Sequence[str] | None = None,
) -> dict[str, Any]:
    ids = list(uuids) if uuids is not None else [f"GPU-{name}-{i}" for i in range(gpus)]
    return node_manifest(
        name,
        {keys.NVIDIA_REGISTER: registration(*ids, count=count, memory=memory)},
        {"nvidia.com/gpu": str(len(ids) * count)},
    )


def container(name: str = "cuda", /, **limits: object) -> dict[str, Any]:
    return builders.container(
        name, {f"nvidia.com/{k}": str(v) for k, v in limits.items()}, image="cuda"
    )


def gpu_pod(
    name: str,
    *containers: dict[str, Any],
    namespace: str = "default",
    init: Sequence[dict[str, Any]] = (),
    annotations: dict[str, str] | None = None,
    **limits: object,
) -> dict[str, Any]:
    return builders.pod(
        name,
        *(containers or [container(**(limits or {"gpu": 1, "gpumem": 3000, "gpucores": 30}))]),
        namespace=namespace,
        scheduler="hami-scheduler",
        init=init or None,
        annotations=annotations or None,
        typed=True,
    )


@dataclass
class Harness:
    kube: FakeKube
    service: SchedulerService
    client: httpx.AsyncClient
    clock: FakeClock
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def add_node(self, manifest: dict[str, object]) -> None:
        await self.kube.create(NODES, manifest)

    async def add_pod(self, manifest: dict[str, Any]) -> dict[str, object]:
        return dict(await self.kube.create(PODS, manifest))

    def node_names(self) -> list[str]:
        return [objects.name(n) for n in self.kube.all(NODES)]

    async def filter(
        self, name: str, namespace: str = "default", nodes: Sequence[str] | None = None
    ) -> dict[str, Any]:
        pod = self.kube.stored(PODS, name, namespace)
        body = filter_args_json(pod, list(nodes) if nodes is not None else self.node_names())
        response = await self.client.post("/filter", json=body)
        assert response.status_code == 200
        return dict(response.json())

    async def bind(self, name: str, node: str, namespace: str = "default") -> dict[str, Any]:
        pod = self.kube.stored(PODS, name, namespace)
        body = {
            "PodName": name,
            "PodNamespace": namespace,
            "PodUID": objects.uid(pod),
            "Node": node,
        }
        response = await self.client.post("/bind", json=body)
        assert response.status_code == 200
        return dict(response.json())

    async def schedule(self, name: str, namespace: str = "default") -> str | None:
        """Filter then bind, as kube-scheduler would; the node, or None when nothing fits."""
        result = await self.filter(name, namespace)
        assert not result["Error"], result["Error"]
        if not result["NodeNames"]:
            return None
        node = str(result["NodeNames"][0])
        bound = await self.bind(name, node, namespace)
        assert not bound["Error"], bound["Error"]
        return node

    async def settle(self, seconds: float = 0.02) -> None:
        await asyncio.sleep(seconds)

    async def events(self, reason: str | None = None) -> list[dict[str, Any]]:
        await self.service.recorder.flush()
        from hami.k8s.api import EVENTS

        return [e for e in self.kube.all(EVENTS) if reason is None or e.get("reason") == reason]

    def annotations(self, name: str, namespace: str = "default") -> dict[str, str]:
        return objects.annotations(self.kube.stored(PODS, name, namespace))

    async def until(self, check: Callable[[], bool], timeout: float = 1.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not check():
            assert loop.time() < deadline, "condition not reached in time"
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(
    kube: FakeKube | None = None,
    *,
    config: SchedulerConfig | None = None,
    start: bool = True,
    **overrides: Any,
) -> AsyncIterator[Harness]:
    kube = kube or FakeKube()
    clock = FakeClock()
    defaults: dict[str, Any] = {
        "sync_wait": 1.0,
        "bind_lock_wait": 0.5,
        "registration_interval": 3600,
    }
    settings = SchedulerSettings(config=config or SchedulerConfig(), **{**defaults, **overrides})
    service = SchedulerService(settings, kube, build(settings.config), clock=clock)
    transport = httpx.ASGITransport(app=create_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://scheduler") as client:
        harness = Harness(kube, service, client, clock)
        if start:
            harness.tasks.append(asyncio.create_task(service.run()))
            await service.cache.wait_synced(2.0)
        try:
            yield harness
        finally:
            for task in harness.tasks:
                task.cancel()
            await asyncio.gather(*harness.tasks, return_exceptions=True)
