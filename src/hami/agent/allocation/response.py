"""Pure: one container's device entry + settings → env, mounts, devices, CDI names (§5.6)."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hami.agent.config.settings import Settings
from hami.agent.values import ContainerAllocation, DeviceNode, Mount
from hami.api import keys
from hami.api.annotations import parse_go_bool
from hami.api.errors import WireFormatError
from hami.api.types import ContainerDevices

CDI_KIND = "k8s.device-plugin.nvidia.com/gpu"
DEVICE_LIST_DIR = "/var/run/nvidia-container-devices"
DISABLE_CONTROL_ENV = "CUDA_DISABLE_CONTROL"
_ALWAYS_DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm")
_OPTIONAL_DEVICE_NODES = ("/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")
REGULAR_FILE = "a regular file"
# `<podUID>_<container>`: a Kubernetes pod UID (a UUID) and a container name (a DNS label)
_CONTAINER_DIR = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"_[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
)


@dataclass(frozen=True, slots=True)
class Target:
    """The container an entry is for."""

    pod_uid: str
    container: str
    env: Mapping[str, str]

    @property
    def cache_dir_name(self) -> str:
        return f"{self.pod_uid}_{self.container}"

    def disable_control(self) -> bool:
        raw = self.env.get(DISABLE_CONTROL_ENV)
        if raw is None:
            return False
        try:
            return parse_go_bool(DISABLE_CONTROL_ENV, raw)
        except WireFormatError:
            return False


def file_kind(path: Path) -> str:
    """What a bind mount of ``path`` would get (links followed): `REGULAR_FILE`, "missing",
    "a directory", "not a regular file" or "unreadable (<why>)"."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return REGULAR_FILE
    return "a directory" if stat.S_ISDIR(mode) else "not a regular file"


@dataclass(frozen=True, slots=True)
class HookFiles:
    """What the HAMi-core install under ``<hook>/vgpu`` provides on this host."""

    libvgpu: str  # host path of the library to mount
    license: bool = False

    @classmethod
    def inspect(cls, settings: Settings, kind: Callable[[Path], str] = file_kind) -> HookFiles:
        """The versioned library when it is a regular file, else the unversioned one (whether
        that one is usable is `unusable_files`' question)."""
        vgpu = settings.hook_path / "vgpu"
        versioned = vgpu / f"libvgpu.so.{settings.plugin_version}"
        lib = versioned if kind(versioned) == REGULAR_FILE else vgpu / "libvgpu.so"
        return cls(libvgpu=str(lib), license=kind(vgpu / "license") != "missing")


def vgpu_dir(settings: Settings) -> str:
    return str(settings.hook_path / "vgpu")


def container_dir(settings: Settings, target: Target) -> Path:
    """Host directory that holds the container's shared cache file (the monitor reads it)."""
    return settings.hook_path / "vgpu" / "containers" / target.cache_dir_name


def runtime_ids(
    entry: ContainerDevices, settings: Settings, index_of: Mapping[str, int]
) -> list[str]:
    if settings.id_strategy == "index":
        return [str(index_of.get(d.uuid, d.uuid)) for d in entry]
    return [d.uuid for d in entry]


def visibility(ids: Sequence[str], settings: Settings, cache_id: str) -> ContainerAllocation:
    """How the runtime learns the devices: env var, volume mounts and/or CDI names."""
    envs: dict[str, str] = {}
    mounts: list[Mount] = []
    annotations: dict[str, str] = {}
    cdi: tuple[str, ...] = ()
    strategies = settings.list_strategies
    if "envvar" in strategies:
        envs["NVIDIA_VISIBLE_DEVICES"] = ",".join(ids)
    if "volume-mounts" in strategies:
        envs["NVIDIA_VISIBLE_DEVICES"] = DEVICE_LIST_DIR
        mounts += [Mount(f"{DEVICE_LIST_DIR}/{i}", "/dev/null", False) for i in ids]
    names = tuple(f"{CDI_KIND}={i}" for i in ids)
    if "cdi-annotations" in strategies:
        key = f"{settings.cdi_annotation_prefix}hami-device-plugin_{cache_id}"
        annotations[key] = ",".join(names)
    if "cdi-cri" in strategies:
        cdi = names
    return ContainerAllocation(
        envs=envs, mounts=tuple(mounts), annotations=annotations, cdi_devices=cdi
    )


