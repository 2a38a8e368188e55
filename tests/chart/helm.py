"""The chart under test and the helm binary `make helm-bin` built (hack/helm/build.sh)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "hami"
VALUES_DIR = Path(__file__).resolve().parent / "values"
VALUES = {
    "default": None,
    "webhook-off": VALUES_DIR / "webhook-off.yaml",
    "ha": VALUES_DIR / "ha.yaml",
    "all-vendors": VALUES_DIR / "all-vendors.yaml",
}
RELEASE = "hami"
NAMESPACE = "hami-system"


def helm_binary() -> Path:
    """The cached helm; a missing build is a failure with the remedy, never a skip."""
    cache = Path(os.environ.get("HAMI_CACHE", Path.home() / ".cache" / "hami"))
    pointer = cache / "helm-current.json"
    if not pointer.exists():
        raise AssertionError(f"helm is not built ({pointer} missing): run `make helm-bin`")
    binary = Path(json.loads(pointer.read_text())["dir"]) / "helm"
    if not os.access(binary, os.X_OK):
        raise AssertionError(f"{binary} is not executable: run `make helm-bin`")
    return binary


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELM_CACHE_HOME": "/nonexistent", "HELM_CONFIG_HOME": "/nonexistent"}
    result = subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, env=env, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


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
