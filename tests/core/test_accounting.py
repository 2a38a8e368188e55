"""Usage from placed pods: init/app collapse, shrink, unknown UUIDs (§3.15, §7.3, §8 #24–25)."""

from __future__ import annotations

from hami.api.types import ContainerDevice, MigAllocation, MigPlacement
from hami.core import accounting
from hami.core.accounting import PlacedPod
from hami.core.model import MigReservation
from tests.core.builders import dev, node, used


def cd(uuid: str, mem: int, cores: int) -> ContainerDevice:
    return ContainerDevice(uuid=uuid, type="NVIDIA", usedmem=mem, usedcores=cores)


def test_24_init_usage_collapses_then_shrinks() -> None:
    devices = {"NVIDIA": ((cd("GPU0", 20000, 10),), (cd("GPU0", 10000, 5),))}
    placed = PlacedPod(key="ns/p", node="n", devices=devices, init_count=1)
    assert accounting.pod_usage(placed) == {"GPU0": used(1, 20000, 10)}
    done = PlacedPod(key="ns/p", node="n", devices=devices, init_count=1, init_done=True)
    assert accounting.pod_usage(done) == {"GPU0": used(1, 10000, 5)}


def test_24_two_app_containers_on_one_gpu_take_two_slots() -> None:
    devices = {"NVIDIA": ((cd("GPU0", 1000, 10),), (cd("GPU0", 2000, 20),))}
    placed = PlacedPod(key="ns/p", node="n", devices=devices)
    assert accounting.pod_usage(placed) == {"GPU0": used(2, 3000, 30)}


def test_node_usage_ignores_unknown_uuids_without_poisoning_others() -> None:
    n = node("n", dev("GPU0"), dev("GPU1", 1))
    pods = [
        PlacedPod(key="a/1", node="n", devices={"NVIDIA": ((cd("GPU0", 100, 10),),)}),
        PlacedPod(key="a/2", node="n", devices={"NVIDIA": ((cd("GONE", 100, 10),),)}),
    ]
    usage, unknown = accounting.node_usage(n, pods)
    assert usage == (used(1, 100, 10), used())
    assert unknown == ("GONE",)


def test_apply_and_release_are_inverse() -> None:
    n = node("n", dev("GPU0"), dev("GPU1", 1))
    base = (used(1, 500, 5), used())
    delta = {"GPU1": used(1, 1000, 30)}
    after = accounting.apply(n, base, delta)
    assert after == (used(1, 500, 5), used(1, 1000, 30))
    assert accounting.release(n, after, delta) == base


def test_mig_reservations_are_rebuilt_from_the_annotation() -> None:
    placement = MigPlacement(2, 2)
    allocation = MigAllocation(0, 0, "GPU0", "2g.10gb", placement)
    placed = PlacedPod(
        key="a/1", node="n", devices={"NVIDIA": ((cd("GPU0", 9984, 28),),)}, mig=(allocation,)
    )
    usage = accounting.pod_usage(placed)
    assert usage["GPU0"].mig == (MigReservation("2g.10gb", placement),)
