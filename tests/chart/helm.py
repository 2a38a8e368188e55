"""The chart under test and the helm binary `make helm-bin` built (hack/helm/build.sh); the
helm runner is :mod:`hami.demo.chart`'s, which renders the local stack's kube-scheduler config."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from hami.demo.chart import CHART, NAMESPACE, RELEASE, helm

__all__ = ["CHART", "NAMESPACE", "RELEASE", "ROOT", "VALUES", "helm"]

ROOT = Path(__file__).resolve().parents[2]
VALUES_DIR = Path(__file__).resolve().parent / "values"
VALUES = {
    "default": None,
    "webhook-off": VALUES_DIR / "webhook-off.yaml",
    "ha": VALUES_DIR / "ha.yaml",
    "all-vendors": VALUES_DIR / "all-vendors.yaml",
}


def template_args(values: Path | None, extra: Sequence[str] = ()) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, *extra]
    return args + (["-f", str(values)] if values else [])


def render(values: Path | None, extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every rendered document (hooks included)."""
    out = helm(*template_args(values, extra)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs: Sequence[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(
        f"no {kind} {name} in {[(d['kind'], d['metadata']['name']) for d in docs]}"
    )


def kube_scheduler_config(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The KubeSchedulerConfiguration the chart renders (the one source of it)."""
    cm = find(docs, "ConfigMap", f"{RELEASE}-kube-scheduler")
    return dict(yaml.safe_load(cm["data"]["config.yaml"]))
