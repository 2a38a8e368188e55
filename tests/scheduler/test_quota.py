"""Namespace GPU quotas (wire-format.md §7.2): the ResourceQuota informer feeds the room that the
webhook and the filter check; usage comes from the cache's placed pods."""

from __future__ import annotations

from typing import Any

from hami.api.admission import AdmissionRequest
from hami.api.types import ContainerDevice
from hami.core.accounting import PlacedPod
from hami.core.config import NvidiaConfig, SchedulerConfig
from hami.core.quota import QuotaBook, quota_specs
from hami.core.vendor import QuotaRoom
from hami.k8s.api import RESOURCE_QUOTAS
from tests.scheduler.harness import container, gpu_node, gpu_pod, running


def quota(name: str, namespace: str, **hard: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"hard": {f"limits.nvidia.com/{k}": v for k, v in hard.items()}},
    }


def placed(key: str, *containers: tuple[int, int], init_count: int = 0) -> PlacedPod:
    devices = tuple((ContainerDevice("GPU-a", "NVIDIA", m, c),) for m, c in containers)
    return PlacedPod(key=key, node="n1", devices={"NVIDIA": devices}, init_count=init_count)


def book(memory_factor: int = 1) -> QuotaBook:
    return QuotaBook(quota_specs(SchedulerConfig(nvidia=NvidiaConfig(memory_factor=memory_factor))))


def test_rooms_subtract_collapsed_usage_from_the_smallest_limit() -> None:
    quotas = book()
    quotas.replace(
        [quota("a", "team", gpumem="10000", gpucores="300"), quota("b", "team", gpumem="8000")]
    )
    pods = [placed("team/p", (3000, 30)), placed("team/q", (4000, 20), (1000, 10), init_count=1)]
    # q: init 4000/20 and app 1000/10 on one device collapse to max → 4000/20
    assert quotas.rooms("team", pods) == {"NVIDIA": QuotaRoom(memory=1000, cores=250)}
    assert quotas.rooms("other", pods) == {}


def test_untracked_keys_deletes_and_memory_factor() -> None:
    quotas = book(memory_factor=2)
    unrelated = quota("x", "team", gpu="4")  # a count resource is not a quota dimension here
    quotas.replace([unrelated, quota("m", "team", gpumem="1000")])
    assert quotas.rooms("team", []) == {"NVIDIA": QuotaRoom(memory=2000, cores=None)}
    quotas.apply("DELETED", quota("m", "team", gpumem="1000"))
    assert not quotas.limited("team")
    quotas.apply("ADDED", quota("z", "team", gpucores="0"))
    assert quotas.rooms("team", []) == {"NVIDIA": QuotaRoom(memory=None, cores=0)}
    assert quotas.lines(lambda ns: []) == [("team", "nvidia.com/gpucores", 0, 0)]


async def test_filter_honours_the_namespace_quota() -> None:
    async with running() as h:
        await h.add_node(gpu_node("n1", gpus=2))
        await h.kube.create(RESOURCE_QUOTAS, quota("gpu", "team", gpumem="5000"))
        await h.until(lambda: h.service.quota.limited("team"))
        await h.add_pod(gpu_pod("first", namespace="team", gpu=1, gpumem=3000, gpucores=10))
        assert await h.schedule("first", "team") == "n1"
        await h.add_pod(gpu_pod("second", namespace="team", gpu=1, gpumem=3000, gpucores=10))
        assert await h.schedule("second", "team") is None
        failed = (await h.filter("second", "team"))["FailedNodes"]
        assert "ResourceQuotaNotFit" in failed["n1"]
        await h.add_pod(gpu_pod("elsewhere", gpu=1, gpumem=3000, gpucores=10))
        # another namespace is not limited (filter only: n1's lock is held by "first")
        assert (await h.filter("elsewhere"))["NodeNames"] == ["n1"]
        await h.kube.delete(RESOURCE_QUOTAS, "gpu", "team")
        await h.until(lambda: not h.service.quota.limited("team"))
        assert (await h.filter("second", "team"))["NodeNames"] == ["n1"]


async def test_webhook_denies_a_pod_over_the_room() -> None:
    async with running() as h:
        await h.kube.create(RESOURCE_QUOTAS, quota("gpu", "team", gpucores="50"))
        await h.until(lambda: h.service.quota.limited("team"))
        pod = gpu_pod("big", namespace="team")
        pod["spec"]["containers"] = [container(gpu=2, gpumem=1000, gpucores=30)]
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "operation": "CREATE",
                "namespace": "team",
                "object": pod,
            },
        }
        response = h.service.webhook.review(AdmissionRequest.from_json(review))
        assert not response.allowed
        assert "exceeding resource quota" in response.message
