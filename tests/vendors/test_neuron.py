"""AWS Neuron (wire-format.md §4.12): admission, per-node core conversion, runs, core masks."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from hami.api import keys
from hami.api.types import ContainerDevice
from hami.config import ConfigError, parse_config
from hami.core import accounting
from hami.core.cluster import ClusterView, NodeState
from hami.core.decide import commit, decide
from hami.core.errors import RequestInvalid
from hami.core.model import ContainerRequest, DeviceUsage, Node, PodRequest
from hami.core.mutate import MutateSettings, mutate
from hami.core.status import Reason, Unfit
from hami.core.vendor import FitContext, Pick, cores_text
from hami.vendors import registry
from hami.vendors.config import NeuronConfig, vendor_settings
from hami.vendors.neuron import (
    NeuronDevice,
    NeuronVendor,
    core_bits,
    lowest_cores,
    run_select,
)
from tests.vendors.helpers import candidates, container, fit

V = NeuronVendor()
KEY = "AWSNeuron"
DEVICE = "aws.amazon.com/neuron"
CORE = "aws.amazon.com/neuroncore"


def _devices(node: str, count: int, cores: int, instance: str) -> tuple[NeuronDevice, ...]:
    capacity = {DEVICE: str(count), CORE: str(cores)}
    found = V.capacity_devices(node, capacity, {keys.INSTANCE_TYPE_LABEL: instance}, {})
    assert all(isinstance(d, NeuronDevice) for d in found)
    return found  # type: ignore[return-value]


INF2_XL = _devices("inf", 1, 2, "inf2.xlarge")
INF2_48XL = _devices("inf48", 12, 24, "inf2.48xlarge")
TRN1_32XL = _devices("trn", 16, 32, "trn1.32xlarge")


def devices_req(nums: int) -> ContainerRequest:
    return ContainerRequest(KEY, nums, mem_pct=0, coresreq=0)


def cores_req(cores: int) -> ContainerRequest:
    return ContainerRequest(KEY, 1, mem_pct=0, coresreq=cores)


def _picks(result: object) -> tuple[Pick, ...]:
    assert isinstance(result, tuple), result
    return result


def _taken(result: object) -> list[tuple[int, int]]:
    return [(p.index, p.device.usedcores) for p in _picks(result)]


# --- admission and request parsing ----------------------------------------------------------------


def test_admission_uses_the_vendor_for_either_resource_and_changes_nothing() -> None:
    for manifest in (
        container(aws_amazon_com__neuron=1),
        container(aws_amazon_com__neuroncore=1),
        container("c", {CORE: "2"}),  # requests alone count too
    ):
        admitted = V.admit_container(manifest, "app")
        assert admitted.uses_vendor and admitted.container == manifest and not admitted.env
    other = container(nvidia_com__gpu=1)
    assert not V.admit_container(other, "app").uses_vendor


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (container(aws_amazon_com__neuron=0), f"app: {DEVICE}: 0 must be a positive integer"),
        (container(aws_amazon_com__neuroncore=-2), f"app: {CORE}: -2 must be a positive integer"),
        (
            container(aws_amazon_com__neuroncore=2**31),
            f"app: {CORE}: 2147483648 is too large (at most 2147483647)",
        ),
        (container(aws_amazon_com__neuron="1.5"), f"app: {DEVICE}: '1.5'"),
    ],
)
def test_admission_denies_bad_quantities_naming_container_and_resource(
    manifest: dict[str, object], message: str
) -> None:
    with pytest.raises(RequestInvalid) as caught:
        V.admit_container(manifest, "app")
    assert str(caught.value).startswith(message)


def _pod(*containers: dict[str, object]) -> dict[str, object]:
    return {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": list(containers)}}


def test_webhook_accepts_and_denies_whole_pods() -> None:
    vendors = {"NVIDIA": registry.build(parse_config({}))["NVIDIA"], KEY: V}
    accepted = mutate(_pod(container(aws_amazon_com__neuroncore=2)), vendors, MutateSettings())
    assert accepted.allowed and accepted.uses_devices
    denied = mutate(_pod(container("w", aws_amazon_com__neuron=0)), vendors, MutateSettings())
    assert not denied.allowed and denied.code == 400
    assert denied.message == f"pod ns/p container w: {DEVICE}: 0 must be a positive integer"


def test_request_parsing_device_request_takes_precedence() -> None:
    assert V.parse_container(container(aws_amazon_com__neuron=4), "c") == devices_req(4)
    assert V.parse_container(container(aws_amazon_com__neuroncore=3), "c") == cores_req(3)
    both = container(aws_amazon_com__neuron=2, aws_amazon_com__neuroncore=0)
    assert V.parse_container(both, "c") == devices_req(2)  # cores are not even read
    assert V.parse_container(container("c", {DEVICE: "1"}), "c") == devices_req(1)
    assert V.parse_container(container(), "c") is None


def test_configured_resource_names() -> None:
    vendor = NeuronVendor(NeuronConfig("example.com/nd", "example.com/nc"))
    assert vendor.parse_container(container(example_com__nc=1), "c") == cores_req(1)
    assert vendor.parse_container(container(aws_amazon_com__neuron=1), "c") is None


# --- node devices ---------------------------------------------------------------------------------


def test_capacity_devices_inf2_xlarge() -> None:
    expected = (
        NeuronDevice(
            uuid="inf-AWSNeuron-0",
            vendor=KEY,
            type=KEY,
            count=2,
            memory=0,
            cores=3,
            index=0,
            instance_type="inf2.xlarge",
        ),
    )
    assert expected == INF2_XL
    assert INF2_XL[0].ring


def test_capacity_devices_trn1_32xlarge() -> None:
    assert [d.uuid for d in TRN1_32XL][::15] == ["trn-AWSNeuron-0", "trn-AWSNeuron-15"]
    assert {(d.count, d.cores, d.memory, d.health) for d in TRN1_32XL} == {(2, 3, 0, True)}
    assert [d.index for d in TRN1_32XL] == list(range(16))
    assert not TRN1_32XL[0].ring


def test_capacity_devices_without_geometry() -> None:
    assert V.capacity_devices("n", {}, {}, {}) == ()
    assert V.capacity_devices("n", {DEVICE: "2"}, {}, {}) == ()  # no cores advertised
    four = V.capacity_devices("n", {DEVICE: "1", CORE: "4"}, {}, {})
    assert [(d.count, d.cores) for d in four] == [(4, 15)]
    assert V.node_devices({}) == ()


# --- helpers --------------------------------------------------------------------------------------


def test_core_masks() -> None:
    assert core_bits(0b1011) == (0, 1, 3)
    assert lowest_cores(3, 1) == 1
    assert lowest_cores(3, 2) == 3
    assert lowest_cores(3 & ~1, 1) == 2  # the complement of the used core
    assert lowest_cores(3 & ~2, 1) == 1
    assert lowest_cores(15 & ~1, 2) == 6


@pytest.mark.parametrize(
    ("free", "nums", "ring", "run"),
    [
        (range(16), 4, False, (0, 1, 2, 3)),
        ([1, 2, 3, 4, 5, 6, 7], 4, False, (4, 5, 6, 7)),  # aligned to 4
        ([1, 2, 3, 4, 5, 6], 4, False, ()),
        ([1, 2, 3, 4, 5, 6], 4, True, (1, 2, 3, 4)),  # Inferentia: any run
        ([0, 2, 3, 5], 2, True, (2, 3)),
        (range(16), 2, False, ()),  # trn1 takes 1, 4, 8 or 16 devices
        (range(16), 3, False, ()),
        (range(16), 16, False, tuple(range(16))),
        (range(8, 16), 8, False, tuple(range(8, 16))),
        (range(4, 12), 8, False, ()),
        ([], 1, True, ()),
    ],
)
def test_run_select(free: range | list[int], nums: int, ring: bool, run: tuple[int, ...]) -> None:
    assert run_select(list(free), nums, ring) == run


# --- fit ------------------------------------------------------------------------------------------


def test_whole_devices_take_an_aligned_run_on_trn1() -> None:
    assert _taken(fit(V, TRN1_32XL, devices_req(4))) == [(i, 3) for i in range(4)]
    busy = [DeviceUsage(used=1, usedcores=1) if i == 2 else DeviceUsage() for i in range(16)]
    assert [i for i, _ in _taken(fit(V, TRN1_32XL, devices_req(4), busy))] == [4, 5, 6, 7]
    assert [i for i, _ in _taken(fit(V, TRN1_32XL, devices_req(8), busy))] == list(range(8, 16))
    unfit = fit(V, TRN1_32XL, devices_req(16), busy)
    assert unfit == Unfit({Reason.CARD_INSUFFICIENT_CORE: 1, Reason.NUMA_NOT_FIT: 15}, 16)
    assert isinstance(unfit, Unfit)
    assert unfit.text() == "1/16 CardInsufficientCore, 15/16 NumaNotFit"
    assert fit(V, TRN1_32XL, devices_req(2)) == Unfit({Reason.NUMA_NOT_FIT: 16}, 16)


def test_whole_devices_take_any_run_on_inferentia() -> None:
    busy = [DeviceUsage(used=1, usedcores=3) if i == 0 else DeviceUsage() for i in range(12)]
    assert [i for i, _ in _taken(fit(V, INF2_48XL, devices_req(3), busy))] == [1, 2, 3]
    assert [i for i, _ in _taken(fit(V, INF2_48XL, devices_req(11), busy))] == list(range(1, 12))


def test_one_whole_device_needs_an_idle_device() -> None:
    picks = _picks(fit(V, INF2_48XL, devices_req(1)))
    assert [(p.index, p.device.usedcores, p.note) for p in picks] == [(0, 3, "")]  # try order
    half = [DeviceUsage(used=1, usedcores=2)]
    assert fit(V, INF2_XL, devices_req(1), half) == Unfit({Reason.CARD_INSUFFICIENT_CORE: 1}, 1)


def test_core_requests_use_the_core_bitmask() -> None:
    assert _taken(fit(V, INF2_XL, cores_req(1))) == [(0, 1)]
    assert _taken(fit(V, INF2_XL, cores_req(2))) == [(0, 3)]
    assert _taken(fit(V, INF2_XL, cores_req(1), [DeviceUsage(used=1, usedcores=1)])) == [(0, 2)]
    assert _taken(fit(V, INF2_XL, cores_req(1), [DeviceUsage(used=1, usedcores=2)])) == [(0, 1)]
    no_room = fit(V, INF2_XL, cores_req(2), [DeviceUsage(used=1, usedcores=2)])
    assert no_room == Unfit({Reason.CARD_INSUFFICIENT_CORE: 1}, 1)
    full = fit(V, INF2_XL, cores_req(1), [DeviceUsage(used=2, usedcores=3)])
    assert full == Unfit({Reason.CARD_TIME_SLICING_EXHAUSTED: 1}, 1)
    mutex = fit(V, INF2_XL, cores_req(1), [DeviceUsage(used=1, usedcores=1)], policy=("mutex",))
    assert mutex == Unfit({Reason.EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT: 1}, 1)


def test_core_requests_prefer_the_device_tried_first() -> None:
    usage = [DeviceUsage(used=1, usedcores=1) if i == 5 else DeviceUsage() for i in range(16)]
    # the core's try order decides; here the half-used device comes first
    order = candidates(TRN1_32XL, usage)
    order.insert(0, order.pop(5))
    picks = V.fit(order, cores_req(1), FitContext())
    assert _taken(picks) == [(5, 2)]
    assert _picks(picks)[0].note == "2"


def test_core_requests_beyond_one_device_take_whole_devices() -> None:
    picks = _picks(fit(V, TRN1_32XL, cores_req(8)))
    assert [(p.index, p.device.usedcores, p.note) for p in picks] == [(i, 3, "2") for i in range(4)]
    odd = fit(V, TRN1_32XL, cores_req(3))
    assert isinstance(odd, Unfit)
    assert odd.text() == (
        "3 NeuronCores is neither at most nor a multiple of the 2 cores of one Neuron device "
        "on this node"
    )
    assert fit(V, TRN1_32XL, cores_req(4)) == Unfit({Reason.NUMA_NOT_FIT: 16}, 16)  # 2 devices
    assert [i for i, _ in _taken(fit(V, INF2_48XL, cores_req(4)))] == [0, 1]


def test_uuid_filters_and_health() -> None:
    use = {keys.NEURON_USE_UUID: "trn-AWSNeuron-3"}
    assert _taken(fit(V, TRN1_32XL, cores_req(1), annotations=use)) == [(3, 1)]
    nouse = {keys.NEURON_NOUSE_UUID: "inf-AWSNeuron-0"}
    assert fit(V, INF2_XL, cores_req(1), annotations=nouse) == Unfit(
        {Reason.CARD_UUID_MISMATCH: 1}, 1
    )
    blocked = {keys.NEURON_NOUSE_UUID: "trn-AWSNeuron-1"}
    assert [i for i, _ in _taken(fit(V, TRN1_32XL, devices_req(4), annotations=blocked))] == [
        4,
        5,
        6,
        7,
    ]
    sick = (dataclasses.replace(INF2_XL[0], health=False),)
    assert fit(V, sick, cores_req(1)) == Unfit({Reason.CARD_NOT_HEALTH: 1}, 1)


# --- annotations ----------------------------------------------------------------------------------

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def _view(*nodes: Node) -> ClusterView:
    return ClusterView.of([NodeState.of(n) for n in nodes])


def test_core_request_annotations_byte_for_byte() -> None:
    pod = PodRequest("default", "p", ((cores_req(1),),))
    decision = decide(pod, _view(Node("inf", INF2_XL)), {KEY: V})
    assert decision.annotations_at(NOW) == {
        "hami.io/vgpu-node": "inf",
        "hami.io/vgpu-time": "1714564800",
        "hami.io/aws-neuron-devices-allocated": "inf-AWSNeuron-0,AWSNeuron,0,1:;",
        "AWS_NEURON_IDS": "0",
        "NEURON_RESOURCE_TYPE": "aws.amazon.com/neuroncore",
        "NEURON_ALLOC_TIME": "1714564800000000000",
        "NEURON_ALLOCATED": "false",
        "aws.amazon.com/predicate-node": "inf",
    }


def test_second_core_pod_gets_the_complement_and_a_third_does_not_fit() -> None:
    view = _view(Node("inf", INF2_XL))
    first = decide(PodRequest("default", "a", ((cores_req(1),),)), view, {KEY: V})
    view = commit(view, first)
    second = decide(PodRequest("default", "b", ((cores_req(1),),)), view, {KEY: V})
    assert second.annotations["hami.io/aws-neuron-devices-allocated"] == (
        "inf-AWSNeuron-0,AWSNeuron,0,2:;"
    )
    assert second.annotations["AWS_NEURON_IDS"] == "1"
    view = commit(view, second)
    third = decide(PodRequest("default", "c", ((cores_req(1),),)), view, {KEY: V})
    assert third.node is None
    # usage rebuilt from the annotation agrees with the fit: both cores taken (1 + 2 == 1 | 2)
    placed = V.allocated_devices(first.annotations)
    assert placed is not None
    usage = accounting.pod_usage(accounting.PlacedPod("default/a", "inf", {KEY: placed}))
    assert usage == {"inf-AWSNeuron-0": DeviceUsage(used=1, usedcores=1)}


def test_device_and_core_containers_share_the_id_list() -> None:
    node = Node("trn", TRN1_32XL)
    pod = PodRequest("default", "p", ((devices_req(1),), (), (cores_req(2),)))
    decision = decide(pod, _view(node), {KEY: V})
    notes = decision.annotations_at(NOW)
    assert notes["hami.io/aws-neuron-devices-allocated"] == (
        "trn-AWSNeuron-15,AWSNeuron,0,3:;;trn-AWSNeuron-14,AWSNeuron,0,3:;"
    )
    assert notes["AWS_NEURON_IDS"] == "15,28,29"  # device 15, then cores 2×14 and 2×14+1
    assert notes["NEURON_RESOURCE_TYPE"] == CORE


def test_device_request_annotations_have_no_resource_type() -> None:
    pod = PodRequest("default", "p", ((devices_req(4),),))
    notes = decide(pod, _view(Node("trn", TRN1_32XL)), {KEY: V}).annotations_at(NOW)
    assert notes["hami.io/aws-neuron-devices-allocated"] == (
        "trn-AWSNeuron-0,AWSNeuron,0,3:trn-AWSNeuron-1,AWSNeuron,0,3:"
        "trn-AWSNeuron-2,AWSNeuron,0,3:trn-AWSNeuron-3,AWSNeuron,0,3:;"
    )
    assert notes["AWS_NEURON_IDS"] == "0,1,2,3"
    assert "NEURON_RESOURCE_TYPE" not in notes
    assert notes["NEURON_ALLOCATED"] == "false"


def test_contract() -> None:
    assert V.stamps() and V.node_lock is None
    assert not V.scoring and V.registration_health is None
    assert V.allocated_devices({}) is None


# --- configuration --------------------------------------------------------------------------------


def test_config_section_builds_the_vendor() -> None:
    config = parse_config({"awsneuron": {"resourceCoreName": "example.com/nc"}})
    assert vendor_settings(config).sections["awsneuron"] == NeuronConfig(
        resource_core_name="example.com/nc"
    )
    built = registry.build(config)
    assert isinstance(built[KEY], NeuronVendor)
    assert list(built) == ["NVIDIA", KEY]
    off = parse_config({"awsneuron": {"enabled": False}})
    assert KEY not in registry.build(off)
    assert KEY not in registry.build(parse_config({}))


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"resourceCountName": ""}, "awsneuron.resourceCountName"),
        ({"resourceMemoryName": "x"}, "awsneuron.resourceMemoryName: unknown key"),
        ("yes", "awsneuron: must be a mapping of keys, not str"),
    ],
)
def test_config_section_is_validated(section: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"awsneuron": section}, "f.yaml")
    assert str(caught.value).startswith(f"f.yaml: {message}")


def test_recorded_cores_read_as_core_numbers() -> None:
    one = ContainerDevice(uuid="n-AWSNeuron-0", type=KEY, usedmem=0, usedcores=1)
    both = ContainerDevice(uuid="n-AWSNeuron-0", type=KEY, usedmem=0, usedcores=3)
    second = ContainerDevice(uuid="n-AWSNeuron-0", type=KEY, usedmem=0, usedcores=2)
    assert [cores_text(V, d) for d in (one, both, second)] == ["core 0", "cores 0,1", "core 1"]
    assert cores_text(None, one) == "1% cores"  # no vendor: a percentage
