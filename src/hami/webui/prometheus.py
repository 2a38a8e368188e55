"""History from a Prometheus that scrapes hami (``hami webui --prometheus-url``): range queries
(``/api/v1/query_range``) over the scheduler's allocation metrics and the node monitors'
utilisation, turned into the same `Sample`s the UI's own history keeps.

The metric names come from the exporters' own `Spec`s (`hami.metrics.specs`,
`hami.metrics.monitor`), so a rename there renames the queries too. Every per-device value is
taken once per ``device_uuid`` (``max by (device_uuid)``) before it is summed, so two scheduler
replicas or a doubled scrape job do not double the cluster's allocation.

A Prometheus that does not answer, answers an error or answers something that is not a range
vector is never an error of the page: `History` falls back to the UI's own in-memory history
and says why (`Trend.problem`). After a failure it is not asked again for ``retry_s`` seconds,
so a page refreshing every second does not wait for a dead server each time.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from hami.metrics.monitor import HOST_UTIL
from hami.metrics.specs import CORE_ALLOCATED, CORE_LIMIT, MEMORY_ALLOCATED, MEMORY_LIMIT
from hami.webui.history import Sample

MIB = 1024 * 1024
POINTS = 300  # points per range: 15m → 3 s steps, 1h → 12 s, 24h → 288 s
MIN_STEP_S = 1.0

# the Sample field each query fills, from the exporters' own metric specs
METRICS = {
    "memory": MEMORY_ALLOCATED.name,
    "memory_total": MEMORY_LIMIT.name,
    "cores": CORE_ALLOCATED.name,
    "cores_total": CORE_LIMIT.name,
    "utilisation": HOST_UTIL.name,
}


class PrometheusError(Exception):
    """Prometheus did not give a usable answer (unreachable, an error status, a bad body)."""


def label_value(value: str) -> str:
    """``value`` as a PromQL double-quoted string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def step_for(span_s: float) -> float:
    return max(MIN_STEP_S, math.ceil(span_s / POINTS))


def cluster_queries() -> dict[str, str]:
    """One expression per `METRICS` field for the whole cluster (one value per device first)."""
    out = {}
    for field, metric in METRICS.items():
        per_device = f"max by (device_uuid) ({metric})"
        out[field] = f"avg({per_device})" if field == "utilisation" else f"sum({per_device})"
    return out


def device_queries(selector: Mapping[str, str]) -> dict[str, str]:
    """One expression per `METRICS` field, one series per device matching ``selector``
    (``{"node": name}`` or ``{"device_uuid": uuid}``)."""
    match = ",".join(f"{k}={label_value(v)}" for k, v in sorted(selector.items()))
    return {
        field: f"max by (device_uuid) ({metric}{{{match}}})" for field, metric in METRICS.items()
    }


def samples_of(values: Mapping[str, Mapping[float, float]]) -> list[Sample]:
    """Samples from ``field → {t: value}``: a time point counts when its registered memory is
    known (allocation without it is no percentage); utilisation may be missing (None)."""
    totals = values.get("memory_total", {})
    out = []
    for t in sorted(totals):

        def get(field: str, at: float = t) -> float:
            return values.get(field, {}).get(at, 0.0)

        util = values.get("utilisation", {}).get(t)
        out.append(
            Sample(
                t,
                round(get("memory") / MIB),
                round(get("cores")),
                None if util is None else round(util, 2),
                round(get("memory_total") / MIB),
                round(get("cores_total")),
            )
        )
    return out


def parse_matrix(body: object) -> list[tuple[dict[str, str], dict[float, float]]]:
    """A query_range answer's series: (labels, {t: value}); NaN and ±Inf points left out."""
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        raise PrometheusError(f"query failed: {error or 'not a Prometheus API answer'}")
    data = body.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        raise PrometheusError("the answer is not a range vector (resultType matrix)")
    series = []
    for item in data.get("result") or []:
        try:
            labels = {str(k): str(v) for k, v in item["metric"].items()}
            points = {float(t): float(v) for t, v in item["values"]}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PrometheusError(f"malformed series in the answer ({exc!r})") from None
        series.append((labels, {t: v for t, v in points.items() if math.isfinite(v)}))
    return series


@dataclass(frozen=True, slots=True)
class Range:
    start: float
    end: float
    step: float

    @classmethod
    def last(cls, span_s: float, now: float) -> Range:
        step = step_for(span_s)
        end = math.floor(now / step) * step  # aligned, so refreshes share cached answers
        return cls(end - span_s, end, step)


