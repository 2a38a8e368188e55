"""Moore Threads (wire-format.md §4.8): whole-card admission, 512 MiB units, capacity, stamps."""

from __future__ import annotations

import pytest

from hami.api import keys
from hami.api.types import ContainerDevice
from hami.core.errors import RequestInvalid
from hami.core.model import ContainerRequest
from hami.core.status import Reason, Unfit
from hami.core.vendor import Pick
from hami.vendors.mthreads import MthreadsVendor
from tests.vendors.helpers import container, fit

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
