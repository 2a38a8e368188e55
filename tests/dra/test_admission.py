from __future__ import annotations

import asyncio
from typing import Any

from hami.api.admission import AdmissionRequest
from hami.core.config import SchedulerConfig
from hami.core.dra.translate import DraMode
from hami.core.mutate import MutateSettings
from hami.k8s.api import KubeAPIError
from hami.k8s.fake import FakeKube
from hami.scheduler.dra_admission import CLAIM_TEMPLATES, DraAdmission
from hami.scheduler.webhook import Webhook
from hami.vendors import registry


def _pod(name: str, mem: str = "1000", **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "team", "annotations": annotations},
        "spec": {
            "nodeSelector": {"hami.io/dra": "true"},
            "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpumem": mem}}}],
        },
    }


def _creates(kube: FakeKube) -> int:
    return sum(
        1 for verb, plural, _ in kube.calls if verb == "create" and plural == CLAIM_TEMPLATES.plural
    )


async def test_a_burst_of_one_shape_creates_its_template_once() -> None:
    kube = FakeKube()
    dra = DraAdmission(kube, DraMode())
    replies = await asyncio.gather(*(dra.review(f"u{i}", _pod(f"p{i}")) for i in range(20)))
    assert all(r.allowed and r.patch for r in replies)
    assert _creates(kube) == 1
    await dra.review("x", _pod("other", mem="2000"))
    assert _creates(kube) == 2


async def test_dry_run_creates_nothing_and_bad_input_is_denied() -> None:
    kube = FakeKube()
    dra = DraAdmission(kube, DraMode())
    assert (await dra.review("u", _pod("p"), dry_run=True)).allowed
    assert _creates(kube) == 0
    bad = await dra.review("u", _pod("p", **{"nvidia.com/use-gpuuuid": "GPU-1;drop"}))
    assert not bad.allowed and bad.code == 400 and "nvidia.com/use-gpuuuid" in bad.message
    forged = await dra.review("u", _pod("p", **{"hami.io/vgpu-devices-allocated": "x"}))
    assert not forged.allowed and forged.code == 403


async def test_api_failure_is_a_denial_that_says_so() -> None:
    kube = FakeKube()
    kube.fail_next("create", KubeAPIError("etcd is away", 500), CLAIM_TEMPLATES)
    reply = await DraAdmission(kube, DraMode()).review("u", _pod("p"))
    assert not reply.allowed and "cannot create ResourceClaimTemplate" in reply.message


async def test_webhook_sends_only_dra_pods_down_the_dra_path() -> None:
    kube = FakeKube()
    hook = Webhook(
        registry.build(SchedulerConfig()), MutateSettings(), dra=DraAdmission(kube, DraMode())
    )
    request = AdmissionRequest.from_json(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "namespace": "team",
                "operation": "CREATE",
                "object": _pod("p"),
            },
        }
    )
    reply = await hook.areview(request)
    assert reply.allowed
    assert any(op.path == "/spec/resourceClaims" for op in reply.patch)
    plain = {**_pod("q"), "spec": {**_pod("q")["spec"], "nodeSelector": {}}}
    request = AdmissionRequest.from_json(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": "u2", "namespace": "team", "operation": "CREATE", "object": plain},
        }
    )
    reply = await hook.areview(request)
    assert reply.allowed
    assert any(op.path == "/spec/schedulerName" for op in reply.patch)
