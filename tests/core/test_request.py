"""Request parsing (§1.2) and webhook defaults (§3.1), with clear errors for bad input."""

from __future__ import annotations

import pytest

from hami.api import keys
from hami.core.config import NvidiaConfig, SchedulerConfig
from hami.core.errors import RequestInvalid
from hami.core.model import MEM_PCT_UNSET
from tests.core.builders import config, container, pod


def test_limits_win_over_requests() -> None:
    c = {
        "name": "c",
        "resources": {
            "limits": {"hami.io/gpu": 2, "hami.io/gpumem": "3000"},
            "requests": {"hami.io/gpu": 1, "hami.io/gpumem": "1000", "hami.io/gpucores": 30},
        },
    }
    (request,) = pod(c).containers[0]
    assert (request.nums, request.memreq, request.coresreq) == (2, 3000, 30)


def test_memory_defaults_to_the_whole_card() -> None:
    (request,) = pod(container(gpu=1)).containers[0]
    assert (request.memreq, request.mem_pct) == (0, 100)


def test_default_memory_and_factor() -> None:
    cfg = SchedulerConfig(
        nvidia=NvidiaConfig(
            resource_count_name="hami.io/gpu",
            resource_memory_name="hami.io/gpumem",
            default_memory=2048,
            memory_factor=2,
        )
    )
    (bare,) = pod(container(gpu=1), cfg=cfg).containers[0]
    assert (bare.memreq, bare.mem_pct) == (2048, MEM_PCT_UNSET)
    (scaled,) = pod(container(gpu=1, mem=100), cfg=cfg).containers[0]
    assert scaled.memreq == 200


def test_percentage_is_kept() -> None:
    (request,) = pod(container(gpu=1, gpumem_percentage=40)).containers[0]
    assert (request.memreq, request.mem_pct) == (0, 40)


def test_admission_adds_the_gpu_count() -> None:
    (request,) = pod(container(gpu=None, mem=1000), admit=True).containers[0]
    assert request.nums == 1


def test_containers_without_gpus_have_empty_entries() -> None:
    p = pod(container("a", gpu=None), init=[container("i", gpu=1, mem=10)])
    assert [len(c) for c in p.containers] == [1, 0]
    assert p.init_count == 1
    assert p.container_names == ("i", "a")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mem", -5, "hami.io/gpumem: -5 is out of range"),
        ("cores", 150, "hami.io/gpucores: 150 is out of range"),
        ("gpumem_percentage", 101, "hami.io/gpumem-percentage: 101 is out of range"),
        ("mem", "1.5", "hami.io/gpumem: '1.5' must be a whole number"),
        ("mem", "lots", "hami.io/gpumem: 'lots' not a Kubernetes quantity"),
        ("gpu", -1, "hami.io/gpu: -1 is out of range"),
    ],
)
def test_bad_quantities_name_pod_container_and_field(
    field: str, value: object, message: str
) -> None:
    kwargs: dict[str, object] = {"gpu": 1, field: value}
    with pytest.raises(RequestInvalid) as info:
        pod(container("worker", **kwargs), name="train")  # type: ignore[arg-type]
    assert str(info.value).startswith("pod default/train container worker: ")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (keys.NODE_SCHEDULER_POLICY, "pack", "'pack' is not one of"),
        (keys.GPU_SCHEDULER_POLICY, "binpack,fast", "unknown policy 'fast'"),
        (keys.NUMA_BIND, "maybe", "not a boolean"),
        (keys.DEVICE_SCORING_WEIGHTS, "slot=1", "expected exactly slot=N,core=N,memory=N"),
    ],
)
def test_bad_annotations_are_named(key: str, value: str, message: str) -> None:
    with pytest.raises(RequestInvalid, match=message) as info:
        pod(container(), annotations={key: value})
    assert key in str(info.value)


def test_options_from_annotations() -> None:
    annotations = {
        keys.GPU_SCHEDULER_POLICY: "binpack,numa",
        keys.USE_GPUTYPE: "A100, H100,",
        keys.NOUSE_GPUUUID: "GPU-1",
        keys.VGPU_MODE: " ",
    }
    options = pod(container(), annotations=annotations).options
    assert options.gpu_policy == ("binpack", "numa")
    assert options.use_types == ("A100", "H100")
    assert options.nouse_uuids == ("GPU-1",)
    assert options.vgpu_mode is None
    assert options.node_policy == config().node_scheduler_policy
