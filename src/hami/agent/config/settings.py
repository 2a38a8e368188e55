"""Device-plugin settings: one frozen `Settings` per node, built once at start-up by
:mod:`hami.agent.config.loading` and passed explicitly. Standard library only (the GPU check imports
this without any third-party package)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hami import __version__
from hami.agent.errors import ConfigError
from hami.api import keys

LIST_STRATEGIES = ("envvar", "volume-mounts", "cdi-annotations", "cdi-cri")
CDI_STRATEGIES = frozenset({"cdi-annotations", "cdi-cri"})
OPERATING_MODES = (keys.MODE_HAMI_CORE, keys.MODE_MIG, keys.MODE_MPS)
DEVICE_PLUGIN_DIR = Path("/var/lib/kubelet/device-plugins")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """The device settings of one node (after precedence)."""

    resource_name: str = keys.NVIDIA_GPU
    split_count: int = 10
    memory_scaling: float = 1.0
    core_scaling: float = 1.0
    preconfigured_memory: int = 0
    lib_cuda_log_level: str = "1"
    enable_numa_topology: bool = False
    disable_core_limit: bool = False
    operating_mode: str = keys.MODE_HAMI_CORE
    filter_uuids: frozenset[str] = frozenset()
    filter_indexes: frozenset[int] = frozenset()
    preferred_allocation: bool = False
    # migProfileAllowlist: (models, profiles) rules; a GPU whose model contains one of the
    # models offers only those profiles. Empty: every profile the GPU has (hami's default).
    mig_allowlist: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()
    mig_disable_idle: bool = False  # switch an idle GPU out of MIG mode (never by default)

    def manages(self, uuid: str, index: int) -> bool:
        """False for GPUs listed in ``filterdevices`` (not managed at all)."""
        return uuid not in self.filter_uuids and index not in self.filter_indexes


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything one plugin process needs; passed explicitly, never global."""

    node_name: str
    node: NodeConfig = field(default_factory=NodeConfig)
    socket_dir: Path = DEVICE_PLUGIN_DIR
    hook_path: Path = Path("/usr/local")
    lock_dir: Path = Path("/tmp/vgpulock")
    list_strategies: tuple[str, ...] = ("envvar",)
    id_strategy: Literal["uuid", "index"] = "uuid"
    topology_score: bool = False
    pass_device_specs: bool = False
    gdrcopy: bool = False
    gds: bool = False
    mofed: bool = False
    cdi_annotation_prefix: str = "cdi.k8s.io/"
    cdi_spec_dir: Path = Path("/var/run/cdi")
    prepare_host: bool = True
    register_interval: float = 30.0
    mig_state_dir: Path | None = None  # MIG ledger (and fake MIG state); None: in memory
    plugin_version: str = __version__

    @property
    def socket_name(self) -> str:
        """``nvidia-<suffix>.sock`` where suffix is the resource name after ``/``."""
        return f"nvidia-{self.node.resource_name.rsplit('/', 1)[-1]}.sock"

    @property
    def cdi_only(self) -> bool:
        return all(s in CDI_STRATEGIES for s in self.list_strategies)


def validate(settings: Settings) -> Settings:
    """Start-up checks that span several fields."""
    for strategy in settings.list_strategies:
        if strategy not in LIST_STRATEGIES:
            raise ConfigError(
                f"--device-list-strategy: unknown strategy {strategy!r} "
                f"(expected {', '.join(LIST_STRATEGIES)})"
            )
    node = settings.node
    if node.operating_mode not in OPERATING_MODES:
        raise ConfigError(f"operatingmode: unknown mode {node.operating_mode!r}")
    if "/" not in node.resource_name:
        raise ConfigError(f"resource name {node.resource_name!r} must look like vendor/name")
    if node.split_count < 1:
        raise ConfigError(f"deviceSplitCount: must be >= 1, got {node.split_count}")
    return settings
