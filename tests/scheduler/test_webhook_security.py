"""`/webhook` refuses what would let a tenant decide instead of the scheduler (docs/security.md):
the AdmissionReview answer carries the denial, its code and the message."""

from __future__ import annotations

from typing import Any

import pytest

from hami.api.admission import AdmissionRequest
from hami.core.config import SchedulerConfig
from hami.core.mutate import MutateSettings
from hami.scheduler.webhook import Webhook
from hami.vendors.registry import build

pytestmark = pytest.mark.security


def review(pod: dict[str, Any]) -> dict[str, Any]:
    webhook = Webhook(build(SchedulerConfig()), MutateSettings())
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u1", "namespace": "tenant", "operation": "CREATE", "object": pod},
    }
    response = webhook.review(AdmissionRequest.from_json(body)).review("admission.k8s.io/v1")
    answer: dict[str, Any] = response["response"]  # type: ignore[assignment]
    return answer


def gpu_pod(**extra: Any) -> dict[str, Any]:
    container = {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": 1}}}
    return {
        "metadata": {"name": "p", **extra.pop("meta", {})},
        "spec": {"containers": [container], **extra},
    }


def test_forged_allocation_is_denied_with_403() -> None:
    pod = gpu_pod(
        meta={"annotations": {"hami.io/vgpu-devices-to-allocate": "GPU-0,NVIDIA,999999,100:;"}}
    )
    answer = review(pod)
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 403
    assert "hami.io/vgpu-devices-to-allocate are written only by" in answer["status"]["message"]


def test_bypassing_pods_are_denied() -> None:
    for pod in (gpu_pod(nodeName="gpu-1"), gpu_pod(schedulerName="my-scheduler")):
        answer = review(pod)
        assert answer["allowed"] is False, pod
        assert "hami.io/webhook=ignore" in answer["status"]["message"]


def test_isolation_env_is_denied() -> None:
    pod = gpu_pod()
    pod["spec"]["containers"][0]["env"] = [{"name": "CUDA_DISABLE_CONTROL", "value": "true"}]
    answer = review(pod)
    assert answer["allowed"] is False
    assert answer["status"]["message"].startswith("container c sets CUDA_DISABLE_CONTROL")


def test_a_plain_gpu_pod_is_still_routed_to_our_scheduler() -> None:
    answer = review(gpu_pod())
    assert answer["allowed"] is True
    assert answer["patchType"] == "JSONPatch"


def test_isolation_env_from_value_from_is_denied() -> None:
    pod = gpu_pod()
    pod["spec"]["containers"][0]["env"] = [
        {
            "name": "CUDA_DEVICE_MEMORY_LIMIT_0",
            "valueFrom": {"configMapKeyRef": {"name": "mine", "key": "limit"}},
        }
    ]
    answer = review(pod)
    assert answer["allowed"] is False
    assert "CUDA_DEVICE_MEMORY_LIMIT_0" in answer["status"]["message"]


@pytest.mark.parametrize(
    "prefix", [None, "", "C", "CUDA_", "CUDA_DEVICE_MEMORY_LIMIT", "CUDA_DEVICE_SM_LIMIT_1"]
)
def test_env_from_without_a_safe_prefix_is_denied(prefix: str | None) -> None:
    """An envFrom source's keys are not read (the tenant can change them after admission):
    only a prefix that no isolation variable starts with keeps them out."""
    source: dict[str, object] = {"configMapRef": {"name": "app"}}
    if prefix is not None:
        source["prefix"] = prefix
    pod = gpu_pod()
    pod["spec"]["containers"][0]["envFrom"] = [source]
    answer = review(pod)
    assert answer["allowed"] is False
    message = answer["status"]["message"]
    assert message.startswith("container c takes env from configMapRef app without a prefix")
    assert "hami.io/webhook=ignore" in message


@pytest.mark.parametrize("prefix", ["APP_", "CUDA_VISIBLE", "CUDA_DEVICE_MEMORY_LIMIT_X"])
def test_env_from_with_a_safe_prefix_is_allowed(prefix: str) -> None:
    pod = gpu_pod()
    pod["spec"]["containers"][0]["envFrom"] = [{"secretRef": {"name": "s"}, "prefix": prefix}]
    assert review(pod)["allowed"] is True


def test_env_from_in_a_container_without_devices_is_left_alone() -> None:
    pod = gpu_pod()
    pod["spec"]["containers"].append(
        {"name": "side", "image": "busybox", "envFrom": [{"configMapRef": {"name": "app"}}]}
    )
    assert review(pod)["allowed"] is True
