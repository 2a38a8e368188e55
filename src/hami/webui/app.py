"""The web UI's FastAPI app: the read-only JSON API under /api/v1 and the HTML pages."""

from __future__ import annotations

import contextlib
import functools
import gc
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from html import escape as html_escape
from pathlib import Path
from typing import Annotated, cast
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from hami import __version__
from hami.core.dra.explain import allocations_doc
from hami.webui import lists, page, views, whatif
from hami.webui.chart import chart, range_links
from hami.webui.history import RANGES, SERIES, WINDOW_S, History
from hami.webui.lists import ListState
from hami.webui.monitor import MonitorProbe
from hami.webui.names import VendorNames
from hami.webui.prometheus import DeviceTrends, PrometheusError, PrometheusHistory, Trend
from hami.webui.security import Guard
from hami.webui.snapshot import NodeEntry, PodEntry, Snapshot, Source, SourceError
from hami.webui.views import Filters

STATIC = Path(__file__).parent / "static"
ENDPOINTS = (
    "/api/v1/summary",
    "/api/v1/nodes",
    "/api/v1/nodes/{node}",
    "/api/v1/nodes/{node}/history",
    "/api/v1/history",
    "/api/v1/devices",
    "/api/v1/devices/{uuid}",
    "/api/v1/pending",
    "/api/v1/namespaces",
    "/api/v1/pods",
    "/api/v1/pods/{namespace}/{name}",
    "/api/v1/pods/{namespace}/{name}/explain",
    "POST /api/v1/what-if",
    "/api/v1/dra/allocations",
)
Text = Annotated[str, Query(max_length=253)]


@dataclass(slots=True)
class _Probed:
    utilisation: dict[str, float]
    notices: list[str]
    at: float


class WebUI:
    """Reads a snapshot per request, samples history, asks the node monitors now and then."""

    def __init__(
        self,
        source: Source,
        history: History | None = None,
        probe: MonitorProbe | None = None,
        probe_every: float = 5.0,
        prometheus: PrometheusHistory | None = None,
    ) -> None:
        self.source = source
        self.history = history or History()
        self.prometheus = prometheus
        self.probe = probe
        self.probe_every = probe_every
        self._probed = _Probed({}, [], float("-inf"))
        self.names = VendorNames(source.vendors)

    def filters(
        self, namespace: str = "", node: str = "", vendor: str = "", model: str = ""
    ) -> Filters:
        return Filters.of(self.names, namespace, node, vendor, model)

    def scoped(self, snapshot: Snapshot, filters: Filters) -> Snapshot:
        return views.scoped(snapshot, filters, self.source.vendors)

    async def read(self) -> tuple[Snapshot, dict[str, float]]:
        try:
            snapshot = await self.source.snapshot()
        except SourceError as exc:
            raise HTTPException(503, str(exc)) from None
        if self.probe is not None and time.time() - self._probed.at >= self.probe_every:
            util, notices = await self.probe.utilisation(snapshot.nodes)
            self._probed = _Probed(util, notices, time.time())
        if self._probed.notices:
            snapshot = replace(snapshot, notices=(*snapshot.notices, *self._probed.notices))
        self.history.record(snapshot, self._probed.utilisation)
        return snapshot, self._probed.utilisation

    async def trend(self, span_s: float, now: float) -> Trend:
        """The cluster's samples for a chart: from Prometheus when one is configured and
        answers, else from the UI's own history (with the reason when Prometheus failed)."""
        own = self.history.cluster_series(now - span_s)
        if self.prometheus is None:
            return Trend("own", own)
        try:
            return Trend("prometheus", await self.prometheus.cluster(span_s, now))
        except PrometheusError as exc:
            return Trend("own", own, str(exc))

    async def device_trends(
        self, selector: dict[str, str], uuids: Sequence[str], span_s: float, now: float
    ) -> DeviceTrends:
        """Per device its samples (``selector``: ``node`` or ``device_uuid``), as `trend`."""
        own = {u: self.history.series(u, now - min(span_s, WINDOW_S)) for u in uuids}
        if self.prometheus is None:
            return DeviceTrends("own", own)
        try:
            found = await self.prometheus.devices(selector, uuids, span_s, now)
        except PrometheusError as exc:
            return DeviceTrends("own", own, str(exc))
        return DeviceTrends("prometheus", found)

    def history_note(self, source: str, problem: str) -> str:
        """Where a page's charts come from, said above them (marked stale on a fallback)."""
        if source == "prometheus" and self.prometheus is not None:
            where = html_escape(self.prometheus.url)
            return f'<p class="history-source" data-source="prometheus">history: Prometheus {where}</p>'
        if problem:
            return (
                '<p class="history-source stale" data-source="own" data-stale="true" role="status">'
                f"{html_escape(problem)}; the charts show the UI's own history (since it started)"
                "</p>"
            )
        return '<p class="history-source" data-source="own">history: kept by the UI since it started</p>'

    async def pod(self, namespace: str, name: str) -> tuple[Snapshot, PodEntry, dict[str, float]]:
        snapshot, util = await self.read()
        pod = snapshot.pod(namespace, name)
        if pod is None:
            raise HTTPException(404, f"pod {namespace}/{name} not found (or it asks for no device)")
        return snapshot, pod, util


