"""Routes: webhook over HTTP, health, readiness, metrics, error mapping."""

from __future__ import annotations

from hami.api.admission import decode_patch

from .harness import container, gpu_node, gpu_pod, running


def review(pod: dict[str, object], version: str = "admission.k8s.io/v1beta1") -> dict[str, object]:
    return {
        "apiVersion": version,
        "kind": "AdmissionReview",
        "request": {"uid": "u-1", "namespace": "team", "operation": "CREATE", "object": pod},
    }


async def test_webhook_mutates_and_answers_in_the_request_version() -> None:
    async with running(start=False) as h:
        pod = gpu_pod("p", container(gpu=1))
        del pod["spec"]["schedulerName"]
        body = (await h.client.post("/webhook", json=review(pod))).json()
        assert body["apiVersion"] == "admission.k8s.io/v1beta1"
        response = body["response"]
        assert response["uid"] == "u-1" and response["allowed"] is True
        paths = {op["path"]: op["value"] for op in decode_patch(response["patch"])}
        assert paths["/spec/schedulerName"] == "hami-scheduler"
        resources = paths["/spec/containers/0/resources"]
        assert isinstance(resources, dict)
        assert resources["limits"]["nvidia.com/gpucores"] == "100"


async def test_webhook_denies_invalid_request_naming_container_and_namespace() -> None:
    async with running(start=False) as h:
        pod = gpu_pod("p", container("trainer", gpu=1, gpumem="-5"))
        del pod["metadata"]["namespace"]
        body = (
            await h.client.post("/webhook/mutating", json=review(pod, "admission.k8s.io/v1"))
        ).json()
        response = body["response"]
        assert response["allowed"] is False
        assert response["status"]["code"] == 400
        message = response["status"]["message"]
        assert "pod team/p container trainer" in message and "nvidia.com/gpumem" in message


async def test_webhook_rejects_garbage_with_400() -> None:
    async with running(start=False) as h:
        assert (await h.client.post("/webhook", content=b"{")).status_code == 400
        assert (await h.client.post("/webhook", json={"request": {}})).status_code == 400


async def test_health_readiness_and_metrics() -> None:
    async with running(start=False, sync_wait=0.01) as h:
        assert (await h.client.get("/healthz")).status_code == 200
        assert (await h.client.get("/readyz")).status_code == 503
        body = {"Pod": gpu_pod("p"), "NodeNames": ["n1"]}
        result = (await h.client.post("/filter", json=body)).json()
        assert result["Error"] == "scheduler cache not synced yet"
    async with running() as h:
        await h.add_node(gpu_node("n1"))
        await h.add_pod(gpu_pod("p"))
        await h.settle()
        assert (await h.client.get("/readyz")).status_code == 200
        assert await h.schedule("p") == "n1"
        text = (await h.client.get("/metrics")).text
        assert (
            'hami_gpu_memory_allocated_bytes{device_cores="100",device_index="0",device_type="NVIDIA-Tesla V100-PCIE-32GB",device_uuid="GPU-n1-0",node="n1",zone="vGPU"} 3.145728e+09'
            in text
        )
        assert 'hami_scheduler_requests_total{outcome="placed",route="filter"} 1.0' in text


async def test_extender_errors_are_200_with_error_text() -> None:
    async with running() as h:
        bad = await h.client.post("/filter", content=b"not json")
        assert bad.status_code == 200 and bad.json()["Error"].startswith("bad request")
        missing = (await h.client.post("/filter", json={"NodeNames": ["a"]})).json()
        assert missing["Error"] == "extender args missing pod"
        assert (
            (await h.client.post("/bind", json={"PodName": "x"}))
            .json()["Error"]
            .startswith("bad request")
        )
