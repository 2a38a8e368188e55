"""The plain-HTTP /metrics listener (``--metrics-bind-address``), as HAMi serves its scheduler
metrics on the monitor port; the TLS listener keeps its own /metrics."""

from __future__ import annotations

import asyncio
import inspect
import socket

import httpx
import pytest
from typer.testing import CliRunner

from hami.cli import app
from hami.cluster.ports import free_port
from hami.k8s.fake import FakeKube
from hami.scheduler.cli import scheduler
from hami.scheduler.main import ListenError, serve
from hami.scheduler.settings import SchedulerSettings, split_host_port


def settings(metrics_port: int, **overrides: object) -> SchedulerSettings:
    base: dict[str, object] = {
        "http_bind": f"127.0.0.1:{free_port()}",
        "metrics_bind": f"127.0.0.1:{metrics_port}",
        "shutdown_grace": 1.0,
        "sync_wait": 1.0,
    }
    return SchedulerSettings(**{**base, **overrides})  # type: ignore[arg-type]


async def get(url: str) -> httpx.Response | None:
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
            return await client.get(url)
    except httpx.TransportError:
        return None


async def until_served(url: str) -> httpx.Response:
    async with asyncio.timeout(5.0):
        while (response := await get(url)) is None:
            await asyncio.sleep(0.02)
    return response


async def test_metrics_over_plain_http_next_to_the_main_listener() -> None:
    port = free_port()
    config = settings(port)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, FakeKube(), stop))
    plain = await until_served(f"http://127.0.0.1:{port}/metrics")
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("text/plain")
    assert "# TYPE hami_scheduler_requests_total counter" in plain.text
    main = await until_served(f"http://{config.http_bind}/metrics")
    assert main.status_code == 200  # the main listener keeps /metrics
    families = {line.split()[2] for line in plain.text.splitlines() if line.startswith("# TYPE")}
    assert families == {
        line.split()[2] for line in main.text.splitlines() if line.startswith("# TYPE")
    }
    for path in ("/filter", "/healthz", "/webhook"):  # /metrics only, as HAMi's metrics port
        answer = await get(f"http://127.0.0.1:{port}{path}")
        assert answer is not None and answer.status_code in (404, 405), path
    stop.set()
    await asyncio.wait_for(task, 5.0)
    assert await get(f"http://127.0.0.1:{port}/metrics") is None  # closed with the service


async def test_a_taken_metrics_port_fails_before_serving_and_names_the_flag() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = settings(port)
        with pytest.raises(ListenError, match=rf"--metrics-bind-address 127.0.0.1:{port}: "):
            await asyncio.wait_for(serve(config, FakeKube(), asyncio.Event()), 5.0)
        assert await get(f"http://{config.http_bind}/readyz") is None  # never served


async def test_no_plain_listener_when_the_address_is_empty() -> None:
    config = settings(0, metrics_bind="")
    assert config.metrics_host_port is None
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, FakeKube(), stop))
    await until_served(f"http://{config.http_bind}/metrics")
    stop.set()
    await asyncio.wait_for(task, 5.0)


def test_addresses() -> None:
    assert split_host_port(":9395") == ("0.0.0.0", 9395)
    assert split_host_port("127.0.0.1:9395") == ("127.0.0.1", 9395)
    assert split_host_port("[::1]:9395") == ("::1", 9395)


def test_the_flag_defaults_to_hamis_address_and_rejects_a_bad_one() -> None:
    assert SchedulerSettings().metrics_bind == ""  # in-process: none unless asked
    flag = inspect.signature(scheduler).parameters["metrics_bind_address"]
    assert flag.default == ":9395"  # HAMi's --metrics-bind-address (chart: monitorTargetPort)
    result = CliRunner().invoke(app, ["scheduler", "--metrics-bind-address", "host:port"])
    assert result.exit_code == 2
    assert "is not host:port" in result.output