class PrometheusClient:
    """``/api/v1/query_range`` of one Prometheus, answers cached for ``cache_s`` seconds."""

    def __init__(self, url: str, timeout: float = 3.0, cache_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.cache_s = cache_s
        self._cache: dict[tuple[str, Range], tuple[float, list[tuple[dict[str, str], dict[float, float]]]]] = {}  # fmt: skip

    async def query_range(
        self, client: httpx.AsyncClient, expr: str, window: Range
    ) -> list[tuple[dict[str, str], dict[float, float]]]:
        key = (expr, window)
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.cache_s:
            return hit[1]
        params = {
            "query": expr,
            "start": f"{window.start:.3f}",
            "end": f"{window.end:.3f}",
            "step": f"{window.step:g}",
        }
        try:
            response = await client.get(f"{self.url}/api/v1/query_range", params=params)
        except httpx.HTTPError as exc:
            raise PrometheusError(f"{type(exc).__name__}: {exc or 'no answer'}") from None
        try:
            body = response.json()
        except ValueError:
            raise PrometheusError(f"HTTP {response.status_code}, not JSON") from None
        result = parse_matrix(body)
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), result)
        return result

    async def fields(
        self, queries: Mapping[str, str], window: Range
    ) -> dict[str, list[tuple[dict[str, str], dict[float, float]]]]:
        async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as client:
            answers = await asyncio.gather(
                *(self.query_range(client, expr, window) for expr in queries.values())
            )
        return dict(zip(queries, answers, strict=True))


@dataclass(frozen=True, slots=True)
class Trend:
    """Samples for a chart and where they came from: ``source`` is ``prometheus`` or ``own``
    (the UI's in-memory history); ``problem`` says why Prometheus was not used when it is
    configured."""

    source: str
    samples: list[Sample]
    problem: str = ""


@dataclass(frozen=True, slots=True)
class DeviceTrends:
    source: str
    series: dict[str, list[Sample]]
    problem: str = ""


class PrometheusHistory:
    """Range queries for the charts, with the back-off after a failure."""

    def __init__(self, url: str, timeout: float = 3.0, retry_s: float = 15.0) -> None:
        self.client = PrometheusClient(url, timeout)
        self.retry_s = retry_s
        self._down: tuple[float, str] | None = None  # when it last failed, and why

    @property
    def url(self) -> str:
        return self.client.url

    def _skip(self) -> str:
        if self._down is not None and time.monotonic() - self._down[0] < self.retry_s:
            return self._down[1]
        return ""

    def _failed(self, exc: PrometheusError) -> str:
        why = f"Prometheus at {self.url} did not answer usably ({exc})"
        self._down = (time.monotonic(), why)
        return why

    async def cluster(self, span_s: float, now: float) -> list[Sample]:
        """The cluster's samples over the last ``span_s`` seconds; PrometheusError if none."""
        if why := self._skip():
            raise PrometheusError(why)
        try:
            answers = await self.client.fields(cluster_queries(), Range.last(span_s, now))
        except PrometheusError as exc:
            raise PrometheusError(self._failed(exc)) from None
        self._down = None
        return samples_of({f: _merged(series) for f, series in answers.items()})

    async def devices(
        self, selector: Mapping[str, str], uuids: Sequence[str], span_s: float, now: float
    ) -> dict[str, list[Sample]]:
        """Per device UUID (of ``uuids``) its samples; PrometheusError if none."""
        if why := self._skip():
            raise PrometheusError(why)
        try:
            answers = await self.client.fields(device_queries(selector), Range.last(span_s, now))
        except PrometheusError as exc:
            raise PrometheusError(self._failed(exc)) from None
        self._down = None
        by_device: dict[str, dict[str, dict[float, float]]] = {u: {} for u in uuids}
        for field, series in answers.items():
            for labels, points in series:
                uuid = labels.get("device_uuid", "")
                if uuid in by_device:
                    by_device[uuid][field] = points
        return {uuid: samples_of(values) for uuid, values in by_device.items()}


def _merged(series: Sequence[tuple[dict[str, str], dict[float, float]]]) -> dict[float, float]:
    """An aggregate's one series (none when no device exported anything)."""
    out: dict[float, float] = {}
    for _, points in series:
        out.update(points)
    return out
