"""The HTTP surface: /filter, /bind, /webhook, /healthz, /readyz, /metrics (and the plain-HTTP
/metrics listener).

Handlers parse, delegate and serialise; errors are mapped in `hami.scheduler.errors`.
"""

from __future__ import annotations

import time

import orjson
from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from hami.api.admission import AdmissionRequest
from hami.api.errors import WireFormatError
from hami.api.extender import (
    ExtenderArgs,
    ExtenderBindingArgs,
    ExtenderBindingResult,
    ExtenderFilterResult,
)
from hami.scheduler.errors import EXTENDER_ERRORS, error_reason, extender_error, webhook_status
from hami.scheduler.filter import ERROR, PLACED, UNFIT
from hami.scheduler.limits import gc_paused
from hami.scheduler.metrics import Metrics
from hami.scheduler.service import SchedulerService

JSON = "application/json"
# route groups: the extender listener (kube-scheduler only) and the admission listener
# (kube-apiserver's webhook calls, the kubelet's probes, scrapes); every listener has the probes
EXTENDER_ROUTES = "extender"
WEBHOOK_ROUTES = "webhook"
METRICS_ROUTES = "metrics"
ALL = frozenset({EXTENDER_ROUTES, WEBHOOK_ROUTES, METRICS_ROUTES})
EXTENDER = frozenset({EXTENDER_ROUTES})
ADMISSION = frozenset({WEBHOOK_ROUTES, METRICS_ROUTES})


def _reply(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


async def _body(request: Request) -> object:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise WireFormatError("body", "", f"not JSON: {exc}") from None


def create_app(service: SchedulerService, routes: frozenset[str] = ALL) -> FastAPI:
    app = FastAPI(title="hami-scheduler", docs_url=None, redoc_url=None, openapi_url=None)
    _probes(app, service)
    if EXTENDER_ROUTES in routes:
        _extender(app, service)
    if WEBHOOK_ROUTES in routes:
        _webhook(app, service)
    if METRICS_ROUTES in routes:

        @app.get("/metrics")
        async def prometheus() -> Response:
            return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


def _extender(app: FastAPI, service: SchedulerService) -> None:
    metrics = service.metrics

    @app.post("/filter")
    async def filter_(request: Request) -> Response:
        started = time.perf_counter()
        size = int(request.headers.get("content-length") or 0)  # Bounded has checked it
        try:
            with gc_paused(size):  # a simulation's body: no full collection meanwhile
                args = ExtenderArgs.from_json(await _body(request))
                if args.nodes is None:  # the live path (a simulation changes nothing)
                    async with service.admit():
                        await service.wait_ready()
                        result = await service.filterer.filter(args)  # counts placed/unfit
                else:
                    result = await service.filterer.filter(args)  # off the loop, with a deadline
                del args
            outcome = PLACED if result.node_names or result.nodes else UNFIT
        except EXTENDER_ERRORS as exc:
            result, outcome = ExtenderFilterResult(error=extender_error(exc)), ERROR
            metrics.decision(ERROR, error_reason(exc))
        metrics.request("filter", outcome, time.perf_counter() - started)
        return _reply(result.to_json())

    @app.post("/bind")
    async def bind(request: Request) -> Response:
        started = time.perf_counter()
        try:
            args = ExtenderBindingArgs.from_json(await _body(request))
            async with service.admit():
                await service.wait_ready()
                await service.binder.bind(args)
            result, outcome = ExtenderBindingResult(), "bound"
        except EXTENDER_ERRORS as exc:
            result, outcome = ExtenderBindingResult(error=extender_error(exc)), ERROR
        metrics.request("bind", outcome, time.perf_counter() - started)
        return _reply(result.to_json())


def _webhook(app: FastAPI, service: SchedulerService) -> None:
    metrics = service.metrics

    @app.post("/webhook")
    @app.post("/webhook/mutating")
    async def webhook(request: Request) -> Response:
        started = time.perf_counter()
        try:
            review = AdmissionRequest.from_json(await _body(request))
        except (WireFormatError, ValueError) as exc:
            metrics.request("webhook", ERROR, time.perf_counter() - started)
            return _reply({"error": str(exc)}, webhook_status(exc))
        response = await service.webhook.areview(review)
        body = _reply(response.review(review.api_version))
        outcome = "allowed" if response.allowed else "denied"
        metrics.request("webhook", outcome, time.perf_counter() - started)
        return body


def _probes(app: FastAPI, service: SchedulerService) -> None:
    @app.get("/healthz")
    async def healthz() -> Response:
        return Response("ok", media_type="text/plain")

    @app.get("/readyz")
    async def readyz() -> Response:
        ok = service.ready
        return Response("ok" if ok else "not ready", 200 if ok else 503, media_type="text/plain")


def create_metrics_app(metrics: Metrics) -> FastAPI:
    """The plain-HTTP metrics listener (``--metrics-bind-address``): ``/metrics`` only, the
    same families as the TLS listener's ``/metrics``."""
    app = FastAPI(title="hami-scheduler-metrics", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app
