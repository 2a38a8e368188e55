"""Run `hami monitor`: the discovery loop plus an HTTP server for `/metrics` and `/healthz`."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from hami.k8s.client import LightkubeAPI, load_kubeconfig
from hami.monitor.collector import MonitorCollector, registry_for
from hami.monitor.host import open_host
from hami.monitor.monitor import Monitor, MonitorSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServeSettings:
    monitor: MonitorSettings
    bind: str = "0.0.0.0:9394"  # HAMi --metrics-bind-address :9394 (Service port 31992)
    interval: float = 5.0  # discovery and feedback period (HAMi: 5 s)
    legacy_metrics: bool = False
    kubeconfig: Path | None = None

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.bind.rpartition(":")
        return host or "0.0.0.0", int(port)


def create_app(registry: CollectorRegistry) -> FastAPI:
    app = FastAPI(title="hami-monitor", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response("ok", media_type="text/plain")

    return app


async def refresh_forever(monitor: Monitor, interval: float) -> None:
    while True:
        await monitor.refresh()
        await asyncio.sleep(interval)


async def serve(settings: ServeSettings) -> None:
    kube = LightkubeAPI(load_kubeconfig(settings.kubeconfig))
    monitor = Monitor(settings.monitor, kube)
    collector = MonitorCollector(monitor, open_host(), legacy=settings.legacy_metrics)
    host, port = settings.host_port
    config = uvicorn.Config(
        create_app(registry_for(collector)),
        host=host,
        port=port,
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
    loop = asyncio.create_task(refresh_forever(monitor, settings.interval), name="monitor-loop")
    log.info("monitoring %s on %s", settings.monitor.containers_dir, settings.bind)
    try:
        await uvicorn.Server(config).serve()
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        monitor.close()
        await kube.close()
