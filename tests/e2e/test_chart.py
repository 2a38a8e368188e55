"""The chart's rendered manifests are accepted by a real kube-apiserver (server-side dry-run)."""

from __future__ import annotations

import contextlib

import pytest
from lightkube import ApiError, AsyncClient, codecs
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from tests.chart.helm import NAMESPACE, VALUES, render

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="function")]


async def test_rendered_manifests_pass_server_side_dry_run(kube: AsyncClient) -> None:
    with contextlib.suppress(ApiError):  # exists from an earlier test in the session
        await kube.create(Namespace(metadata=ObjectMeta(name=NAMESPACE)))
    checked = 0
    for name, values in VALUES.items():
        for doc in render(values):
            obj = codecs.from_dict(doc)
            namespace = NAMESPACE if doc["metadata"].get("namespace") else None
            try:
                await kube.apply(obj, namespace=namespace, field_manager="helm", dry_run=True)
            except ApiError as exc:
                raise AssertionError(
                    f"{name}: {doc['kind']} {doc['metadata']['name']}: {exc}"
                ) from None
            checked += 1
    assert checked > 80
