"""Pure device logic: replica IDs for kubelet, the node registration, preferred allocations."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

from hami.agent.config.settings import NodeConfig
from hami.agent.errors import ConfigError
from hami.agent.mig.catalog import known_profile_names
from hami.agent.values import Gpu, KubeletDevice
from hami.api import keys
from hami.api.types import ContainerDevices, DeviceInfo, MigProfile


def allowed_profiles(gpu: Gpu, config: NodeConfig) -> tuple[MigProfile, ...]:
    """The GPU's MIG profiles the allow-list keeps (all of them when it is empty)."""
    if not config.mig_allowlist:
        return gpu.mig_profiles
    names = {
        name
        for models, profiles in config.mig_allowlist
        if any(m in gpu.model for m in models)
        for name in profiles
    }
    return tuple(p for p in gpu.mig_profiles if p.name in names)


def apply_allowlist(gpus: Sequence[Gpu], config: NodeConfig) -> tuple[Gpu, ...]:
    """In MIG mode: each GPU with only its allow-listed profiles (a GPU left with none is then
    not managed, as HAMi leaves it unregistered). Raises `ConfigError` for a profile name that
    is no MIG profile at all: neither one of this node's GPUs offers nor a known one."""
    if config.operating_mode != keys.MODE_MIG:
        return tuple(gpus)
    known = known_profile_names() | {p.name for g in gpus for p in g.mig_profiles}
    for i, (_models, profiles) in enumerate(config.mig_allowlist):
        for name in profiles:
            if name not in known:
                raise ConfigError(
                    f"migProfileAllowlist[{i}]: unknown MIG profile {name!r}: no GPU of this "
                    f"node offers it and it is no known profile of a MIG GPU (this node's: "
                    f"{', '.join(sorted({p.name for g in gpus for p in g.mig_profiles})) or 'none'})"
                )
    return tuple(replace(g, mig_profiles=allowed_profiles(g, config)) for g in gpus)


def managed(gpus: Sequence[Gpu], config: NodeConfig) -> tuple[Gpu, ...]:
    """GPUs this plugin manages: not filtered, with known memory (or a preconfigured value)."""
    out = []
    for gpu in gpus:
        if not config.manages(gpu.uuid, gpu.index):
            continue
        if gpu.memory_mib == 0 and config.preconfigured_memory == 0:
            continue
        if config.operating_mode == keys.MODE_MIG and not gpu.mig_profiles:
            continue
        out.append(gpu)
    return tuple(out)


def replica_count(gpu: Gpu, config: NodeConfig) -> int:
    """How many tasks may share the GPU: the split count, or in MIG mode the most instances."""
    if config.operating_mode == keys.MODE_MIG:
        return max((len(p.placements) for p in gpu.mig_profiles), default=0)
    return config.split_count


def replica_ids(gpu: Gpu, config: NodeConfig) -> list[str]:
    """``<UUID>-0 … <UUID>-(n-1)``: the device IDs kubelet sees for one GPU."""
    return [f"{gpu.uuid}-{i}" for i in range(replica_count(gpu, config))]


def kubelet_devices(
    gpus: Sequence[Gpu], health: Mapping[str, bool], config: NodeConfig
) -> list[KubeletDevice]:
    """The ListAndWatch list: every replica with its GPU's health (NUMA hint when enabled)."""
    return [
        KubeletDevice(
            id=rid,
            healthy=health.get(gpu.uuid, gpu.healthy),
            numa=gpu.numa if config.enable_numa_topology else None,
        )
        for gpu in gpus
        for rid in replica_ids(gpu, config)
    ]


def replica_owner(gpus: Sequence[Gpu], config: NodeConfig) -> dict[str, str]:
    """Replica ID → physical GPU UUID."""
    return {rid: gpu.uuid for gpu in gpus for rid in replica_ids(gpu, config)}


def physical_id(replica: str, owners: Mapping[str, str]) -> str:
    """The GPU UUID behind a replica ID (HAMi's rules for IDs we did not advertise)."""
    if replica in owners:
        return owners[replica]
    if "::" in replica:
        return replica.split("::", 1)[0]
    head, sep, tail = replica.rpartition("-")
    if sep and tail.isdigit() and replica.count("-") == 6:
        return head
    return replica


def model_name(model: str) -> str:
    return model if model.startswith("NVIDIA") else f"NVIDIA-{model}"


def registration(
    gpus: Sequence[Gpu], health: Mapping[str, bool], config: NodeConfig
) -> tuple[DeviceInfo, ...]:
    """The `hami.io/node-nvidia-register` devices (wire-format.md §5.3)."""
    return tuple(_device_info(gpu, health.get(gpu.uuid, gpu.healthy), config) for gpu in gpus)


def _device_info(gpu: Gpu, healthy: bool, config: NodeConfig) -> DeviceInfo:
    mig = config.operating_mode == keys.MODE_MIG
    memory = gpu.memory_mib or config.preconfigured_memory
    return DeviceInfo(
        id=gpu.uuid,
        index=gpu.index,
        count=replica_count(gpu, config),
        devmem=memory if mig else math.floor(memory * config.memory_scaling),
        devcore=100 if mig else int(100 * config.core_scaling),
        type=model_name(gpu.model),
        numa=max(gpu.numa, 0),
        mode=config.operating_mode,
        health=healthy,
        mig_profiles=gpu.mig_profiles if mig else (),
    )


def preferred_replicas(
    wanted: ContainerDevices | None,
    available: Sequence[str],
    must_include: Sequence[str],
    size: int,
    owners: Mapping[str, str],
) -> list[str]:
    """Pick ``size`` replica IDs: the required ones, then one replica of each annotated GPU,
    then any other available ones (kubelet rejects answers of the wrong size)."""
    chosen = list(dict.fromkeys(must_include))[:size]
    taken = {physical_id(r, owners) for r in chosen}
    for device in wanted or ():
        if len(chosen) >= size or device.uuid in taken:
            continue
        match = next((r for r in available if physical_id(r, owners) == device.uuid), None)
        if match is not None and match not in chosen:
            chosen.append(match)
            taken.add(device.uuid)
    for rid in available:
        if len(chosen) >= size:
            break
        if rid not in chosen:
            chosen.append(rid)
    return chosen
