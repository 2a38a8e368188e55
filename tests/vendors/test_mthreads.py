"""Moore Threads (wire-format.md §4.8): whole-card admission, 512 MiB units, capacity, stamps."""

from __future__ import annotations

import dataclasses

import pytest

from hami.api import keys
from hami.api.types import ContainerDevice
from hami.core.errors import RequestInvalid
from hami.core.fit import NodeFit, fit_pod
from hami.core.model import (
    EMPTY_USAGE,
    ContainerRequest,
    DeviceUsage,
    Node,
    PodOptions,
    PodRequest,
)
from hami.core.status import Reason, Unfit
from hami.core.vendor import FitContext, Pick
from hami.vendors.mthreads import MthreadsVendor
from tests.vendors.helpers import candidates, container, fit

V = MthreadsVendor()
CAPACITY = {"mthreads.com/sgpu-core": "32", "mthreads.com/sgpu-memory": "192"}


def _limits(admitted: object) -> dict[str, object]:
    return admitted.container["resources"]["limits"]  # type: ignore[attr-defined, no-any-return]


def test_admission_whole_cards() -> None:
    many = V.admit_container(container(mthreads_com__vgpu=2), "c")
    assert _limits(many)["mthreads.com/sgpu-core"] == 32
    assert _limits(many)["mthreads.com/sgpu-memory"] == 192
    assert V.request_gpu_num(many.container, "c") == 2
    one = V.admit_container(container(mthreads_com__vgpu=1), "c")
    assert (_limits(one)["mthreads.com/sgpu-core"], _limits(one)["mthreads.com/sgpu-memory"]) == (
        16,
        96,
    )
    sized = V.admit_container(
        container(**{"mthreads_com__vgpu": 1, "mthreads_com__sgpu-memory": 8}), "c"
    )
    assert "mthreads.com/sgpu-core" not in _limits(sized)
    assert not V.admit_container(container(nvidia_com__gpu=1), "c").uses_vendor


def test_admission_errors() -> None:
    with pytest.raises(RequestInvalid, match="must be one of 2, 4, 8, 16, 32, 64, 96"):
        V.admit_container(
            container(**{"mthreads_com__vgpu": 1, "mthreads_com__sgpu-memory": 3}), "c"
        )
    with pytest.raises(RequestInvalid, match="must be positive"):
        V.admit_container(container(mthreads_com__vgpu=0), "c")


def test_requests_are_per_card() -> None:
    admitted = V.admit_container(container(mthreads_com__vgpu=2), "c")
    req = V.parse_container(admitted.container, "c")
    assert req == ContainerRequest("Mthreads", 2, memreq=49152, mem_pct=0, coresreq=16)


def test_capacity_devices() -> None:
    devices = V.capacity_devices("n", CAPACITY, {}, {})
    assert [(d.uuid, d.count, d.memory, d.cores, d.index) for d in devices] == [
        ("n-mthreads-0", 100, 49152, 16, 0),
        ("n-mthreads-1", 100, 49152, 16, 1),
    ]


def test_fit_uuid_filter() -> None:
    devices = V.capacity_devices("n", CAPACITY, {}, {})
    req = ContainerRequest("Mthreads", 1, memreq=4096, mem_pct=0, coresreq=4)
    unfit = fit(V, devices, req, annotations={keys.MTHREADS_USE_UUID: "x"})
    assert isinstance(unfit, Unfit) and unfit.counts == {Reason.CARD_UUID_MISMATCH: 2}


def test_pod_annotations_and_stamps() -> None:
    dev = ContainerDevice("n-mthreads-1", "Mthreads", 4096, 4)
    notes = V.pod_annotations(((dev,), ()), [[Pick(1, dev, index=1)], []])
    assert notes == {
        "hami.io/mthreads-vgpu-devices-allocated": "n-mthreads-1,Mthreads,4096,4:;;",
        "mthreads.com/gpu-index": "1",
    }
    assert V.stamps() == {
        "mthreads.com/predicate-time": "unix-nanos",
        "mthreads.com/predicate-node": "node-name",
    }


# --- one card per pod (§4.8) -----------------------------------------------------------------------


def _pod(*containers: ContainerRequest | None, init_count: int = 0) -> PodRequest:
    return PodRequest(
        namespace="ns",
        name="p",
        containers=tuple((c,) if c else () for c in containers),
        init_count=init_count,
    )


def test_every_container_of_a_pod_on_the_same_card() -> None:
    node = Node("n", V.capacity_devices("n", CAPACITY, {}, {}))
    small = ContainerRequest("Mthreads", 1, memreq=4096, mem_pct=0, coresreq=4)
    placed = fit_pod(node, [EMPTY_USAGE] * 2, _pod(small, None, small), {V.key: V})
    assert isinstance(placed, NodeFit)
    cards = {p.device.uuid for c in placed.picks["Mthreads"] for p in c}
    assert len(cards) == 1
    assert placed.delta[cards.pop()].used == 2


def test_a_later_container_may_not_take_another_card() -> None:
    node = Node("n", V.capacity_devices("n", CAPACITY, {}, {}))
    small = ContainerRequest("Mthreads", 1, memreq=4096, mem_pct=0, coresreq=4)
    big = ContainerRequest("Mthreads", 1, memreq=47104, mem_pct=0, coresreq=4)
    unfit = fit_pod(node, [EMPTY_USAGE] * 2, _pod(small, big), {V.key: V})
    assert isinstance(unfit, Unfit)
    assert unfit.counts == {
        Reason.CARD_INSUFFICIENT_MEMORY: 1,
        Reason.CARD_NOT_FOUND_CUSTOM_FILTER_RULE: 1,
    }
    assert unfit.text() == "1/2 CardInsufficientMemory, 1/2 CardNotFoundCustomFilterRule"


def test_init_containers_share_the_card_too() -> None:
    """Binpack prefers the busy card 0 for the app container, but the init container could
    only take card 1, and `mthreads.com/gpu-index` is one list for the whole pod."""
    node = Node("n", V.capacity_devices("n", CAPACITY, {}, {}))
    small = ContainerRequest("Mthreads", 1, memreq=4096, mem_pct=0, coresreq=4)
    big = ContainerRequest("Mthreads", 1, memreq=47104, mem_pct=0, coresreq=4)
    busy = DeviceUsage(used=1, usedmem=4096, usedcores=4)
    pod = dataclasses.replace(
        _pod(big, small, init_count=1), options=PodOptions(gpu_policy=("binpack",))
    )
    placed = fit_pod(node, [busy, EMPTY_USAGE], pod, {V.key: V})
    assert isinstance(placed, NodeFit)
    assert [[p.device.uuid for p in c] for c in placed.picks["Mthreads"]] == [
        ["n-mthreads-1"],
        ["n-mthreads-1"],
    ]
    alone = fit_pod(
        node, [busy, EMPTY_USAGE], dataclasses.replace(pod, containers=((), (small,))), {V.key: V}
    )
    assert isinstance(alone, NodeFit)
    assert [p.device.uuid for p in alone.picks["Mthreads"][1]] == ["n-mthreads-0"]


def test_fit_sees_earlier_picks_through_the_context() -> None:
    devices = V.capacity_devices("n", CAPACITY, {}, {})
    small = ContainerRequest("Mthreads", 1, memreq=4096, mem_pct=0, coresreq=4)
    earlier = (Pick(1, ContainerDevice("n-mthreads-1", "Mthreads", 4096, 4), index=1),)
    picks = V.fit(candidates(devices), small, FitContext(earlier=earlier))
    assert isinstance(picks, tuple) and [p.device.uuid for p in picks] == ["n-mthreads-1"]