def limit_env(entry: ContainerDevices, settings: Settings, cache_id: str) -> dict[str, str]:
    """The HAMi-core env: memory limits per device, SM limit, shared cache, policies."""
    envs = {f"CUDA_DEVICE_MEMORY_LIMIT_{i}": f"{d.usedmem}m" for i, d in enumerate(entry)}
    envs["CUDA_DEVICE_SM_LIMIT"] = str(entry[0].usedcores)
    envs["CUDA_DEVICE_MEMORY_SHARED_CACHE"] = f"{vgpu_dir(settings)}/{cache_id}.cache"
    node = settings.node
    if node.memory_scaling > 1:
        envs["CUDA_OVERSUBSCRIBE"] = "true"
    if node.lib_cuda_log_level:
        envs["LIBCUDA_LOG_LEVEL"] = node.lib_cuda_log_level
    if node.disable_core_limit:
        envs["GPU_CORE_UTILIZATION_POLICY"] = "disable"
    return envs


def feature_env(settings: Settings) -> dict[str, str]:
    flags = {"NVIDIA_GDRCOPY": settings.gdrcopy, "NVIDIA_GDS": settings.gds}
    flags["NVIDIA_MOFED"] = settings.mofed
    return {name: "enabled" for name, on in flags.items() if on}


def file_mounts(settings: Settings, target: Target, hook: HookFiles) -> list[Mount]:
    """The HAMi-core files bind-mounted read-only into the container, library first. Each host
    path must be a regular file: the runtime creates a missing bind source as a directory, and
    the container would then start without its limits. ``CUDA_DISABLE_CONTROL=true`` drops
    ``ld.so.preload`` (as HAMi does), so such a container runs without libvgpu."""
    vgpu = vgpu_dir(settings)
    mounts = [Mount(f"{vgpu}/libvgpu.so", hook.libvgpu, True)]
    if not target.disable_control():
        mounts.append(Mount("/etc/ld.so.preload", f"{vgpu}/ld.so.preload", True))
    if hook.license:
        mounts.append(Mount("/tmp/license", f"{vgpu}/license", True))
        mounts.append(Mount("/usr/bin/vgpuvalidator", f"{vgpu}/vgpuvalidator", True))
    return mounts


def unusable_files(mounts: Iterable[Mount], kind: Callable[[Path], str]) -> list[str]:
    """``"<host path> is <what>"`` for every mount whose host path is not a regular file."""
    found = ((m.host_path, kind(Path(m.host_path))) for m in mounts)
    return [f"{path} is {what}" for path, what in found if what != REGULAR_FILE]


def limit_mounts(settings: Settings, target: Target, hook: HookFiles) -> list[Mount]:
    """The per-container cache directory, the lock directory and the HAMi-core files."""
    library, *files = file_mounts(settings, target, hook)
    return [
        Mount(vgpu_dir(settings), str(container_dir(settings, target)), False),
        library,
        Mount("/tmp/vgpulock", str(settings.lock_dir), False),
        *files,
    ]


def stale_container_dirs(names: Iterable[str], live_uids: Collection[str]) -> list[str]:
    """Which entries of ``<hook>/vgpu/containers`` to remove: the ``<podUID>_<container>``
    names whose pod is not among ``live_uids``. Any other name is never chosen."""
    return sorted(
        name
        for name in names
        if _CONTAINER_DIR.fullmatch(name) and name.partition("_")[0] not in live_uids
    )


def device_nodes(
    entry: ContainerDevices, index_of: Mapping[str, int], exists: Callable[[Path], bool]
) -> tuple[DeviceNode, ...]:
    """``--pass-device-specs``: the control nodes plus one ``/dev/nvidia<index>`` per GPU."""
    paths = [*_ALWAYS_DEVICE_NODES, *(p for p in _OPTIONAL_DEVICE_NODES if exists(Path(p)))]
    paths += [f"/dev/nvidia{index_of[d.uuid]}" for d in entry if d.uuid in index_of]
    return tuple(DeviceNode(p, p, "rw") for p in paths)


def build_response(
    entry: ContainerDevices,
    target: Target,
    settings: Settings,
    *,
    index_of: Mapping[str, int],
    hook: HookFiles,
    cache_id: str,
    exists: Callable[[Path], bool] = Path.exists,
) -> ContainerAllocation:
    """The full response for one container in hami-core mode."""
    shown = visibility(runtime_ids(entry, settings, index_of), settings, cache_id)
    envs = {**shown.envs, **feature_env(settings), **limit_env(entry, settings, cache_id)}
    devices = device_nodes(entry, index_of, exists) if settings.pass_device_specs else ()
    return ContainerAllocation(
        envs=envs,
        mounts=(*shown.mounts, *limit_mounts(settings, target, hook)),
        devices=devices,
        annotations=shown.annotations,
        cdi_devices=shown.cdi_devices,
    )


def build_mig_response(
    mig_uuids: Sequence[str], settings: Settings, cache_id: str
) -> ContainerAllocation:
    """MIG mode: only the realised MIG devices, no HAMi-core env or mounts."""
    return visibility(list(mig_uuids), settings, cache_id)


__all__ = ["build_mig_response", "build_response", "keys"]
