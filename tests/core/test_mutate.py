"""The admission decision (wire-format.md §3.1)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hami.config import load_config
from hami.core.config import NvidiaConfig, SchedulerConfig
from hami.core.mutate import MutateSettings, Verdict, mutate
from hami.core.vendor import QuotaRoom, Vendor
from hami.vendors.ascend import AscendVendor
from hami.vendors.registry import build

SETTINGS = MutateSettings()


def vendors(**nvidia: Any) -> dict[str, Vendor]:
    return build(SchedulerConfig(nvidia=NvidiaConfig(**nvidia)))


def pod(
    *containers: dict[str, Any], init: tuple[dict[str, Any], ...] = (), **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"containers": list(containers), **spec}
    if init:
        body["initContainers"] = list(init)
    return {"metadata": {"name": "p", "namespace": "ns"}, "spec": body}


def ctr(name: str = "cuda", **limits: object) -> dict[str, Any]:
    return {
        "name": name,
        "image": "x",
        "resources": {"limits": {f"nvidia.com/{k}": v for k, v in limits.items()}},
    }


def ops(verdict: Verdict) -> dict[str, object]:
    assert verdict.allowed, verdict.message
    return {op.path: op.value for op in verdict.patch}


def test_worked_example_routes_to_our_scheduler_without_core_default() -> None:
    verdict = mutate(pod(ctr(gpu=1, gpumem=3000, gpucores=30)), vendors(), SETTINGS)
    assert ops(verdict) == {"/spec/schedulerName": "hami-scheduler"}
    assert verdict.uses_devices


def test_bare_gpu_request_becomes_exclusive() -> None:
    patch = ops(mutate(pod(ctr(gpu=2)), vendors(), SETTINGS))
    assert patch["/spec/containers/0/resources"] == {
        "limits": {"nvidia.com/gpu": "2", "nvidia.com/gpucores": "100"}
    }


def test_memory_only_request_gets_default_gpu_count() -> None:
    patch = ops(mutate(pod(ctr(gpumem=1000)), vendors(), SETTINGS))
    limits = patch["/spec/containers/0/resources"]["limits"]  # type: ignore[index]
    assert limits == {"nvidia.com/gpumem": "1000", "nvidia.com/gpu": "1"}


def test_pod_without_devices_is_left_alone_but_gets_env_when_configured() -> None:
    plain = pod({"name": "web", "image": "nginx"})
    assert mutate(plain, vendors(), SETTINGS) == Verdict(allowed=True)
    patch = ops(mutate(plain, vendors(overwrite_env=True), SETTINGS))
    assert patch == {
        "/spec/containers/0/env": [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "none"}]
    }


def test_priority_env_appended_to_existing_env() -> None:
    container = ctr(gpu=1, gpumem=100, priority=1)
    container["env"] = [{"name": "A", "value": "1"}]
    patch = ops(mutate(pod(container), vendors(), SETTINGS))
    assert patch["/spec/containers/0/env/-"] == {"name": "CUDA_TASK_PRIORITY", "value": "1"}


def test_init_containers_are_visited_first() -> None:
    verdict = mutate(pod(ctr("app", gpu=1), init=(ctr("setup", gpu=1),)), vendors(), SETTINGS)
    paths = [op.path for op in verdict.patch]
    assert paths == [
        "/spec/initContainers/0/resources",
        "/spec/containers/0/resources",
        "/spec/schedulerName",
    ]


def test_runtime_class_set_when_configured_and_absent() -> None:
    settings = MutateSettings(runtime_class_name="nvidia")
    assert (
        ops(mutate(pod(ctr(gpu=1, gpumem=10)), vendors(), settings))["/spec/runtimeClassName"]
        == "nvidia"
    )
    kept = pod(ctr(gpu=1, gpumem=10), runtimeClassName="mine")
    assert "/spec/runtimeClassName" not in ops(mutate(kept, vendors(), settings))


def test_privileged_container_with_gpu_is_denied() -> None:
    container = ctr("trainer", gpu=1)
    container["securityContext"] = {"privileged": True}
    verdict = mutate(pod(container), vendors(), SETTINGS)
    assert not verdict.allowed
    assert verdict.message == "container trainer is privileged"


def test_privileged_container_without_gpu_is_fine() -> None:
    sidecar = {"name": "s", "image": "x", "securityContext": {"privileged": True}}
    assert mutate(pod(sidecar, ctr(gpu=1, gpumem=5)), vendors(), SETTINGS).allowed


def test_pod_with_node_name_is_denied() -> None:
    verdict = mutate(pod(ctr(gpu=1), nodeName="n1"), vendors(), SETTINGS)
    assert not verdict.allowed
    assert verdict.message.startswith("pod has node assigned (n1)")
    assert "hami.io/webhook=ignore" in verdict.message


def test_no_containers_denied() -> None:
    verdict = mutate(pod(), vendors(), SETTINGS)
    assert (verdict.allowed, verdict.code, verdict.message) == (False, 400, "pod has no containers")


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"gpumem-percentage": 150}, "nvidia.com/gpumem-percentage"),
        ({"gpu": 1, "gpucores": 101}, "nvidia.com/gpucores"),
        ({"gpu": 1, "gpumem": "lots"}, "nvidia.com/gpumem"),
    ],
)
def test_invalid_request_denied_naming_container_and_resource(
    limits: dict[str, object], field: str
) -> None:
    verdict = mutate(pod(ctr("worker", **limits)), vendors(), SETTINGS)
    assert not verdict.allowed
    assert verdict.code == 400
    assert "container worker" in verdict.message
    assert field in verdict.message


def test_other_scheduler_left_unchanged_without_devices() -> None:
    plain = {"name": "web", "image": "x"}
    verdict = mutate(pod(plain, schedulerName="volcano"), vendors(), SETTINGS)
    assert verdict.allowed and not verdict.patch
    assert "different scheduler" in verdict.message


@pytest.mark.security
def test_device_pod_with_another_scheduler_is_denied() -> None:
    verdict = mutate(pod(ctr(gpu=1), schedulerName="volcano"), vendors(), SETTINGS)
    assert not verdict.allowed
    assert "names scheduler 'volcano'" in verdict.message
    assert "hami.io/webhook=ignore" in verdict.message
    # an invalid request under another scheduler is refused for the scheduler, not the value
    bad = mutate(pod(ctr(gpu=1, gpucores=500), schedulerName="volcano"), vendors(), SETTINGS)
    assert not bad.allowed and "names scheduler" in bad.message


def test_default_scheduler_overwritten_unless_disabled() -> None:
    body = pod(ctr(gpu=1, gpumem=1), schedulerName="default-scheduler")
    assert ops(mutate(body, vendors(), SETTINGS))["/spec/schedulerName"] == "hami-scheduler"
    keep = MutateSettings(force_overwrite_default_scheduler=False)
    verdict = mutate(body, vendors(), keep)
    assert not verdict.allowed  # kept on default-scheduler, it would bypass ours
    assert "'default-scheduler'" in verdict.message


@pytest.mark.security
@pytest.mark.parametrize(
    "key",
    [
        "hami.io/vgpu-devices-to-allocate",
        "hami.io/vgpu-devices-allocated",
        "hami.io/vgpu-node",
        "hami.io/vgpu-time",
        "hami.io/bind-time",
        "hami.io/bind-phase",
        "hami.io/vgpu-mig-allocations",
        "hami.io/dcu-devices-to-allocate",
        "hami.io/cambricon-mlu-devices-allocated",
        "hami.io/kunlun-allocated",
        "metax-tech.com/gpu-devices-allocated",
        "AWS_NEURON_IDS",
    ],
)
def test_allocation_annotations_are_denied_on_every_pod(key: str) -> None:
    for body in (pod(ctr(gpu=1)), pod({"name": "web", "image": "x"})):
        body["metadata"]["annotations"] = {key: "GPU-0,NVIDIA,999999,100:;", "a": "b"}
        verdict = mutate(body, vendors(), SETTINGS)
        assert not verdict.allowed
        assert verdict.message.startswith(f"annotation(s) {key} are written only by the hami")
    ignored = pod(ctr(gpu=1), nodeName="n1")
    ignored["metadata"]["labels"] = {"hami.io/webhook": "ignore"}
    ignored["metadata"]["annotations"] = {key: "x"}
    assert not mutate(ignored, vendors(), SETTINGS).allowed


@pytest.mark.security
def test_user_hints_and_uuid_filters_stay_allowed() -> None:
    body = pod(ctr(gpu=1))
    body["metadata"]["annotations"] = {
        "hami.io/node-scheduler-policy": "spread",
        "hami.io/gpu-scheduler-policy": "binpack",
        "hami.io/use-xpu-uuid": "u",
        "hami.io/no-use-xpu-uuid": "v",
        "nvidia.com/use-gpuuuid": "GPU-0",
    }
    assert mutate(body, vendors(), SETTINGS).allowed


@pytest.mark.security
@pytest.mark.parametrize(
    "name",
    [
        "CUDA_DISABLE_CONTROL",
        "CUDA_DEVICE_MEMORY_LIMIT",
        "CUDA_DEVICE_MEMORY_LIMIT_0",
        "CUDA_DEVICE_MEMORY_LIMIT_15",
        "CUDA_DEVICE_SM_LIMIT",
        "CUDA_DEVICE_SM_LIMIT_1",
        "CUDA_DEVICE_MEMORY_SHARED_CACHE",
        "GPU_CORE_UTILIZATION_POLICY",
        "CUDA_TASK_PRIORITY",
    ],
)
def test_isolation_env_in_a_device_container_is_denied(name: str) -> None:
    container = ctr("trainer", gpu=1, gpumem=1000)
    container["env"] = [{"name": "A", "value": "1"}, {"name": name, "value": "true"}]
    verdict = mutate(pod(container), vendors(), SETTINGS)
    assert not verdict.allowed
    assert verdict.message.startswith(f"container trainer sets {name}: the device plugin")
    # the same variable in a container without devices is none of our business
    plain = {"name": "web", "image": "x", "env": [{"name": name, "value": "true"}]}
    assert mutate(pod(plain, ctr(gpu=1)), vendors(), SETTINGS).allowed


@pytest.mark.security
def test_env_the_webhook_sets_itself_passes_a_reinvocation() -> None:
    container = ctr("c", gpu=1, priority=0)
    first = mutate(pod(container), vendors(gpu_core_policy="force"), SETTINGS)
    env = ops(first)["/spec/containers/0/env"]
    assert {"name": "CUDA_TASK_PRIORITY", "value": "0"} in env  # type: ignore[operator]
    again = mutate(
        pod({**container, "env": env}, schedulerName="hami-scheduler"),
        vendors(gpu_core_policy="force"),
        SETTINGS,
    )
    assert again.allowed, again.message
    forged = [{"name": "GPU_CORE_UTILIZATION_POLICY", "value": "disable"}]
    assert not mutate(
        pod({**container, "env": forged}), vendors(gpu_core_policy="force"), SETTINGS
    ).allowed


def test_other_names_and_ld_preload_stay_allowed() -> None:
    container = ctr("c", gpu=1)
    container["env"] = [
        {"name": "LD_PRELOAD", "value": "/usr/lib/libjemalloc.so"},
        {"name": "CUDA_VISIBLE_DEVICES", "value": "0"},
        {"name": "CUDA_DEVICE_MEMORY_LIMITS", "value": "x"},
        {"name": "LIBCUDA_LOG_LEVEL", "value": "3"},
    ]
    assert mutate(pod(container), vendors(), SETTINGS).allowed


def test_ignore_label_skips_everything() -> None:
    body = pod(ctr(gpu=1), nodeName="n1")
    body["metadata"]["labels"] = {"hami.io/webhook": "ignore"}
    verdict = mutate(body, vendors(), SETTINGS)
    assert verdict.allowed and not verdict.patch


def test_quota_counts_max_of_init_and_sum_of_app() -> None:
    body = pod(
        ctr("a", gpu=1, gpumem=3000, gpucores=10),
        ctr("b", gpu=1, gpumem=3000, gpucores=10),
        init=(ctr("i", gpu=1, gpumem=5000, gpucores=10),),
    )
    assert mutate(body, vendors(), SETTINGS, quota={"NVIDIA": QuotaRoom(memory=6000)}).allowed
    denied = mutate(body, vendors(), SETTINGS, quota={"NVIDIA": QuotaRoom(memory=5999)})
    assert not denied.allowed and "exceeding resource quota" in denied.message
    cores = mutate(body, vendors(), SETTINGS, quota={"NVIDIA": QuotaRoom(cores=10)})
    assert not cores.allowed and "cores" in cores.message
    assert mutate(body, vendors(), SETTINGS, quota={"AMD": QuotaRoom(memory=1)}).allowed


# --- pod-level vendor admission (admit_container_in_pod / pod_admission) ------------------------------


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "vendors"


def all_vendors() -> dict[str, Vendor]:
    return build(load_config(EXAMPLES / "config.yaml"))


def vendor_pod(*containers: dict[str, Any], annotations: dict[str, str] | None = None) -> Any:
    body = pod(*containers)
    if annotations is not None:
        body["metadata"]["annotations"] = annotations
    return body


def limits(values: dict[str, object]) -> dict[str, Any]:
    return {"name": "app", "resources": {"limits": values}}


NPU = "huawei.com/Ascend910B2"


def npu(memory: int, core: int = 0) -> dict[str, Any]:
    values: dict[str, object] = {NPU: 1, f"{NPU}-memory": memory}
    if core:
        values[f"{NPU}-core"] = core
    return {"name": "app", "resources": {"limits": values}}


def test_ascend_hard_split_rounds_memory_up_to_a_template() -> None:
    patch = ops(mutate(vendor_pod(npu(10000)), all_vendors(), SETTINGS))
    assert patch["/spec/containers/0/resources"] == {"limits": {NPU: "1", f"{NPU}-memory": "16384"}}


def test_ascend_hami_core_mode_comes_from_the_pod_annotation() -> None:
    soft = {"huawei.com/vnpu-mode": "hami-core"}
    patch = ops(mutate(vendor_pod(npu(10000), annotations=soft), all_vendors(), SETTINGS))
    assert "/spec/containers/0/resources" not in patch  # memory kept as asked
    verdict = mutate(vendor_pod(npu(10000, core=20)), all_vendors(), SETTINGS)
    assert not verdict.allowed and verdict.code == 400
    assert "hami-core mode" in verdict.message
    assert ops(mutate(vendor_pod(npu(10000, core=20), annotations=soft), all_vendors(), SETTINGS))


def test_ascend_runtime_class_is_set_when_configured() -> None:
    vendors = all_vendors()
    ascend = vendors["Ascend910B2"]
    assert isinstance(ascend, AscendVendor)
    vendors["Ascend910B2"] = replace(
        ascend, config=replace(ascend.config, runtime_class_name="ascend")
    )
    patch = ops(mutate(vendor_pod(npu(65536)), vendors, SETTINGS))
    assert patch["/spec/runtimeClassName"] == "ascend"
    plain = ops(mutate(vendor_pod(limits({"mthreads.com/vgpu": 1})), vendors, SETTINGS))
    assert "/spec/runtimeClassName" not in plain


def test_mthreads_multi_gpu_writes_request_gpu_num() -> None:
    verdict = mutate(vendor_pod(limits({"mthreads.com/vgpu": 2})), all_vendors(), SETTINGS)
    patch = ops(verdict)
    assert patch["/metadata/annotations"] == {"mthreads.com/request-gpu-num": "2"}
    existing = vendor_pod(limits({"mthreads.com/vgpu": 3}), annotations={"a": "b"})
    patch = ops(mutate(existing, all_vendors(), SETTINGS))
    assert patch["/metadata/annotations/mthreads.com~1request-gpu-num"] == "3"
    single = ops(mutate(vendor_pod(limits({"mthreads.com/vgpu": 1})), all_vendors(), SETTINGS))
    assert not any(p.startswith("/metadata") for p in single)


def test_metax_sgpu_pod_rules() -> None:
    sgpu = limits({"metax-tech.com/sgpu": 1, "metax-tech.com/vcore": 30})
    patch = ops(mutate(vendor_pod(sgpu), all_vendors(), SETTINGS))
    assert patch["/metadata/annotations"] == {"metax-tech.com/sgpu-qos-policy": "best-effort"}
    online = {"metax-tech.com/sgpu-app-class": "online"}
    patch = ops(mutate(vendor_pod(sgpu, annotations=online), all_vendors(), SETTINGS))
    assert not any(p.startswith("/metadata") for p in patch)
    bad = mutate(
        vendor_pod(sgpu, annotations={"metax-tech.com/sgpu-app-class": "batch"}),
        all_vendors(),
        SETTINGS,
    )
    assert not bad.allowed and "must be online or offline" in bad.message
    two = limits({"metax-tech.com/sgpu": 2})
    denied = mutate(vendor_pod(two, annotations=online), all_vendors(), SETTINGS)
    assert not denied.allowed and "exactly 1 sGPU" in denied.message
    qos = {"metax-tech.com/sgpu-qos-policy": "greedy"}
    assert not mutate(vendor_pod(sgpu, annotations=qos), all_vendors(), SETTINGS).allowed
    nvidia_only = ops(mutate(vendor_pod(ctr(gpu=1)), all_vendors(), SETTINGS))
    assert not any(p.startswith("/metadata") for p in nvidia_only)
