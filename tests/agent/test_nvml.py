"""The NVML backend's logic against a stand-in for the pynvml module (no GPU needed).

The real library is exercised by gpu-checks/nvml_discovery.sh on a GPU machine."""

from __future__ import annotations

import ctypes
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml

from hami.agent.discovery.nvml import NvmlSource, numa_node
from hami.agent.values import HealthEvent

UUIDS = ["GPU-aaaa", "GPU-bbbb", "GPU-cccc"]
BUS = ["00000000:07:00.0", "00000000:0F:00.0", "00000000:47:00.0"]


class FakeNvmlError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


class FakeNvml:
    """Just enough of pynvml: three A100s, 0-1 NVLinked, 2 across the system; MIG on GPU 0."""

    NVMLError = FakeNvmlError
    # copied from pynvml in __init__ (with every other NVML_*, nvmlEventType* and c_nvml* name)
    NVML_ERROR_NOT_FOUND: int
    NVML_ERROR_NOT_SUPPORTED: int
    NVML_ERROR_TIMEOUT: int
    NVML_FEATURE_ENABLED: int
    NVML_NVLINK_DEVICE_TYPE_GPU: int
    NVML_TOPOLOGY_NODE: int
    NVML_TOPOLOGY_SYSTEM: int
    nvmlEventTypeSingleBitEccError: int
    nvmlEventTypeXidCriticalError: int

    def __init__(self) -> None:
        for name in dir(pynvml):
            if (
                name.startswith("NVML_")
                or name.startswith("nvmlEventType")
                or name.startswith("c_nvml")
            ):
                setattr(self, name, getattr(pynvml, name))
        self.events: list[Any] = []

    def nvmlDeviceGetCount(self) -> int:
        return 3

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetUUID(self, h: int) -> bytes:
        return UUIDS[h].encode() if h < 3 else b"GPU-unknown"

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return b"NVIDIA A100-SXM4-40GB"

    def nvmlDeviceGetPciInfo(self, h: int) -> Any:
        return SimpleNamespace(busId=BUS[h].encode())

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        if h == 2:
            raise FakeNvmlError(self.NVML_ERROR_NOT_SUPPORTED)
        return SimpleNamespace(total=40960 * 1024 * 1024)

    def nvmlDeviceGetGpuInstanceProfileInfo(self, h: int, profile: int, version: int) -> Any:
        if h != 0 or profile not in (0, 4):
            raise FakeNvmlError(self.NVML_ERROR_NOT_SUPPORTED)
        if profile == 0:
            return SimpleNamespace(
                id=19,
                sliceCount=1,
                instanceCount=7,
                multiprocessorCount=14,
                memorySizeMB=4864,
                name=b"MIG 1g.5gb",
            )
        return SimpleNamespace(
            id=0,
            sliceCount=7,
            instanceCount=1,
            multiprocessorCount=98,
            memorySizeMB=40192,
            name=b"",
        )

    def nvmlDeviceGetGpuInstancePossiblePlacements(
        self, h: int, pid: int, array: Any, count: Any
    ) -> None:
        spots = [(i, 1) for i in range(7)] if pid == 19 else [(0, 8)]
        counter = ctypes.cast(count, ctypes.POINTER(ctypes.c_uint)).contents
        if array is not None:
            for i, (start, size) in enumerate(spots):
                array[i].start, array[i].size = start, size
        counter.value = len(spots)

    def nvmlDeviceGetTopologyCommonAncestor(self, a: int, b: int) -> int:
        return self.NVML_TOPOLOGY_NODE if {a, b} == {0, 1} else self.NVML_TOPOLOGY_SYSTEM

    def nvmlDeviceGetNvLinkState(self, h: int, link: int) -> int:
        return self.NVML_FEATURE_ENABLED if h in (0, 1) and link < 12 else 0

    def nvmlDeviceGetNvLinkRemotePciInfo(self, h: int, link: int) -> Any:
        return SimpleNamespace(busId=BUS[1 - h].encode())

    def nvmlDeviceGetNvLinkRemoteDeviceType(self, h: int, link: int) -> int:
        return self.NVML_NVLINK_DEVICE_TYPE_GPU

    def nvmlEventSetCreate(self) -> str:
        return "set"

    def nvmlDeviceGetSupportedEventTypes(self, h: int) -> int:
        if h == 2:
            raise FakeNvmlError(self.NVML_ERROR_NOT_SUPPORTED)
        return 0xFFFF

    def nvmlDeviceRegisterEvents(self, h: int, mask: int, events: str) -> None:
        if h == 1:
            raise FakeNvmlError(999)

    def nvmlEventSetWait_v2(self, events: str, ms: int) -> Any:
        if not self.events:
            raise FakeNvmlError(self.NVML_ERROR_TIMEOUT)
        return self.events.pop(0)


def test_discovery() -> None:
    gpus = NvmlSource(FakeNvml()).gpus()
    assert [g.uuid for g in gpus] == UUIDS
    assert [g.memory_mib for g in gpus] == [40960, 40960, 0]
    assert gpus[0].model == "NVIDIA A100-SXM4-40GB" and gpus[0].bus_id == BUS[0]
    small, whole = gpus[0].mig_profiles
    assert (small.name, small.memory_mb, small.core, small.slice_count) == ("1g.5gb", 4864, 15, 1)
    assert len(small.placements) == 7 and small.placements[3].start == 3
    assert (whole.name, whole.core, whole.placements[0].size) == ("7g.40gb", 100, 8)
    assert gpus[1].mig_profiles == ()


def test_pair_scores() -> None:
    scores = {p.uuid: dict(p.scores) for p in NvmlSource(FakeNvml()).pair_scores()}
    assert scores[UUIDS[0]] == {UUIDS[1]: 20 + 1200, UUIDS[2]: 10}
    assert scores[UUIDS[2]] == {UUIDS[0]: 10, UUIDS[1]: 10}


async def test_health_events() -> None:
    nvml = FakeNvml()
    source = NvmlSource(nvml)
    events = source.health_events()
    failed = await anext(events)  # GPU 1 could not register; GPU 2 is too old (skipped)
    assert failed.uuid == UUIDS[1] and not failed.healthy
    nvml.events = [
        SimpleNamespace(eventType=nvml.nvmlEventTypeSingleBitEccError, eventData=0, device=0),
        SimpleNamespace(eventType=nvml.nvmlEventTypeXidCriticalError, eventData=79, device=2),
        SimpleNamespace(eventType=nvml.nvmlEventTypeXidCriticalError, eventData=48, device=7),
    ]
    assert await anext(events) == HealthEvent(UUIDS[2], False, "XID 79", xid=79)
    assert await anext(events) == HealthEvent(None, False, "XID 48", xid=48)


def test_numa_node_from_sysfs(tmp_path: Path) -> None:
    (tmp_path / "0000:47:00.0").mkdir()
    (tmp_path / "0000:47:00.0" / "numa_node").write_text("1\n")
    (tmp_path / "0000:07:00.0").mkdir()
    (tmp_path / "0000:07:00.0" / "numa_node").write_text("-1\n")
    assert numa_node("00000000:47:00.0", tmp_path) == 1
    assert numa_node("00000000:07:00.0", tmp_path) == 0
    assert numa_node("00000000:99:00.0", tmp_path) == 0
