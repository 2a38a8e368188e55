"""The NVML MIG backend and the read-only gpu-checks report against a pynvml stand-in (the
real library runs in gpu-checks/mig_report.sh on a GPU machine)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from hami.agent.discovery.nvml import NvmlSource
from hami.agent.mig.catalog import NVML_ERROR_NOT_SUPPORTED, MigError
from hami.api.types import MigPlacement
from tests.agent.test_nvml import UUIDS, FakeNvml, FakeNvmlError

pytestmark = pytest.mark.mig

REPORT = Path(__file__).resolve().parents[2] / "gpu-checks" / "mig_report.py"


class MigNvml(FakeNvml):
    """GPU 0 in MIG mode with no instances; the others without MIG. Mutations are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.mutations: list[str] = []

    def nvmlDeviceGetMigMode(self, h: int) -> list[int]:
        if h != 0:
            raise FakeNvmlError(self.NVML_ERROR_NOT_SUPPORTED)
        return [1, 1]

    def nvmlDeviceGetGpuInstances(self, h: int, pid: int, array: Any, count: Any) -> None:
        count._obj.value = 0

    def nvmlDeviceGetMaxMigDeviceCount(self, h: int) -> int:
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: int, i: int) -> Any:
        raise FakeNvmlError(self.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[Any]:
        return []

    def nvmlDeviceSetMigMode(self, h: int, mode: int) -> None:
        self.mutations.append("setMigMode")

    def nvmlDeviceCreateGpuInstanceWithPlacement(self, h: int, pid: int, where: Any) -> Any:
        self.mutations.append("createGpuInstance")
        raise FakeNvmlError(23)


def test_backend_reads_mode_profiles_and_maps_errors() -> None:
    nvml = MigNvml()
    mig = NvmlSource(nvml).mig()
    assert mig.capable(UUIDS[0]) and not mig.capable(UUIDS[1])
    assert mig.enabled(UUIDS[0]) and mig.instances(UUIDS[0]) == [] and not mig.busy(UUIDS[0])
    assert [p.name for p in mig.profiles(UUIDS[0])] == ["1g.5gb", "7g.40gb"]
    with pytest.raises(MigError) as exc:
        mig.enabled(UUIDS[1])
    assert exc.value.code == NVML_ERROR_NOT_SUPPORTED
    with pytest.raises(MigError) as exc:
        mig.create_gpu_instance(UUIDS[0], "1g.5gb", MigPlacement(0, 1))
    assert exc.value.code == 23 and "Insufficient Resources" in str(exc.value)


def test_report_is_read_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("mig_report", REPORT)
    assert spec is not None and spec.loader is not None
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    nvml = MigNvml()
    nvml.nvmlShutdown = lambda: None  # type: ignore[attr-defined]
    monkeypatch.setattr(report.NvmlSource, "open", classmethod(lambda cls: cls(nvml)))
    assert report.main() == 0
    out = json.loads(capsys.readouterr().out)
    first, second, _ = out["gpus"]
    assert first["migCapable"] and first["migMode"] == {"current": "enabled", "pending": "enabled"}
    assert [p["name"] for p in first["migProfiles"]] == ["1g.5gb", "7g.40gb"]
    assert first["instances"] == [] and not second["migCapable"]
    assert nvml.mutations == []
    guarded = report.ReadOnly(NvmlSource(nvml).mig())
    for name in report.MUTATING:
        with pytest.raises(RuntimeError, match="read-only"):
            getattr(guarded, name)
