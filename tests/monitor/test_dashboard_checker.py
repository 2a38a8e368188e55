"""The dashboard query checker of the Prometheus e2e test (tests/monitor/dashboard.py), on
answers shaped like Prometheus's: an unknown metric is named, with the nearest exported name."""

from __future__ import annotations

from typing import Any

import pytest

from tests.monitor import dashboard as d

EXPORTED = {
    "hami_gpu_memory_limit_bytes",
    "hami_scheduler_request_seconds_bucket",
    "hami_scheduler_requests_total",
}


def answer(*values: str) -> dict[str, Any]:
    result = [{"metric": {}, "value": [0, v]} for v in values]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def board(*exprs: str) -> dict[str, Any]:
    targets = [{"refId": chr(65 + i), "expr": e} for i, e in enumerate(exprs)]
    return {
        "panels": [{"title": "P", "targets": targets}],
        "templating": {
            "list": [{"name": "node", "type": "query", "query": {"query": "label_values(m, node)"}}]
        },
    }


def test_metric_names_skip_functions_labels_and_keywords() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, route) (rate(hami_scheduler_request_seconds_bucket"
        '{route=~"filter|bind"}[5m]))) or on(instance) hami_scheduler_requests_total'
    )
    assert d.metric_names(expr) == {
        "hami_scheduler_request_seconds_bucket",
        "hami_scheduler_requests_total",
    }


def test_an_unknown_metric_is_named_with_the_nearest_exported_one() -> None:
    query = d.Query("GPU memory", "A", 'hami_gpu_memry_limit_bytes{node=~"$node"}')
    expr = d.substitute(query.expr, {"node": "n1"})
    problem = d.verdict(query, expr, answer(), EXPORTED)
    assert problem == (
        "panel 'GPU memory' (A): hami_gpu_memry_limit_bytes{node=~\"n1\"}: no series "
        "(unknown metric hami_gpu_memry_limit_bytes (no scraped target exports it; "
        "did you mean hami_gpu_memory_limit_bytes?))"
    )


def test_errors_empty_results_and_nan_are_problems_and_data_is_not() -> None:
    exprs = [
        "hami_gpu_memory_limit_bytes",  # data
        "sum(hami_scheduler_requests_total",  # Prometheus says: parse error
        'hami_gpu_memory_limit_bytes{node="elsewhere"}',  # known metric, no match
        "histogram_quantile(0.99, rate(hami_scheduler_request_seconds_bucket[5m]))",  # NaN
    ]
    answers = {
        exprs[0]: answer("1"),
        exprs[1]: {"status": "error", "errorType": "bad_data", "error": "unclosed left paren"},
        exprs[2]: answer(),
        exprs[3]: answer("NaN", "NaN"),
    }
    problems = d.check_all(board(*exprs), [{"node": "n1"}], answers.__getitem__, EXPORTED)
    assert len(problems) == 3
    assert "error bad_data: unclosed left paren" in problems[0]
    assert "no series (the metrics exist but nothing matches)" in problems[1]
    assert "2 series, every value NaN" in problems[2]


def test_variables_are_substituted_or_named() -> None:
    assert d.substitute('m{node=~"$node"}[$__rate_interval]', {"node": ".*"}) == 'm{node=~".*"}[1m]'
    assert d.substitute('m{node=~"${node}"}', {"node": "a|b"}) == 'm{node=~"a|b"}'
    with pytest.raises(ValueError, match=r"\$gpu"):
        d.substitute('m{uuid="$gpu"}', {"node": "n1"})
    assert d.variable_query(d.variables(board())["node"]) == ("m", "node")


def test_the_shipped_dashboard_reads_only_exported_families() -> None:
    from tests.monitor.test_dashboard import KNOWN

    samples = KNOWN | {f"{n}_{s}" for n in KNOWN for s in ("bucket", "count", "sum", "total")}
    for query in d.queries(d.load()):
        assert not d.unknown_metrics(query.expr, samples), query
