from __future__ import annotations

from hami.agent.dra.slices import next_generation, nvlink_groups, resource_slice, slice_devices
from hami.agent.values import Gpu
from hami.api.types import PairScores
from hami.core.dra import names


def _gpus(n: int = 4) -> list[Gpu]:
    return [
        Gpu(f"GPU-{i}", i, "NVIDIA A100", 40960, numa=i // 2, bus_id=f"0000:0{i}:00.0")
        for i in range(n)
    ]


def test_nvlink_groups_join_linked_gpus_transitively() -> None:
    pairs = [PairScores("GPU-0", {"GPU-1": 100}), PairScores("GPU-1", {"GPU-3": 120, "GPU-2": 20})]
    assert nvlink_groups(_gpus(), pairs) == {"GPU-0": 0, "GPU-1": 0, "GPU-3": 0, "GPU-2": 2}


def test_device_has_hami_dra_names_capacity_and_topology() -> None:
    devices = slice_devices(_gpus(2), [PairScores("GPU-0", {"GPU-1": 100})])
    made = resource_slice("n1", devices, 3, node_uid="uid-1")
    spec = made["spec"]
    assert spec["driver"] == "hami-core-gpu.project-hami.io"
    assert spec["pool"] == {"name": "n1", "generation": 3, "resourceSliceCount": 1}
    assert made["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    first = spec["devices"][0]
    assert first["name"] == "hami-gpu-0"
    assert first["allowMultipleAllocations"] is True
    assert first["attributes"]["uuid"] == {"string": "GPU-0"}
    assert first["attributes"][names.ATTR_NUMA] == {"int": 0}
    assert first["attributes"]["nvlinkGroup"] == {"int": 0}
    memory = first["capacity"]["memory"]
    assert memory["value"] == str(40960 * names.MIB)
    assert memory["requestPolicy"]["validRange"]["step"] == str(names.MIB)
    cores = first["capacity"]["cores"]
    assert cores["value"] == "100"
    assert cores["requestPolicy"]["validRange"] == {"min": "0", "max": "100", "step": "1"}


def test_unhealthy_gpu_leaves_the_pool_and_scaling_applies() -> None:
    devices = slice_devices(
        _gpus(3), [], healthy={"GPU-1": False}, memory_scaling=1.5, preconfigured_mib=0
    )
    assert [d.gpu.index for d in devices] == [0, 2]
    assert devices[0].memory_bytes == 61440 * names.MIB


def test_preconfigured_memory_when_nvml_cannot_tell() -> None:
    gpu = Gpu("GPU-x", 0, "GH200", 0)
    assert slice_devices([gpu], [], preconfigured_mib=1000)[0].memory_bytes == 1000 * names.MIB


def test_generation_goes_up_only_when_devices_change() -> None:
    wanted = resource_slice("n1", slice_devices(_gpus(2), []), 1)
    assert next_generation(None, wanted) == 1
    current = {**wanted, "spec": {**wanted["spec"], "pool": {"generation": 4}}}
    assert next_generation(current, resource_slice("n1", slice_devices(_gpus(2), []), 1)) is None
    fewer = resource_slice("n1", slice_devices(_gpus(1), []), 1)
    assert next_generation(current, fewer) == 5