def _node_or_404(snapshot: Snapshot, name: str) -> NodeEntry:
    info = snapshot.node(name)
    if info is None:
        raise HTTPException(404, f"node {name!r} not found")
    return info


def _device_or_404(snapshot: Snapshot, uuid: str, ui: WebUI) -> dict[str, object]:
    info = views.device_of(snapshot, uuid)
    if info is None:
        raise HTTPException(404, f"accelerator {uuid!r} not found")
    node = views.node_doc(snapshot, info, Filters(), ui.names)
    return next(d for d in cast(list[dict[str, object]], node["devices"]) if d["uuid"] == uuid)


async def _limited_body(request: Request) -> bytes:
    body = await request.body()
    if len(body) > 2 * whatif.MAX_SPEC_BYTES:  # form encoding may double it
        raise HTTPException(413, f"the spec is larger than {whatif.MAX_SPEC_BYTES // 1024} KiB")
    return body


def _range(name: str) -> str:
    if name not in RANGES:
        raise HTTPException(400, f"range {name!r}: use one of {', '.join(RANGES)}")
    return name


def _phase(phase: str) -> str:
    if phase not in ("", "pending", "placed"):
        raise HTTPException(400, f"phase {phase!r}: use pending or placed")
    return phase


def create_app(
    ui: WebUI, allowed_hosts: Sequence[str] = ("*",), *, freeze_gc: bool = False
) -> FastAPI:
    """The app; ``allowed_hosts``: the Host names a request may use (``*``: any).

    ``freeze_gc`` (the `hami webui` process): once the first snapshot is built, move every
    object alive then out of the cyclic collector's sight (`gc.freeze`), so a full collection
    no longer walks the process's long-lived objects (0.2-1 s per collection at 1,000 nodes on
    a loaded 2-core machine, 0.04-0.1 s frozen); reference counting still frees them."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await ui.source.start()  # a live source lists before the port serves
        if freeze_gc:
            gc.collect()
            gc.freeze()
        yield
        await ui.source.stop()

    app = FastAPI(
        title="hami web UI", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan
    )
    app.add_middleware(Guard, allowed_hosts=allowed_hosts)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _api(app, ui)
    _dra_api(app, ui)
    _pages(app, ui)

    @app.exception_handler(HTTPException)
    async def _error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return HTMLResponse(page.error_page(exc.status_code, str(exc.detail)), exc.status_code)

    return app


def _dra_api(app: FastAPI, ui: WebUI) -> None:
    @app.get("/api/v1/dra/allocations")
    async def dra_allocations() -> dict[str, object]:
        """DRA mode's allocations from the ResourceClaims (docs/dra.md): a live cluster's, listed
        now; else the snapshot's (`hami webui --sim`: the cluster file's claims and slices)."""
        api = getattr(ui.source, "api", None)
        if api is None:
            snapshot, _ = await ui.read()
            if snapshot.dra is None:
                raise HTTPException(404, "this source has no ResourceClaims to read")
            return allocations_doc(snapshot.dra.claims, snapshot.dra.slices)
        from hami.draview import allocations_live
        from hami.k8s.api import KubeAPIError

        try:
            return await allocations_live(api)
        except KubeAPIError as exc:
            raise HTTPException(503, f"cannot list ResourceClaims: {exc}") from exc


def _api(app: FastAPI, ui: WebUI) -> None:
    @app.get("/api/v1")
    async def index() -> dict[str, object]:
        return {"api_version": views.API_VERSION, "hami": __version__, "endpoints": ENDPOINTS}

    @app.get("/api/v1/summary")
    async def summary(
        namespace: Text = "", node: Text = "", vendor: Text = "", model: Text = ""
    ) -> dict[str, object]:
        snapshot, _ = await ui.read()
        filters = ui.filters(namespace, node, vendor, model)
        return views.summary_doc(ui.scoped(snapshot, filters), filters, ui.names)

    @app.get("/api/v1/nodes")
    async def nodes(
        namespace: Text = "", node: Text = "", vendor: Text = "", model: Text = ""
    ) -> dict[str, object]:
        snapshot, _ = await ui.read()
        filters = ui.filters(namespace, node, vendor, model)
        return {"nodes": views.nodes_doc(ui.scoped(snapshot, filters), filters, ui.names)}

    @app.get("/api/v1/nodes/{name}")
    async def one_node(name: str) -> dict[str, object]:
        snapshot, _ = await ui.read()
        return views.node_doc(snapshot, _node_or_404(snapshot, name), Filters(), ui.names)

    @app.get("/api/v1/nodes/{name}/history")
    async def history(
        name: str, minutes: Annotated[int, Query(ge=1, le=60)] = 60
    ) -> dict[str, object]:
        snapshot, _ = await ui.read()
        info = _node_or_404(snapshot, name)
        uuids = [d.uuid for d in info.node.devices]
        found = await ui.device_trends({"node": name}, uuids, minutes * 60, snapshot.taken_at)
        return {
            "node": name,
            "window_s": minutes * 60
            if found.source == "prometheus"
            else min(minutes * 60, WINDOW_S),
            "source": found.source,
            "problem": found.problem,
            "devices": {u: [s.to_dict() for s in found.series.get(u, [])] for u in uuids},
        }

    @app.get("/api/v1/devices")
    async def devices(
        namespace: Text = "", node: Text = "", vendor: Text = "", model: Text = ""
    ) -> dict[str, object]:
        snapshot, _ = await ui.read()
        filters = ui.filters(namespace, node, vendor, model)
        return {"devices": views.devices_doc(ui.scoped(snapshot, filters), filters, ui.names)}

    @app.get("/api/v1/devices/{uuid}")
    async def one_device(uuid: str) -> dict[str, object]:
        snapshot, _ = await ui.read()
        return _device_or_404(snapshot, uuid, ui)

    @app.get("/api/v1/pending")
    async def pending(
        namespace: Text = "", node: Text = "", vendor: Text = "", model: Text = ""
    ) -> dict[str, object]:
        snapshot, _ = await ui.read()
        filters = ui.filters(namespace, node, vendor, model)
        return {"causes": views.pending_doc(snapshot, filters, ui.source.vendors)}

    @app.get("/api/v1/namespaces")
    async def namespaces() -> dict[str, object]:
        snapshot, _ = await ui.read()
        return {
            "quotas_known": snapshot.quotas is not None,
            "namespaces": views.namespaces_doc(snapshot, ui.names),
        }

    @app.post("/api/v1/what-if")
    async def what_if_api(request: Request) -> dict[str, object]:
        """Body: one Pod manifest, YAML or JSON."""
        snapshot, _ = await ui.read()
        text = (await _limited_body(request)).decode("utf-8", "replace")
        try:
            return whatif.what_if(text, snapshot, ui.source.vendors, ui.source.config).to_dict()
        except whatif.WhatIfError as exc:
            raise HTTPException(400, str(exc)) from None

    @app.get("/api/v1/history")
    async def cluster_history(range: Text = "1h") -> dict[str, object]:
        snapshot, _ = await ui.read()
        span = _range(range)
        trend = await ui.trend(RANGES[span], snapshot.taken_at)
        return {
            "range": span,
            "source": trend.source,
            "problem": trend.problem,
            "series": [{"key": s.key, "label": s.label, "unit": "%"} for s in SERIES],
            "samples": [s.to_dict() for s in trend.samples],
        }

    @app.get("/api/v1/pods")
    async def pods(
        namespace: Text = "", node: Text = "", vendor: Text = "", model: Text = "", phase: Text = ""
    ) -> dict[str, object]:
        snapshot, _ = await ui.read()
        filters = ui.filters(namespace, node, vendor, model)
        return {"pods": views.pods_doc(snapshot, filters, _phase(phase))}

    @app.get("/api/v1/pods/{namespace}/{name}")
    async def one_pod(namespace: str, name: str) -> dict[str, object]:
        snapshot, pod, _ = await ui.pod(namespace, name)
        return views.pod_doc(pod, ui.names, views.pod_devices(snapshot, pod))

    @app.get("/api/v1/pods/{namespace}/{name}/explain")
    async def explain(namespace: str, name: str) -> dict[str, object]:
        snapshot, pod, _ = await ui.pod(namespace, name)
        if not pod.pending:
            where = f"holds devices on node {pod.node}" if pod.placed else "cannot be parsed"
            raise HTTPException(409, f"pod {pod.key} is not pending: it {where}")
        return views.explain_any(snapshot, pod, ui.source.vendors).to_dict()


def _render(
    ui: WebUI,
    request: Request,
    title: str,
    body: str,
    filters: Filters,
    snap: Snapshot,
    refresh: bool = True,
    status: int = 200,
) -> Response:
    models = sorted({d.type for n in snap.nodes for d in n.node.devices})
    body = page.filter_problems(_filter_problems(snap, filters, ui, models)) + body
    stale = ""
    headers = {}
    if snap.stale_since is not None:
        stale = time.strftime("%H:%M:%S", time.localtime(snap.stale_since))
        headers["X-Hami-Stale"] = stale
    if request.query_params.get("partial"):
        return HTMLResponse(page.partial(body, snap.notices), status, headers)
    text = page.layout(title, body, filters, snap.notices, ui.names.names(), models, refresh, stale)
    return HTMLResponse(text, status, headers)


def _noted(snapshot: Snapshot, problem: str) -> Snapshot:
    """``snapshot`` with ``problem`` (a history source's failure) among its notices."""
    return replace(snapshot, notices=(*snapshot.notices, problem)) if problem else snapshot


def _filter_problems(
    snap: Snapshot, filters: Filters, ui: WebUI, models: Sequence[str]
) -> list[str]:
    """A filter naming nothing that exists is said on the page, not shown as an empty page."""
    out = []
    if filters.namespace and not any(p.namespace == filters.namespace for p in snap.pods):
        out.append(
            f"namespace {filters.namespace!r}: no GPU pod in it (unknown namespace, or it asks "
            "for no device); usage shown is 0"
        )
    if filters.node and snap.node(filters.node) is None:
        out.append(f"node {filters.node!r} not found")
    if filters.vendor and not filters.vendor_keys:
        known = ", ".join(ui.names.names())
        out.append(f"vendor {filters.vendor!r} is not an enabled vendor (known: {known})")
    if filters.model and filters.model.lower() not in {m.lower() for m in models}:
        out.append(f"no device of model {filters.model!r} (models are matched by exact name)")
    return out


def _pages(app: FastAPI, ui: WebUI) -> None:
    html = functools.partial(_render, ui)

    @app.get("/", response_class=HTMLResponse)
    async def overview(
        request: Request,
        namespace: Text = "",
        node: Text = "",
        vendor: Text = "",
        model: Text = "",
        range: Text = "1h",
    ) -> Response:
        snapshot, _ = await ui.read()
        filters = ui.filters(namespace, node, vendor, model)
        scoped = ui.scoped(snapshot, filters)
        span = _range(range)
        found = await ui.trend(RANGES[span], snapshot.taken_at)
        whole = " (whole cluster)" if any(page.vars_of(filters).values()) else ""
        trend = (
            range_links(span, list(request.query_params.items()))
            + ui.history_note(found.source, found.problem)
            + chart(found.samples, span, f"Allocation and use over time{whole}", snapshot.taken_at)
        )
        body = page.overview(
            views.summary_doc(scoped, filters, ui.names),
            views.nodes_doc(scoped, filters, ui.names),
            views.pods_doc(scoped, filters, "pending"),
            filters,
            trend,
        )
        return html(request, "overview", body, filters, _noted(snapshot, found.problem))

    @app.get("/nodes/{name}", response_class=HTMLResponse)
    async def node_view(
        request: Request,
        name: str,
        vendor: Text = "",
        model: Text = "",
        range: Text = "1h",
    ) -> Response:
        snapshot, _ = await ui.read()
        info = _node_or_404(snapshot, name)
        filters = ui.filters("", name, vendor, model)
        span = _range(range)
        uuids = [d.uuid for d in info.node.devices]
        found = await ui.device_trends({"node": name}, uuids, RANGES[span], snapshot.taken_at)
        doc = views.node_doc(snapshot, info, filters, ui.names)
        body = ui.history_note(found.source, found.problem) + page.node_page(
            doc, found.series, span, snapshot.taken_at
        )
        return html(request, f"node {name}", body, filters, _noted(snapshot, found.problem))

    @app.get("/pods/{namespace}/{name}", response_class=HTMLResponse)
    async def pod_view(request: Request, namespace: str, name: str) -> Response:
        snapshot, pod, util = await ui.pod(namespace, name)
        why = views.explain_any(snapshot, pod, ui.source.vendors) if pod.pending else None
        doc = views.pod_doc(pod, ui.names, views.pod_devices(snapshot, pod))
        body = page.pod_page(doc, why, util)
        return html(request, f"pod {pod.key}", body, Filters(namespace), snapshot)

    _list_pages(app, ui)
    _what_if_pages(app, ui)


def _list_pages(app: FastAPI, ui: WebUI) -> None:
    html = functools.partial(_render, ui)

    def state(request: Request) -> ListState:
        return ListState.of(dict(request.query_params))

    @app.get("/nodes", response_class=HTMLResponse)
    async def nodes_view(
        request: Request, namespace: Text = "", node: Text = "", vendor: Text = "", model: Text = ""
    ) -> Response:
        snapshot, _ = await ui.read()
        filters = ui.filters(namespace, node, vendor, model)
        docs = views.nodes_doc(ui.scoped(snapshot, filters), filters, ui.names)
        return html(request, "nodes", lists.nodes_list(docs, state(request)), filters, snapshot)

    @app.get("/accelerators", response_class=HTMLResponse)
    async def devices_view(
        request: Request, namespace: Text = "", node: Text = "", vendor: Text = "", model: Text = ""
    ) -> Response:
        snapshot, _ = await ui.read()
        filters = ui.filters(namespace, node, vendor, model)
        docs = views.devices_doc(ui.scoped(snapshot, filters), filters, ui.names)
        body = lists.devices_list(docs, state(request))
        return html(request, "accelerators", body, filters, snapshot)

    @app.get("/accelerators/{uuid}", response_class=HTMLResponse)
    async def device_view(
        request: Request,
        uuid: str,
        range: Text = "1h",
    ) -> Response:
        snapshot, _ = await ui.read()
        doc = _device_or_404(snapshot, uuid, ui)
        span = _range(range)
        selector = {"device_uuid": uuid}
        found = await ui.device_trends(selector, [uuid], RANGES[span], snapshot.taken_at)
        body = ui.history_note(found.source, found.problem) + page.device_page(
            doc, found.series[uuid], span, snapshot.taken_at
        )
        title = f"{doc['label']} on {doc['node']}"
        return html(request, title, body, Filters(), _noted(snapshot, found.problem))

    @app.get("/workloads", response_class=HTMLResponse)
    async def workloads_view(
        request: Request, namespace: Text = "", node: Text = "", vendor: Text = "", model: Text = ""
    ) -> Response:
        snapshot, _ = await ui.read()
        filters = ui.filters(namespace, node, vendor, model)
        body = lists.workloads_list(views.workloads_doc(snapshot, filters), state(request))
        return html(request, "workloads", body, filters, snapshot)

    @app.get("/pending", response_class=HTMLResponse)
    async def pending_view(
        request: Request, namespace: Text = "", node: Text = "", vendor: Text = "", model: Text = ""
    ) -> Response:
        snapshot, _ = await ui.read()
        filters = ui.filters(namespace, node, vendor, model)
        groups = views.pending_doc(snapshot, filters, ui.source.vendors)
        return html(
            request, "pending", lists.pending_page(groups, state(request)), filters, snapshot
        )

    @app.get("/namespaces", response_class=HTMLResponse)
    async def namespaces_view(request: Request, namespace: Text = "") -> Response:
        snapshot, _ = await ui.read()
        docs = views.namespaces_doc(snapshot, ui.names)
        if namespace:
            docs = [d for d in docs if d["namespace"] == namespace]
        body = lists.namespaces_page(docs, state(request), snapshot.quotas is not None)
        return html(request, "namespaces", body, ui.filters(namespace), snapshot)


def _what_if_pages(app: FastAPI, ui: WebUI) -> None:
    html = functools.partial(_render, ui)

    @app.get("/what-if", response_class=HTMLResponse)
    async def what_if_form(request: Request) -> Response:
        snapshot, _ = await ui.read()
        body = page.what_if_page(page.SAMPLE_SPEC, None, "")
        return html(request, "what-if", body, Filters(), snapshot, refresh=False)

    @app.post("/what-if", response_class=HTMLResponse)
    async def what_if_post(request: Request) -> Response:
        snapshot, _ = await ui.read()
        raw = await _limited_body(request)
        spec = parse_qs(raw.decode("utf-8", "replace")).get("spec", [""])[0]
        try:
            result = whatif.what_if(spec, snapshot, ui.source.vendors, ui.source.config)
        except whatif.WhatIfError as exc:
            body = page.what_if_page(spec, None, str(exc))
            return html(request, "what-if", body, Filters(), snapshot, refresh=False, status=400)
        body = page.what_if_page(spec, result.to_dict(), "")
        return html(request, "what-if", body, Filters(), snapshot, refresh=False)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}
