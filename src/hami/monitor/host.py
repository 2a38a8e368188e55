"""Host GPU readings: NVML when it is there (imported lazily), a null source otherwise."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HostGpu:
    index: int
    uuid: str
    name: str  # NVML name; metrics prefix it with "NVIDIA-"
    memory_used: int  # bytes
    utilization: int  # GPU utilisation percent (0-100)
    memory_utilization: int  # memory-controller utilisation percent


class HostGpus(Protocol):
    def read(self) -> list[HostGpu]: ...


class NullHost:
    """No NVML (no driver, no GPU): no host metrics."""

    def read(self) -> list[HostGpu]:
        return []


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlHost:
    """Reads every GPU through ``nvml`` (the pynvml module or a test double)."""

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml

    def read(self) -> list[HostGpu]:
        nvml = self._nvml
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            try:
                gpus.append(self._one(index))
            except nvml.NVMLError as exc:
                log.warning("NVML: GPU %d unreadable: %s", index, exc)
        return gpus

    def _one(self, index: int) -> HostGpu:
        nvml = self._nvml
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        rates = nvml.nvmlDeviceGetUtilizationRates(handle)
        return HostGpu(
            index=index,
            uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
            name=_text(nvml.nvmlDeviceGetName(handle)),
            memory_used=int(nvml.nvmlDeviceGetMemoryInfo(handle).used),
            utilization=int(rates.gpu),
            memory_utilization=int(rates.memory),
        )


def open_host() -> HostGpus:
    """`NvmlHost` when NVML initialises, else `NullHost` (the only place that decides)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # ImportError, NVMLError_LibraryNotFound, driver errors
        log.info("NVML unavailable, host GPU metrics disabled: %s", exc)
        return NullHost()
    return NvmlHost(pynvml)
