"""A stand-in for nvidia-ml-py's ``pynvml`` for a ``hami monitor`` subprocess (put this
directory first on PYTHONPATH): the GPUs of the JSON file named by ``HAMI_FAKE_NVML``, a list
of ``{"uuid", "name", "memory_used", "gpu", "memory"}``. Only what ``hami.monitor.host``
calls."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace
from typing import Any


class NVMLError(Exception):
    pass


def _gpus() -> list[dict[str, Any]]:
    with open(os.environ["HAMI_FAKE_NVML"]) as file:
        gpus: list[dict[str, Any]] = json.load(file)
    return gpus


def nvmlInit() -> None:
    _gpus()


def nvmlDeviceGetCount() -> int:
    return len(_gpus())


def nvmlDeviceGetHandleByIndex(index: int) -> int:
    return index


def nvmlDeviceGetUUID(handle: int) -> str:
    return str(_gpus()[handle]["uuid"])


def nvmlDeviceGetName(handle: int) -> str:
    return str(_gpus()[handle]["name"])


def nvmlDeviceGetMemoryInfo(handle: int) -> SimpleNamespace:
    return SimpleNamespace(used=_gpus()[handle]["memory_used"])


def nvmlDeviceGetUtilizationRates(handle: int) -> SimpleNamespace:
    gpu = _gpus()[handle]
    return SimpleNamespace(gpu=gpu["gpu"], memory=gpu["memory"])
