"""Each vendor's compute in its own unit, and whole-card holds read as the whole card (#18)."""

from __future__ import annotations

from hami.api.types import ContainerDevice
from hami.core.cluster import NodeState
from hami.core.model import Device, DeviceUsage, Node
from hami.core.vendor import Held
from hami.metrics.specs import MEMORY_ALLOCATED, MEMORY_RATIO
from hami.scheduler.metrics.collector import add_device
from hami.vendors.amd import AmdVendor
from hami.vendors.ascend import AscendDevice, AscendVendor
from hami.vendors.biren import BirenVendor
from hami.vendors.config import DEFAULT_VNPUS
from hami.vendors.kunlun import KunlunVendor
from hami.vendors.mthreads import MthreadsVendor
from hami.vendors.neuron import NeuronVendor
from hami.vendors.nvidia import NvidiaVendor


def _dev(vendor: str, memory: int, cores: int, count: int = 4) -> Device:
    return Device(uuid="d", vendor=vendor, type=vendor, count=count, memory=memory, cores=cores)


def test_units_per_vendor() -> None:
    nvidia = NvidiaVendor().held(_dev("NVIDIA", 15360, 100), DeviceUsage(1, 3000, 30))
    assert nvidia == Held(3000, 30, 100, "%")
    amd = AmdVendor().held(_dev("AMD", 196608, 304), DeviceUsage(1, 1000, 76))
    assert (amd.cores, amd.cores_total, amd.unit, amd.percent) == (76, 304, "CUs", 25.0)
    musa = MthreadsVendor().held(_dev("Mthreads", 49152, 16), DeviceUsage(1, 2048, 4))
    assert (musa.cores, musa.cores_total, musa.unit) == (4, 16, "cores")
    neuron = NeuronVendor().held(_dev("AWSNeuron", 0, 3, count=2), DeviceUsage(1, 0, 1))
    assert (neuron.cores, neuron.cores_total, neuron.unit) == (1, 2, "NeuronCores")


def test_whole_card_holds_read_as_the_whole_card() -> None:
    card = _dev("Biren", 65536, 100)
    assert BirenVendor().held(card, DeviceUsage(1, 0, 0)) == Held(65536, 100, 100, "%")
    assert BirenVendor().held(card, DeviceUsage()) == Held(0, 0, 100, "%")
    xpu = _dev("kunlun", 98304, 100, count=100)
    assert KunlunVendor().held(xpu, DeviceUsage(1, 98304, 100)).memory == 98304
    entry = ContainerDevice("d", "Biren", 0, 0)
    assert BirenVendor().describe(entry) == "the whole card"
    assert (
        NvidiaVendor().describe(ContainerDevice("d", "NVIDIA", 3000, 30)) == "3000 MiB, 30% cores"
    )


def test_an_ascend_template_holds_its_share_of_the_ai_cores() -> None:
    config = next(c for c in DEFAULT_VNPUS if c.common_word == "Ascend910B2")
    npu = AscendDevice(uuid="n", vendor="Ascend910B2", type="x", count=4, memory=65536, cores=24)
    held = AscendVendor(config).held(npu, DeviceUsage(1, 8192, 0))  # vir03_1c_8g: 3 AI cores
    assert (held.cores, held.cores_total, held.unit) == (3, 24, "AI cores")


class _Sink:
    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def add(
        self, spec: object, labels: object, value: float, legacy_value: float | None = None
    ) -> None:
        self.values[getattr(spec, "name", str(spec))] = value


def test_metrics_read_the_hold() -> None:
    card = _dev("Biren", 65536, 100)
    state = NodeState.of(Node("n", (card,)), [DeviceUsage(1, 0, 0)])
    sink = _Sink()
    add_device(sink, state, card, DeviceUsage(1, 0, 0), BirenVendor())
    assert sink.values[MEMORY_ALLOCATED.name] == 65536 * 1024 * 1024
    assert sink.values[MEMORY_RATIO.name] == 1.0
    amd = _dev("AMD", 196608, 304)
    sink = _Sink()
    add_device(sink, NodeState.of(Node("n", (amd,))), amd, DeviceUsage(1, 0, 76), AmdVendor())
    assert [
        v for k, v in sink.values.items() if "core_allocated" in k or "cores_allocated" in k
    ] == [25.0]
