"""The NVIDIA vendor module: inventory, admission defaults, annotations."""

from __future__ import annotations

import pytest

from hami.api import keys
from hami.api.errors import WireFormatError
from hami.api.types import ContainerDevice, MigPlacement
from hami.core.config import NvidiaConfig, SchedulerConfig
from hami.core.errors import RequestInvalid
from hami.core.model import MigReservation
from hami.core.vendor import Pick
from hami.vendors import registry
from hami.vendors.nvidia import NvidiaVendor

V100 = (
    '[{"id":"GPU-00552014-5c87-89ac-b1a6-7b53aa24b0ec","count":10,"devmem":32768,"devcore":100,'
    '"type":"NVIDIA-Tesla V100-PCIE-32GB","mode":"hami-core","health":true},'
    '{"id":"GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448","index":1,"count":10,"devmem":32768,'
    '"devcore":100,"type":"NVIDIA-Tesla V100-PCIE-32GB","mode":"hami-core","health":true}]'
)


def limits(**values: object) -> dict[str, object]:
    return {
        "name": "c",
        "resources": {
            "limits": {k.replace("__", "/").replace("_", "."): v for k, v in values.items()}
        },
    }


def test_registry_has_nvidia() -> None:
    assert set(registry.build(SchedulerConfig())) == {"NVIDIA"}


def test_node_devices_decode_registration_and_pair_scores() -> None:
    score = '[{"uuid":"GPU-00552014-5c87-89ac-b1a6-7b53aa24b0ec","score":{"GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448":200}}]'
    devices = NvidiaVendor().node_devices({keys.NVIDIA_REGISTER: V100, keys.NVIDIA_SCORE: score})
    assert [(d.uuid, d.index, d.memory, d.vendor, d.mode) for d in devices] == [
        ("GPU-00552014-5c87-89ac-b1a6-7b53aa24b0ec", 0, 32768, "NVIDIA", "hami-core"),
        ("GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448", 1, 32768, "NVIDIA", "hami-core"),
    ]
    assert devices[0].pair_scores == {"GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448": 200}
    assert devices[1].pair_scores == {}


def test_node_without_registration_has_no_devices() -> None:
    assert NvidiaVendor().node_devices({}) == ()


def test_malformed_registration_names_the_key() -> None:
    with pytest.raises(WireFormatError, match=keys.NVIDIA_REGISTER):
        NvidiaVendor().node_devices({keys.NVIDIA_REGISTER: "[{"})


def test_admission_bare_gpu_is_exclusive() -> None:
    admission = NvidiaVendor().admit_container(limits(nvidia_com__gpu=1), "pod/c")
    assert admission.uses_vendor
    assert admission.container["resources"]["limits"]["nvidia.com/gpucores"] == 100  # type: ignore[index]


@pytest.mark.parametrize(
    "extra",
    [
        {"nvidia.com/gpumem": 3000},
        {"nvidia.com/gpumem-percentage": 50},
        {"nvidia.com/gpucores": 30},
    ],
)
def test_admission_shared_requests_keep_cores_unset(extra: dict[str, object]) -> None:
    container = {"name": "c", "resources": {"limits": {"nvidia.com/gpu": 1, **extra}}}
    out = NvidiaVendor().admit_container(container, "pod/c").container
    assert out["resources"]["limits"].get("nvidia.com/gpucores") == extra.get("nvidia.com/gpucores")  # type: ignore[index]


def test_admission_adds_the_default_gpu_count_and_never_mutates_its_input() -> None:
    container = {"name": "c", "resources": {"limits": {"nvidia.com/gpumem": 1000}}}
    admission = NvidiaVendor(NvidiaConfig(default_gpu_num=2)).admit_container(container, "pod/c")
    assert admission.container["resources"]["limits"]["nvidia.com/gpu"] == 2  # type: ignore[index]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]  # type: ignore[index]


def test_admission_env() -> None:
    vendor = NvidiaVendor(NvidiaConfig(gpu_core_policy="force", overwrite_env=True))
    gpu = {"name": "c", "resources": {"limits": {"nvidia.com/gpu": 1, "nvidia.com/priority": 1}}}
    assert vendor.admit_container(gpu, "p/c").env == {
        "CUDA_TASK_PRIORITY": "1",
        "GPU_CORE_UTILIZATION_POLICY": "force",
    }
    plain = vendor.admit_container({"name": "web"}, "p/web")
    assert not plain.uses_vendor
    assert plain.env == {"GPU_CORE_UTILIZATION_POLICY": "force", "NVIDIA_VISIBLE_DEVICES": "none"}


def test_admission_refuses_out_of_range_percentage() -> None:
    container = {
        "name": "c",
        "resources": {"limits": {"nvidia.com/gpu": 1, "nvidia.com/gpumem-percentage": 120}},
    }
    with pytest.raises(RequestInvalid, match=r"nvidia\.com/gpumem-percentage: 120 is out of range"):
        NvidiaVendor().admit_container(container, "pod default/p container c")


def test_pod_annotations_with_mig() -> None:
    device = ContainerDevice("GPU-a", "NVIDIA", 9984, 14)
    pick = Pick(position=0, device=device, mig=MigReservation("1g.10gb", MigPlacement(6, 1)))
    out = NvidiaVendor().pod_annotations(((device,),), ((pick,),))
    assert out[keys.NVIDIA_TO_ALLOCATE] == out[keys.NVIDIA_ALLOCATED] == "GPU-a,NVIDIA,9984,14:;"
    assert out[keys.MIG_ALLOCATIONS] == (
        '[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"GPU-a","profile":"1g.10gb",'
        '"placement":{"start":6,"size":1}}]'
    )


def test_allocated_devices_roundtrip() -> None:
    vendor = NvidiaVendor()
    assert vendor.allocated_devices({}) is None
    decoded = vendor.allocated_devices({keys.NVIDIA_ALLOCATED: ";GPU-a,NVIDIA,1000,30:;"})
    assert decoded == ((), (ContainerDevice("GPU-a", "NVIDIA", 1000, 30),))
