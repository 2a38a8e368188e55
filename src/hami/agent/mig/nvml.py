"""The real MIG backend: NVML through nvidia-ml-py, as thin as the port allows.

Untested on a GPU here (the fake backend carries the rules); ``gpu-checks/mig_report.py`` reads
a GPU's MIG capability and instances through it without changing anything. Every
``NVMLError`` becomes a `MigError` with NVML's return code."""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from hami.agent.mig.catalog import NVML_ERROR_NOT_FOUND, NVML_ERROR_UNKNOWN, MigError
from hami.agent.mig.port import MigInstance
from hami.api.types import MigPlacement, MigProfile

T = TypeVar("T")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlMig:
    """The `MigBackend` over NVML. ``handles``: GPU UUID → device handle (from discovery);
    ``profiles``: GPU UUID → the profiles discovery read."""

    def __init__(
        self, nvml: Any, handles: Mapping[str, Any], profiles: Mapping[str, tuple[MigProfile, ...]]
    ) -> None:
        self._nvml = nvml
        self._handles = dict(handles)
        self._profiles = dict(profiles)
        self._ids: dict[str, dict[str, int]] = {}  # GPU → profile name → NVML profile id

    def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except self._nvml.NVMLError as exc:
            raise MigError(int(getattr(exc, "value", NVML_ERROR_UNKNOWN)), what) from None

    def _handle(self, gpu: str) -> Any:
        try:
            return self._handles[gpu]
        except KeyError:
            raise MigError(NVML_ERROR_NOT_FOUND, f"no GPU {gpu}") from None

    def capable(self, gpu: str) -> bool:
        try:
            self._call("get MIG mode", self._nvml.nvmlDeviceGetMigMode, self._handle(gpu))
        except MigError:
            return False
        return True

    def enabled(self, gpu: str) -> bool:
        current, _pending = self._call(
            f"get MIG mode of {gpu}", self._nvml.nvmlDeviceGetMigMode, self._handle(gpu)
        )
        return bool(current == self._nvml.NVML_DEVICE_MIG_ENABLE)

    def set_enabled(self, gpu: str, enabled: bool) -> None:
        mode = self._nvml.NVML_DEVICE_MIG_ENABLE if enabled else self._nvml.NVML_DEVICE_MIG_DISABLE
        self._call(
            f"set MIG mode of {gpu}", self._nvml.nvmlDeviceSetMigMode, self._handle(gpu), mode
        )

    def profiles(self, gpu: str) -> tuple[MigProfile, ...]:
        return self._profiles.get(gpu, ())

    def _profile_ids(self, gpu: str) -> dict[str, int]:
        if gpu not in self._ids:
            nvml, handle, ids = self._nvml, self._handle(gpu), {}
            for profile_id in range(nvml.NVML_GPU_INSTANCE_PROFILE_COUNT):
                try:
                    info = nvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, profile_id, 2)
                except nvml.NVMLError:
                    continue
                name = _text(getattr(info, "name", b"")).removeprefix("MIG ").strip()
                if not name:  # as discovery names it (hami.agent.discovery.nvml)
                    name = f"{info.sliceCount}g.{math.ceil(info.memorySizeMB / 1024)}gb"
                ids[name] = int(info.id)
            self._ids[gpu] = ids
        return self._ids[gpu]

    def _gpu_instances(self, gpu: str) -> Iterator[tuple[str, Any]]:
        nvml, handle = self._nvml, self._handle(gpu)
        for name, profile_id in self._profile_ids(gpu).items():
            count = ctypes.c_uint(0)
            array = (nvml.c_nvmlGpuInstance_t * 8)()
            try:
                nvml.nvmlDeviceGetGpuInstances(handle, profile_id, array, ctypes.byref(count))
            except nvml.NVMLError:
                continue
            for gi in array[: count.value]:
                yield name, gi

    def instances(self, gpu: str) -> list[MigInstance]:
        nvml, found = self._nvml, []
        for name, gi in self._gpu_instances(gpu):
            info = self._call("GPU instance info", nvml.nvmlGpuInstanceGetInfo, gi)
            placement = MigPlacement(int(info.placement.start), int(info.placement.size))
            ci = self._first_ci(gi)
            ci_id = int(ci.id) if ci is not None else None
            mig_uuid = self._mig_uuid(gpu, int(info.id), ci_id) if ci_id is not None else None
            found.append(MigInstance(gpu, name, placement, int(info.id), ci_id, mig_uuid))
        return sorted(found, key=lambda i: i.gpu_instance_id)

    def _first_ci(self, gi: Any) -> Any:
        nvml = self._nvml
        for profile_id in range(nvml.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
            count = ctypes.c_uint(0)
            array = (nvml.c_nvmlComputeInstance_t * 8)()
            try:
                nvml.nvmlGpuInstanceGetComputeInstances(gi, profile_id, array, ctypes.byref(count))
            except nvml.NVMLError:
                continue
            if count.value:
                return nvml.nvmlComputeInstanceGetInfo(array[0])
        return None

    def _mig_uuid(self, gpu: str, gi: int, ci: int) -> str | None:
        nvml, handle = self._nvml, self._handle(gpu)
        for index in range(
            self._call("MIG device count", nvml.nvmlDeviceGetMaxMigDeviceCount, handle)
        ):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, index)
                if (
                    nvml.nvmlDeviceGetGpuInstanceId(mig) == gi
                    and nvml.nvmlDeviceGetComputeInstanceId(mig) == ci
                ):
                    return _text(nvml.nvmlDeviceGetUUID(mig))
            except nvml.NVMLError:
                continue
        return None

    def create_gpu_instance(self, gpu: str, profile: str, placement: MigPlacement) -> int:
        nvml = self._nvml
        profile_id = self._profile_ids(gpu).get(profile)
        if profile_id is None:
            raise MigError(nvml.NVML_ERROR_NOT_SUPPORTED, f"GPU {gpu} has no MIG profile {profile}")
        where = nvml.c_nvmlGpuInstancePlacement_t()
        where.start, where.size = placement.start, placement.size
        gi = self._call(
            f"create {profile} at {placement.start} on {gpu}",
            nvml.nvmlDeviceCreateGpuInstanceWithPlacement,
            self._handle(gpu),
            profile_id,
            ctypes.byref(where),
        )
        return int(self._call("GPU instance info", nvml.nvmlGpuInstanceGetInfo, gi).id)

    def _gi(self, gpu: str, gpu_instance_id: int) -> Any:
        return self._call(
            f"GPU instance {gpu_instance_id} on {gpu}",
            self._nvml.nvmlDeviceGetGpuInstanceById,
            self._handle(gpu),
            gpu_instance_id,
        )

    def create_compute_instance(self, gpu: str, gpu_instance_id: int) -> MigInstance:
        nvml = self._nvml
        gi = self._gi(gpu, gpu_instance_id)
        info = self._call("GPU instance info", nvml.nvmlGpuInstanceGetInfo, gi)
        full = self._full_ci_profile(gi)
        ci = self._call(
            f"create compute instance in GI {gpu_instance_id} on {gpu}",
            nvml.nvmlGpuInstanceCreateComputeInstance,
            gi,
            full,
        )
        ci_id = int(self._call("CI info", nvml.nvmlComputeInstanceGetInfo, ci).id)
        name = next((n for n, i in self._profile_ids(gpu).items() if i == int(info.profileId)), "?")
        placement = MigPlacement(int(info.placement.start), int(info.placement.size))
        mig_uuid = self._mig_uuid(gpu, gpu_instance_id, ci_id)
        return MigInstance(gpu, name, placement, gpu_instance_id, ci_id, mig_uuid)

    def _full_ci_profile(self, gi: Any) -> int:
        """The largest compute-instance profile the GI supports (one CI spanning it)."""
        nvml, best = self._nvml, None
        for profile_id in range(nvml.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
            try:
                info = nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(
                    gi, profile_id, nvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
                )
            except nvml.NVMLError:
                continue
            if best is None or info.sliceCount > best.sliceCount:
                best = info
        if best is None:
            raise MigError(nvml.NVML_ERROR_NOT_SUPPORTED, "no compute-instance profile")
        return int(best.id)

    def destroy_compute_instance(self, gpu: str, gpu_instance_id: int, ci: int) -> None:
        nvml = self._nvml
        gi = self._gi(gpu, gpu_instance_id)
        handle = self._call(
            f"CI {ci} of GI {gpu_instance_id}", nvml.nvmlGpuInstanceGetComputeInstanceById, gi, ci
        )
        self._call(
            f"destroy CI {ci} of GI {gpu_instance_id}", nvml.nvmlComputeInstanceDestroy, handle
        )

    def destroy_gpu_instance(self, gpu: str, gpu_instance_id: int) -> None:
        gi = self._gi(gpu, gpu_instance_id)
        self._call(f"destroy GI {gpu_instance_id} on {gpu}", self._nvml.nvmlGpuInstanceDestroy, gi)

    def busy(self, gpu: str) -> bool:
        nvml, handle = self._nvml, self._handle(gpu)
        handles = [handle]
        try:
            for index in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
                try:
                    handles.append(nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, index))
                except nvml.NVMLError:
                    continue
        except nvml.NVMLError:
            pass
        for h in handles:
            try:
                if nvml.nvmlDeviceGetComputeRunningProcesses(h):
                    return True
            except nvml.NVMLError:
                continue
        return False
