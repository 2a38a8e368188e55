"""The Grafana dashboard's PromQL, read and judged: every expression of every panel, with the
dashboard variables substituted, and a verdict per expression from Prometheus's HTTP API
(``/api/v1/query``): an error, no series, only NaN, or data. An expression without data names
the metric names in it that no target exports, with the nearest exported name."""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "hami" / "files" / "hami-dashboard.json"

# PromQL words that look like metric names but are not: functions, aggregations, keywords
_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "rate", "irate", "increase", "delta", "idelta",
    "histogram_quantile", "label_values", "label_replace", "label_join", "abs", "ceil", "floor",
    "round", "clamp", "clamp_min", "clamp_max", "time", "timestamp", "vector", "scalar", "absent",
    "changes", "resets", "deriv", "predict_linear", "sort", "sort_desc", "avg_over_time",
    "max_over_time", "min_over_time", "sum_over_time", "count_over_time", "last_over_time",
    "inf", "nan", "le",
}  # fmt: skip
_GRAFANA_RANGES = ("$__rate_interval", "${__rate_interval}", "$__interval", "${__interval}")


@dataclass(frozen=True, slots=True)
class Query:
    panel: str
    ref: str
    expr: str

    def __str__(self) -> str:
        return f"panel {self.panel!r} ({self.ref}): {self.expr}"


def load(path: Path = DASHBOARD) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def queries(dashboard: Mapping[str, Any]) -> list[Query]:
    """Every target expression of every panel (rows' nested panels included)."""
    out = []
    panels = list(dashboard.get("panels", []))
    while panels:
        panel = panels.pop(0)
        panels += panel.get("panels", [])
        for target in panel.get("targets", []):
            if target.get("expr"):
                out.append(Query(panel.get("title", "?"), target.get("refId", "?"), target["expr"]))
    return out


def variables(dashboard: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The dashboard's query variables by name (``$node`` → its definition)."""
    found = dashboard.get("templating", {}).get("list", [])
    return {v["name"]: v for v in found if v.get("type") == "query"}


def variable_query(variable: Mapping[str, Any]) -> tuple[str, str]:
    """``label_values(METRIC, LABEL)`` of a query variable → (METRIC selector, LABEL)."""
    query = variable.get("query")
    text = query.get("query", "") if isinstance(query, Mapping) else str(query or "")
    match = re.fullmatch(r"\s*label_values\((.+),\s*([A-Za-z_]\w*)\s*\)\s*", text)
    if not match:
        raise ValueError(f"variable {variable.get('name')!r}: not label_values(...): {text!r}")
    return match.group(1).strip(), match.group(2)


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Grafana's substitution for one choice per variable (a regex value for ``=~``), and its
    range variables (a fixed ``1m``, what ``$__rate_interval`` is at a 15 s scrape)."""
    for name in _GRAFANA_RANGES:
        expr = expr.replace(name, "1m")
    for name, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    left = re.findall(r"\$\{?\w+", expr)
    if left:
        raise ValueError(f"no value for the dashboard variable(s) {sorted(set(left))} in {expr}")
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (selectors, not functions, labels or strings)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings out
    bare = re.sub(r"\{[^}]*\}", "{}", bare)  # label matchers out
    bare = re.sub(r"\[[^\]]*\]", "[]", bare)  # ranges out
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)\s*(\()?", bare):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _WORDS:
            continue
        names.add(word)
    return names


def unknown_metrics(expr: str, exported: Iterable[str]) -> list[str]:
    """One line per metric name of ``expr`` that is not among ``exported`` (what the targets
    export, ``_bucket``/``_count``/``_sum``/``_total`` samples included), with the nearest
    exported name when there is one."""
    known = set(exported)
    out = []
    for name in sorted(metric_names(expr) - known):
        near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]}?" if near else ""
        out.append(f"unknown metric {name} (no scraped target exports it{hint})")
    return out


Result = Mapping[str, Any]  # the JSON body of /api/v1/query


def verdict(query: Query, expr: str, body: Result, exported: Iterable[str]) -> str | None:
    """None when the expression has data; else what is wrong with it, in one line."""
    where = f"panel {query.panel!r} ({query.ref}): {expr}"
    if body.get("status") != "success":
        return f"{where}: error {body.get('errorType', '?')}: {body.get('error', body)}"
    result = body.get("data", {}).get("result", [])
    unknown = unknown_metrics(expr, exported)
    if not result:
        reasons = "; ".join(unknown) if unknown else "the metrics exist but nothing matches"
        return f"{where}: no series ({reasons})"
    values = [_value(r) for r in result]
    if all(math.isnan(v) for v in values):
        return f"{where}: {len(values)} series, every value NaN"
    return None


def _value(series: Mapping[str, Any]) -> float:
    raw = series.get("value") or (series.get("values") or [[0, "NaN"]])[-1]
    return float(raw[1])


def check_all(
    dashboard: Mapping[str, Any],
    choices: Iterable[Mapping[str, str]],
    run: Callable[[str], Result],
    exported: Iterable[str],
) -> list[str]:
    """Every query under every variable choice: the problems found (empty when all have
    data). ``run`` evaluates one expression (``/api/v1/query``)."""
    names = set(exported)
    problems = []
    for values in choices:
        for query in queries(dashboard):
            expr = substitute(query.expr, values)
            problem = verdict(query, expr, run(expr), names)
            if problem:
                problems.append(problem)
    return problems
