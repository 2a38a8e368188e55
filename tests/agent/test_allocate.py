"""Allocate response contents (wire-format.md §5.6): env, mounts, devices, CDI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from hami.agent.allocation.response import (
    REGULAR_FILE,
    HookFiles,
    Target,
    build_mig_response,
    build_response,
    file_kind,
    file_mounts,
    stale_container_dirs,
    unusable_files,
)
from hami.agent.config.settings import NodeConfig, Settings
from hami.agent.values import ContainerAllocation, DeviceNode, Mount
from hami.api.types import ContainerDevices
from tests.builders import container_device as dev

GPU_A = "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448"
GPU_B = "GPU-ebe7c3f7-303d-558d-435e-99a160631fe4"
SETTINGS = Settings("node-a")
TARGET = Target("pod-uid", "cuda", {})
HOOK = HookFiles(libvgpu="/usr/local/vgpu/libvgpu.so")
INDEX = {GPU_A: 0, GPU_B: 1}


def respond(
    settings: Settings = SETTINGS,
    target: Target = TARGET,
    hook: HookFiles = HOOK,
    *,
    entry: ContainerDevices | None = None,
    exists: Callable[[Path], bool] = lambda p: False,
) -> ContainerAllocation:
    return build_response(
        entry if entry is not None else (dev(GPU_A, 3000, 30),),
        target,
        settings,
        index_of=INDEX,
        hook=hook,
        cache_id="c0ffee",
        exists=exists,
    )


def test_worked_example_env_and_mounts() -> None:
    result = respond()
    assert result.envs == {
        "NVIDIA_VISIBLE_DEVICES": GPU_A,
        "CUDA_DEVICE_MEMORY_LIMIT_0": "3000m",
        "CUDA_DEVICE_SM_LIMIT": "30",
        "CUDA_DEVICE_MEMORY_SHARED_CACHE": "/usr/local/vgpu/c0ffee.cache",
        "LIBCUDA_LOG_LEVEL": "1",
    }
    assert result.mounts == (
        Mount("/usr/local/vgpu", "/usr/local/vgpu/containers/pod-uid_cuda", False),
        Mount("/usr/local/vgpu/libvgpu.so", "/usr/local/vgpu/libvgpu.so", True),
        Mount("/tmp/vgpulock", "/tmp/vgpulock", False),
        Mount("/etc/ld.so.preload", "/usr/local/vgpu/ld.so.preload", True),
    )
    assert result.devices == () and result.cdi_devices == () and not result.annotations


def test_two_devices_get_one_limit_each_and_the_first_sm_limit() -> None:
    result = respond(entry=(dev(GPU_A, 500, 3), dev(GPU_B, 700, 9)))
    assert result.envs["NVIDIA_VISIBLE_DEVICES"] == f"{GPU_A},{GPU_B}"
    assert result.envs["CUDA_DEVICE_MEMORY_LIMIT_0"] == "500m"
    assert result.envs["CUDA_DEVICE_MEMORY_LIMIT_1"] == "700m"
    assert result.envs["CUDA_DEVICE_SM_LIMIT"] == "3"


def test_cuda_disable_control_drops_ld_so_preload() -> None:
    for value, preload in (("true", False), ("1", False), ("false", True), ("maybe", True)):
        result = respond(target=Target("u", "c", {"CUDA_DISABLE_CONTROL": value}))
        assert any(m.container_path == "/etc/ld.so.preload" for m in result.mounts) is preload


def test_node_settings_add_policy_env() -> None:
    node = NodeConfig(memory_scaling=2, disable_core_limit=True, lib_cuda_log_level="")
    env = respond(settings=replace(SETTINGS, node=node, gdrcopy=True, mofed=True)).envs
    assert env["CUDA_OVERSUBSCRIBE"] == "true"
    assert env["GPU_CORE_UTILIZATION_POLICY"] == "disable"
    assert env["NVIDIA_GDRCOPY"] == env["NVIDIA_MOFED"] == "enabled"
    assert "LIBCUDA_LOG_LEVEL" not in env and "NVIDIA_GDS" not in env


def test_index_id_strategy() -> None:
    result = respond(settings=replace(SETTINGS, id_strategy="index"), entry=(dev(GPU_B),))
    assert result.envs["NVIDIA_VISIBLE_DEVICES"] == "1"


def test_volume_mounts_strategy() -> None:
    result = respond(settings=replace(SETTINGS, list_strategies=("volume-mounts",)))
    assert result.envs["NVIDIA_VISIBLE_DEVICES"] == "/var/run/nvidia-container-devices"
    assert result.mounts[0] == Mount(
        f"/var/run/nvidia-container-devices/{GPU_A}", "/dev/null", False
    )


def test_cdi_strategies_name_devices_and_keep_hami_core_env() -> None:
    settings = replace(SETTINGS, list_strategies=("cdi-cri", "cdi-annotations"))
    result = respond(settings=settings)
    name = f"k8s.device-plugin.nvidia.com/gpu={GPU_A}"
    assert result.cdi_devices == (name,)
    assert result.annotations == {"cdi.k8s.io/hami-device-plugin_c0ffee": name}
    assert "NVIDIA_VISIBLE_DEVICES" not in result.envs
    assert result.envs["CUDA_DEVICE_MEMORY_LIMIT_0"] == "3000m"


def test_license_and_versioned_library(tmp_path: Path) -> None:
    vgpu = tmp_path / "vgpu"
    vgpu.mkdir()
    settings = replace(SETTINGS, hook_path=tmp_path, plugin_version="2.9.0")
    assert HookFiles.inspect(settings).libvgpu == str(vgpu / "libvgpu.so")
    (vgpu / "libvgpu.so.2.9.0").touch()
    (vgpu / "license").touch()
    hook = HookFiles.inspect(settings)
    assert hook == HookFiles(str(vgpu / "libvgpu.so.2.9.0"), license=True)
    paths = {m.container_path: m.host_path for m in respond(settings=settings, hook=hook).mounts}
    assert paths[f"{vgpu}/libvgpu.so"] == str(vgpu / "libvgpu.so.2.9.0")
    assert paths["/tmp/license"] == f"{vgpu}/license"
    assert paths["/usr/bin/vgpuvalidator"] == f"{vgpu}/vgpuvalidator"


def test_a_versioned_library_that_is_not_a_file_is_not_used(tmp_path: Path) -> None:
    vgpu = tmp_path / "vgpu"
    (vgpu / "libvgpu.so.2.9.0").mkdir(parents=True)  # e.g. left by a runtime as a bind source
    settings = replace(SETTINGS, hook_path=tmp_path, plugin_version="2.9.0")
    assert HookFiles.inspect(settings) == HookFiles(str(vgpu / "libvgpu.so"))


def test_file_kind_tells_what_a_bind_mount_would_get(tmp_path: Path) -> None:
    (tmp_path / "file").touch()
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "file")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert file_kind(tmp_path / "file") == file_kind(tmp_path / "link") == REGULAR_FILE
    assert file_kind(tmp_path / "dir") == "a directory"
    assert file_kind(tmp_path / "nowhere") == file_kind(tmp_path / "dangling") == "missing"
    assert file_kind(Path("/dev/null")) == "not a regular file"


def test_every_mounted_hami_core_file_must_be_a_regular_file() -> None:
    kinds = {
        "/usr/local/vgpu/libvgpu.so": "missing",
        "/usr/local/vgpu/ld.so.preload": "a directory",
        "/usr/local/vgpu/license": REGULAR_FILE,
        "/usr/local/vgpu/vgpuvalidator": REGULAR_FILE,
    }
    mounts = file_mounts(SETTINGS, TARGET, HookFiles("/usr/local/vgpu/libvgpu.so", license=True))
    assert [m.host_path for m in mounts] == list(kinds)
    assert all(m.read_only for m in mounts)
    assert unusable_files(mounts, lambda p: kinds[str(p)]) == [
        "/usr/local/vgpu/libvgpu.so is missing",
        "/usr/local/vgpu/ld.so.preload is a directory",
    ]


def test_cuda_disable_control_needs_only_the_library() -> None:
    target = Target("u", "c", {"CUDA_DISABLE_CONTROL": "true"})
    mounts = file_mounts(SETTINGS, target, HOOK)
    assert [m.host_path for m in mounts] == ["/usr/local/vgpu/libvgpu.so"]


UID_A = "0b6f2a34-8c1d-4e5f-9a7b-1c2d3e4f5a6b"
UID_B = "7e3c9d10-2b4a-4c6d-8e9f-0a1b2c3d4e5f"


def test_stale_container_dirs_are_those_of_gone_pods_only() -> None:
    names = [
        f"{UID_A}_cuda",
        f"{UID_A}_side-car",
        f"{UID_B}_main",
        f"{UID_B}_x",
        "monitor.lock",  # not a <uid>_<container> name: never removed
        f"{UID_B}",
        f"{UID_B}_",
        f"{UID_B}_Main",  # not a container name
        f"{UID_B}_a_b",
        f"not-a-uid_{UID_B}",
        f"../{UID_B}_main",
        f"{UID_B}_main/..",
    ]
    assert stale_container_dirs(names, {UID_A}) == [f"{UID_B}_main", f"{UID_B}_x"]
    assert stale_container_dirs(names, {UID_A, UID_B}) == []
    assert stale_container_dirs([], set()) == []


def test_pass_device_specs() -> None:
    result = respond(
        settings=replace(SETTINGS, pass_device_specs=True),
        entry=(dev(GPU_B),),
        exists=lambda p: str(p) == "/dev/nvidia-uvm-tools",
    )
    assert result.devices == tuple(
        DeviceNode(p, p, "rw")
        for p in ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia1")
    )


def test_mig_response_has_no_hami_core_env() -> None:
    result = build_mig_response(["MIG-1234"], SETTINGS, "x")
    assert result.envs == {"NVIDIA_VISIBLE_DEVICES": "MIG-1234"} and result.mounts == ()
