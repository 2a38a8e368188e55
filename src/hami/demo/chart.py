"""The kube-scheduler configuration of the local stack, rendered by the Helm chart.

``charts/hami/templates/scheduler/configmap-kube-scheduler.yaml`` is the one source of the
KubeSchedulerConfiguration (profile, extender, verbs, ``managedResources``). The local stack
(``hami demo``, the scheduler's end-to-end tests, ``benchmarks/bench_scheduler.py``) renders that
template with the helm binary ``make helm-bin`` builds, with ``scheduler.leaderElect=false`` and
``scheduler.service.extenderTargetPort=<port>`` so the extender URL is
``https://127.0.0.1:<port>``; only the CA file and kube-scheduler's client certificate and key
are swapped (the chart's are the paths mounted in its pod).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hami import yamlio
from hami.cluster.paths import cache_root
from hami.cluster.pki import CertPair

CHART = Path(__file__).resolve().parents[3] / "charts" / "hami"
CONFIGMAP = "templates/scheduler/configmap-kube-scheduler.yaml"
HELM_POINTER = "helm-current.json"
RELEASE = "hami"
NAMESPACE = "hami-system"


class ChartError(RuntimeError):
    """helm or the chart is missing, or the rendering failed; the message says how to fix it."""


def helm_binary() -> Path:
    """The helm that ``make helm-bin`` built (``$HAMI_CACHE/helm-current.json``)."""
    pointer = cache_root() / HELM_POINTER
    if not pointer.exists():
        raise ChartError(f"helm is not built ({pointer} missing): run `make helm-bin`")
    binary = Path(json.loads(pointer.read_text())["dir"]) / "helm"
    if not os.access(binary, os.X_OK):
        raise ChartError(f"{binary} is not executable: run `make helm-bin`")
    return binary


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm with no user configuration or cache (nothing is fetched)."""
    env = {**os.environ, "HELM_CACHE_HOME": "/nonexistent", "HELM_CONFIG_HOME": "/nonexistent"}
    result = subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, env=env, timeout=120
    )
    if check and result.returncode != 0:
        raise ChartError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def kube_scheduler_config(values: Sequence[str] = ()) -> dict[str, Any]:
    """The KubeSchedulerConfiguration the chart renders with ``--set`` ``values``."""
    if not (CHART / "Chart.yaml").is_file():
        raise ChartError(f"the chart is not at {CHART} (run from a checkout of the repository)")
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--show-only", CONFIGMAP]
    for value in values:
        args += ["--set", value]
    (configmap,) = [d for d in yamlio.load_all(helm(*args).stdout) if d]
    return dict(yamlio.load(configmap["data"]["config.yaml"]))


def local_values(port: int) -> list[str]:
    """Chart values whose extender URL is ``https://127.0.0.1:<port>`` (one replica)."""
    return ["scheduler.leaderElect=false", f"scheduler.service.extenderTargetPort={port}"]


def vendor_values() -> list[str]:
    """Chart values enabling every vendor of ``devices:`` in values.yaml, so kube-scheduler's
    ``managedResources`` list (and send to the extender) every vendor's resources."""
    values = yamlio.load((CHART / "values.yaml").read_text(encoding="utf-8"))
    devices = values.get("devices") or {}
    return [
        f"devices.{name}.enabled=true"
        for name, section in devices.items()
        if isinstance(section, dict) and "enabled" in section
    ]


def managed_resources(config: dict[str, Any]) -> set[str]:
    """Every resource the configuration's extenders manage."""
    return {
        str(r["name"])
        for extender in config.get("extenders", [])
        for r in extender.get("managedResources") or []
    }


def local_scheduler_config(
    port: int, ca: Path, values: Sequence[str] = (), *, client: CertPair | None = None
) -> dict[str, Any]:
    """The chart's configuration for ``hami scheduler``'s extender listener on
    127.0.0.1:``port``, verified with ``ca``, kube-scheduler presenting the ``client``
    certificate (plus chart ``values``, e.g. :func:`vendor_values`). The stack's control plane
    supplies ``clientConnection`` and ``leaderElection``."""
    config = kube_scheduler_config([*local_values(port), *values])
    for extender in config.get("extenders", []):
        tls = extender.get("tlsConfig")
        if tls is None:
            continue
        tls["caFile"] = str(ca)
        if client is not None:
            tls["certFile"], tls["keyFile"] = str(client.cert), str(client.key)
        else:  # no client certificate to present
            tls.pop("certFile", None)
            tls.pop("keyFile", None)
    return config
