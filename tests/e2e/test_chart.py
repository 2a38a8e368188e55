"""The chart's rendered manifests are accepted by a real kube-apiserver (server-side dry-run)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError, AsyncClient, codecs
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from hami.chart_cli import CHART, load_keys, migrate
from hami.yamlio import load
from tests.chart.helm import NAMESPACE, VALUES, render
from tests.chart.test_values_check import HAMI_210

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="function")]


async def dry_run(kube: AsyncClient, name: str, docs: list[dict[str, Any]]) -> int:
    """Server-side dry-run apply of every document; the number applied."""
    with contextlib.suppress(ApiError):  # exists from an earlier test in the session
        await kube.create(Namespace(metadata=ObjectMeta(name=NAMESPACE)))
    for doc in docs:
        obj = codecs.from_dict(doc)
        namespace = NAMESPACE if doc["metadata"].get("namespace") else None
        try:
            await kube.apply(obj, namespace=namespace, field_manager="helm", dry_run=True)  # type: ignore[call-overload]  # lightkube's apply overloads take no namespace
        except ApiError as exc:
            raise AssertionError(
                f"{name}: {doc['kind']} {doc['metadata']['name']}: {exc}"
            ) from None
    return len(docs)


async def test_rendered_manifests_pass_server_side_dry_run(kube: AsyncClient) -> None:
    checked = 0
    for name, values in VALUES.items():
        checked += await dry_run(kube, name, render(values))
    assert checked > 80


async def test_a_migrated_hami_values_file_passes_server_side_dry_run(
    kube: AsyncClient, tmp_path: Path
) -> None:
    """HAMi's default values, converted by `hami chart migrate-values`, install."""
    migrated = migrate(load(HAMI_210.read_text()), load_keys(CHART)).values
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(migrated))
    docs = render(values)
    assert {d["kind"] for d in docs} >= {"Deployment", "DaemonSet", "Service"}
    assert await dry_run(kube, "migrated hami-2.10", docs) > 20
