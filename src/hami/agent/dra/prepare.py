"""Claim → CDI spec: what ``NodePrepareResources`` writes for one allocated claim.

Pure functions build the spec (libvgpu's env and mounts, reused from the device plugin's
:mod:`hami.agent.allocation.response`); :class:`SpecStore` writes and removes the spec files. A spec file is
the whole record of a prepared claim: writing it is atomic (scratch file + rename) and removing
a missing one is fine, so prepare and unprepare are idempotent and a plugin killed in the middle
of either leaves nothing behind that a retry does not mend (a stray scratch file is removed at
start).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hami.agent.allocation.response import HookFiles, Target, limit_env, limit_mounts
from hami.agent.config.settings import Settings
from hami.agent.values import Gpu, Mount
from hami.api.types import ContainerDevice
from hami.core.dra import names
from hami.core.dra.records import Allocation, allocations

CDI_VERSION = "0.6.0"
SPEC_PREFIX = f"{names.CDI_VENDOR}-{names.CDI_CLASS}_"
_CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
CACHE_CONTAINER = "claim"  # the <claimUID>_claim directory under <hook>/vgpu/containers


class PrepareError(Exception):
    """The claim cannot be prepared on this node; the message goes back to kubelet."""


@dataclass(frozen=True, slots=True)
class PreparedDevice:
    allocation: Allocation
    gpu: Gpu

    @property
    def cdi_name(self) -> str:
        return f"{self.allocation.claim_uid}-{self.allocation.device}"

    @property
    def cdi_id(self) -> str:
        return f"{names.CDI_KIND}={self.cdi_name}"


def claim_devices(
    claim: Mapping[str, Any], node: str, gpus: Mapping[str, Gpu]
) -> list[PreparedDevice]:
    """The claim's devices on this node; ``gpus`` maps device names to GPUs. Raises
    :class:`PrepareError` when the claim is not allocated here or names a device we lack."""
    meta = claim.get("metadata") or {}
    where = f"claim {meta.get('namespace')}/{meta.get('name')}"
    mine = [a for a in allocations([claim]) if a.node == node]
    if not mine:
        raise PrepareError(f"{where} has no device of {names.DRIVER} allocated on node {node}")
    out = []
    for allocation in mine:
        gpu = gpus.get(allocation.device)
        if gpu is None:
            raise PrepareError(f"{where}: device {allocation.device} is not on node {node}")
        out.append(PreparedDevice(allocation, gpu))
    return out


def limit_envs(devices: Sequence[PreparedDevice], settings: Settings) -> dict[str, str]:
    """HAMi-core's env for the claim's devices, in order: the device plugin's (memory limit per
    device, SM limit of the first, shared cache) plus an SM limit per device."""
    entry = tuple(
        ContainerDevice(d.gpu.uuid, d.gpu.model, d.allocation.memory_mib, d.allocation.cores)
        for d in devices
    )
    cache_id = devices[0].allocation.claim_uid
    envs = {"NVIDIA_VISIBLE_DEVICES": ",".join(d.gpu.uuid for d in devices)}
    envs |= limit_env(entry, settings, cache_id)
    envs |= {f"CUDA_DEVICE_SM_LIMIT_{i}": str(d.allocation.cores) for i, d in enumerate(devices)}
    return envs


def _mount(m: Mount) -> dict[str, Any]:
    options = (
        ["ro", "nosuid", "nodev", "bind"] if m.read_only else ["rw", "nosuid", "nodev", "bind"]
    )
    return {"hostPath": m.host_path, "containerPath": m.container_path, "options": options}


def cdi_spec(
    devices: Sequence[PreparedDevice],
    settings: Settings,
    hook: HookFiles,
    exists: Callable[[str], bool] = os.path.exists,
) -> dict[str, Any]:
    """The CDI spec of one claim: a device per GPU (its device node, when the host has it) and
    the claim's edits (env, libvgpu mounts, control nodes) applied with any of them."""
    claim_uid = devices[0].allocation.claim_uid
    target = Target(pod_uid=claim_uid, container=CACHE_CONTAINER, env={})
    envs = limit_envs(devices, settings)
    mounts = limit_mounts(settings, target, hook)
    spec_devices = []
    for d in devices:
        node = f"/dev/nvidia{d.gpu.index}"
        # CDI wants every device to edit something: without its node (a fake GPU), an env var
        edits: dict[str, Any] = {"deviceNodes": [{"path": node}]}
        if not exists(node):
            edits = {"env": [f"HAMI_DRA_GPU_{d.gpu.index}={d.gpu.uuid}"]}
        spec_devices.append({"name": d.cdi_name, "containerEdits": edits})
    claim_edits: dict[str, Any] = {
        "env": [f"{k}={v}" for k, v in sorted(envs.items())],
        "mounts": [_mount(m) for m in mounts],
    }
    control = [{"path": p} for p in _CONTROL_NODES if exists(p)]
    if control:
        claim_edits["deviceNodes"] = control
    return {
        "cdiVersion": CDI_VERSION,
        "kind": names.CDI_KIND,
        "devices": spec_devices,
        "containerEdits": claim_edits,
    }


def cache_dirs(devices: Sequence[PreparedDevice], settings: Settings) -> list[Path]:
    """Host directories the mounts need (the per-claim cache directory, the lock directory)."""
    target = Target(pod_uid=devices[0].allocation.claim_uid, container=CACHE_CONTAINER, env={})
    return [settings.hook_path / "vgpu" / "containers" / target.cache_dir_name, settings.lock_dir]


class SpecStore:
    """The CDI spec files of prepared claims, one ``<vendor>-<class>_<claimUID>.json`` each."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, claim_uid: str) -> Path:
        return self.directory / f"{SPEC_PREFIX}{claim_uid}.json"

    def write(self, claim_uid: str, spec: Mapping[str, Any]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(claim_uid)
        scratch = target.with_suffix(".tmp")
        scratch.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(scratch, target)
        return target

    def remove(self, claim_uid: str) -> bool:
        """Remove the claim's spec; False when there was none (already unprepared)."""
        try:
            self.path(claim_uid).unlink()
        except FileNotFoundError:
            return False
        return True

    def prepared(self) -> list[str]:
        """The claim UIDs with a spec file."""
        if not self.directory.is_dir():
            return []
        return sorted(
            p.name[len(SPEC_PREFIX) : -len(".json")]
            for p in self.directory.glob(f"{SPEC_PREFIX}*.json")
        )

    def sweep(self) -> int:
        """Remove scratch files a killed prepare left; returns how many."""
        if not self.directory.is_dir():
            return 0
        stray = list(self.directory.glob(f"{SPEC_PREFIX}*.tmp"))
        for path in stray:
            path.unlink(missing_ok=True)
        return len(stray)
