"""`hami explain`, `hami webui` and `hami sim` read the scheduler's device config from the chart's
ConfigMap in a live cluster (issue #18): the ConfigMap exactly as `helm template` renders it,
stored in a real kube-apiserver."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from lightkube import ApiError, AsyncClient, codecs
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod

from hami import devconfig
from hami.cluster.control_plane import LocalCluster
from hami.k8s.client import LightkubeAPI, load_kubeconfig
from hami.vendors import registry
from tests.chart.helm import NAMESPACE, RELEASE, VALUES, find, render

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="function")]

CONFIG_MAP = f"{RELEASE}-scheduler-device"
HAMI = str(Path(sys.executable).parent / "hami")


@pytest_asyncio.fixture(loop_scope="function")
async def chart_config_map(kube: AsyncClient) -> AsyncIterator[None]:
    """The all-vendors chart's device ConfigMap, removed afterwards (other modules learn)."""
    with contextlib.suppress(ApiError):
        await kube.create(Namespace(metadata=ObjectMeta(name=NAMESPACE)))
    manifest = find(render(VALUES["all-vendors"]), "ConfigMap", CONFIG_MAP)
    await kube.apply(codecs.from_dict(manifest), namespace=NAMESPACE, field_manager="helm")  # type: ignore[call-overload]  # lightkube's apply overloads take no namespace
    try:
        yield
    finally:
        await kube.delete(ConfigMap, CONFIG_MAP, namespace=NAMESPACE)


async def test_the_live_clusters_chart_config_map_is_the_config(
    k8s_cluster: LocalCluster, chart_config_map: None
) -> None:
    api = LightkubeAPI(load_kubeconfig(k8s_cluster.kubeconfig), user_agent="hami-test")
    resolved = await devconfig.from_cluster(api)
    assert resolved.source == f"ConfigMap {NAMESPACE}/{CONFIG_MAP}"
    enabled = set(registry.build(resolved.config))
    assert {"NVIDIA", "DCU", "MLU"} <= enabled and len(enabled) >= 13, enabled


async def test_explain_without_flags_knows_an_enabled_vendors_resource(
    k8s_cluster: LocalCluster, kube: AsyncClient, namespace: str, chart_config_map: None
) -> None:
    """A Hygon pod: known through the chart's config, not "no enabled vendor knows" it."""
    pod = codecs.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "dcu", "namespace": namespace},
            "spec": {
                "schedulerName": "hami-scheduler",
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "resources": {"limits": {"hygon.com/dcunum": "1"}},
                    }
                ],
            },
        }
    )
    await kube.create(pod)
    try:
        done = subprocess.run(
            [HAMI, "explain", f"{namespace}/dcu", "--kubeconfig", str(k8s_cluster.kubeconfig)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        await kube.delete(Pod, "dcu", namespace=namespace)
    said = done.stdout + done.stderr
    assert "no enabled vendor knows" not in said, said
    assert "cannot be placed" in said and done.returncode == 0, said
