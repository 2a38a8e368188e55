"""A faithful fake of NVML's MIG: profiles per GPU model, legal placements, overlap and
compute-slice rules, GI/CI IDs, MIG-mode toggling and the errors real drivers return.

State lives in memory, or in a JSON file (``state_path``) re-read and rewritten under a file
lock on every call, so a restarted plugin (or a test in another process) sees the instances
the previous one left — as a real GPU keeps them across plugin restarts.

Rules (as the driver applies them):

* creating anything needs MIG mode on (else ``NOT_SUPPORTED``); a GPU model without MIG
  answers ``NOT_SUPPORTED`` to every MIG call;
* a profile the GPU does not offer is ``NOT_SUPPORTED``; a placement not among the profile's
  possible placements is ``INVALID_ARGUMENT``; one overlapping an existing GI (memory slices)
  or exceeding the 7 compute slices is ``INSUFFICIENT_RESOURCES``;
* a GI holds one full-size compute instance (a second is ``INSUFFICIENT_RESOURCES``);
* destroying a GI that still has a CI, a CI with processes, or switching MIG mode while GIs
  or processes exist is ``IN_USE``; unknown IDs are ``NOT_FOUND``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import uuid as uuidlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hami.agent.mig.catalog import (
    COMPUTE_SLICES,
    NVML_ERROR_IN_USE,
    NVML_ERROR_INSUFFICIENT_RESOURCES,
    NVML_ERROR_INVALID_ARGUMENT,
    NVML_ERROR_NOT_FOUND,
    NVML_ERROR_NOT_SUPPORTED,
    MigError,
    ProfileSpec,
    to_profiles,
)
from hami.agent.mig.port import MigInstance
from hami.api.types import MigPlacement, MigProfile

_NAMESPACE = uuidlib.UUID("0b7f4c1e-5d8a-4b2e-9a61-3c2d8e9f1a57")
OPERATIONS = (
    "setMigMode",
    "createGpuInstance",
    "createComputeInstance",
    "destroyComputeInstance",
    "destroyGpuInstance",
)
FAULT_CODES = {
    "in-use": NVML_ERROR_IN_USE,
    "insufficient-resources": NVML_ERROR_INSUFFICIENT_RESOURCES,
    "not-supported": NVML_ERROR_NOT_SUPPORTED,
    "invalid-argument": NVML_ERROR_INVALID_ARGUMENT,
    "not-found": NVML_ERROR_NOT_FOUND,
}


@dataclass(frozen=True, slots=True)
class FakeMigGpu:
    """One GPU's MIG description from the inventory."""

    uuid: str
    specs: tuple[ProfileSpec, ...]
    enabled: bool = False
    instances: tuple[tuple[str, int], ...] = ()  # (profile, start) present at power-on
    faults: Mapping[str, int] = field(default_factory=dict)  # operation → NVML code, always


class FakeMig:
    """The fake `MigBackend`."""

    def __init__(self, gpus: Sequence[FakeMigGpu], state_path: Path | None = None) -> None:
        self._gpus = {g.uuid: g for g in gpus}
        # GPUs without MIG support have no state worth a file (no directory on such a node)
        self._path = state_path if any(g.specs for g in gpus) else None
        self._memory: dict[str, Any] | None = None
        self._once: dict[tuple[str, str], list[int]] = {}
        self.calls: list[tuple[str, str]] = []  # (operation, gpu) of mutating calls
        with self._state() as state:
            for gpu in gpus:
                if gpu.uuid not in state["gpus"]:
                    state["gpus"][gpu.uuid] = self._power_on(gpu, state)

    # --- test hooks ----------------------------------------------------------------------------

    def inject(self, gpu: str, operation: str, code: int, times: int = 1) -> None:
        """Make the next ``times`` calls of ``operation`` on ``gpu`` fail with ``code``."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        self._once.setdefault((gpu, operation), []).extend([code] * times)

    def set_busy(self, gpu: str, gpu_instance_id: int | None, busy: bool = True) -> None:
        """Processes start (or stop) on a MIG device (None: on the whole GPU)."""
        with self._state() as state:
            marks = set(self._gpu_state(state, gpu)["busy"])
            key = -1 if gpu_instance_id is None else gpu_instance_id
            marks = marks | {key} if busy else marks - {key}
            state["gpus"][gpu]["busy"] = sorted(marks)

    # --- MigBackend ----------------------------------------------------------------------------

    def capable(self, gpu: str) -> bool:
        return bool(self._spec(gpu).specs)

    def enabled(self, gpu: str) -> bool:
        self._need_capable(gpu)
        with self._state() as state:
            return bool(self._gpu_state(state, gpu)["enabled"])

    def set_enabled(self, gpu: str, enabled: bool) -> None:
        self._need_capable(gpu)
        self._fault(gpu, "setMigMode")
        with self._state() as state:
            mine = self._gpu_state(state, gpu)
            if mine["enabled"] == enabled:
                return
            if mine["gis"] or mine["busy"]:
                raise MigError(
                    NVML_ERROR_IN_USE,
                    f"cannot switch MIG mode of {gpu}: GPU instances or processes exist",
                )
            mine["enabled"] = enabled

    def profiles(self, gpu: str) -> tuple[MigProfile, ...]:
        return to_profiles(self._spec(gpu).specs)

    def instances(self, gpu: str) -> list[MigInstance]:
        if not self.capable(gpu):
            return []
        with self._state() as state:
            mine = self._gpu_state(state, gpu)
            return [self._instance(gpu, int(k), v) for k, v in sorted(mine["gis"].items())]

    def create_gpu_instance(self, gpu: str, profile: str, placement: MigPlacement) -> int:
        self._need_capable(gpu)
        self._fault(gpu, "createGpuInstance")
        spec = self._profile(gpu, profile)
        with self._state() as state:
            mine = self._gpu_state(state, gpu)
            self._need_enabled(gpu, mine)
            if placement not in spec.placements():
                raise MigError(
                    NVML_ERROR_INVALID_ARGUMENT,
                    f"{profile} cannot be placed at {{start: {placement.start}, size: "
                    f"{placement.size}}} on {gpu}",
                )
            self._check_room(gpu, mine, spec, placement)
            full = spec.compute == COMPUTE_SLICES
            gi = 0 if full else min(i for i in range(1, 64) if str(i) not in mine["gis"])
            mine["gis"][str(gi)] = {
                "profile": profile,
                "start": placement.start,
                "size": placement.size,
                "cis": {},
            }
            self.calls.append(("createGpuInstance", gpu))
            return gi

    def create_compute_instance(self, gpu: str, gpu_instance_id: int) -> MigInstance:
        self._need_capable(gpu)
        self._fault(gpu, "createComputeInstance")
        with self._state() as state:
            mine = self._gpu_state(state, gpu)
            record = self._gi(gpu, mine, gpu_instance_id)
            if record["cis"]:
                raise MigError(
                    NVML_ERROR_INSUFFICIENT_RESOURCES,
                    f"GPU instance {gpu_instance_id} on {gpu} has no room for a compute instance",
                )
            state["serial"] = state.get("serial", 0) + 1
            name = f"{gpu}/{gpu_instance_id}/0/{state['serial']}"
            record["cis"]["0"] = f"MIG-{uuidlib.uuid5(_NAMESPACE, name)}"
            self.calls.append(("createComputeInstance", gpu))
            return self._instance(gpu, gpu_instance_id, record)

    def destroy_compute_instance(self, gpu: str, gpu_instance_id: int, ci: int) -> None:
        self._need_capable(gpu)
        self._fault(gpu, "destroyComputeInstance")
        with self._state() as state:
            mine = self._gpu_state(state, gpu)
            record = self._gi(gpu, mine, gpu_instance_id)
            if str(ci) not in record["cis"]:
                raise MigError(
                    NVML_ERROR_NOT_FOUND, f"no compute instance {ci} in GI {gpu_instance_id}"
                )
            if gpu_instance_id in mine["busy"]:
                raise MigError(
                    NVML_ERROR_IN_USE,
                    f"compute instance {ci} of GI {gpu_instance_id} on {gpu} runs processes",
                )
            del record["cis"][str(ci)]
            self.calls.append(("destroyComputeInstance", gpu))

    def destroy_gpu_instance(self, gpu: str, gpu_instance_id: int) -> None:
        self._need_capable(gpu)
        self._fault(gpu, "destroyGpuInstance")
        with self._state() as state:
            mine = self._gpu_state(state, gpu)
            record = self._gi(gpu, mine, gpu_instance_id)
            if record["cis"]:
                raise MigError(
                    NVML_ERROR_IN_USE,
                    f"GPU instance {gpu_instance_id} on {gpu} still has compute instances",
                )
            del mine["gis"][str(gpu_instance_id)]
            self.calls.append(("destroyGpuInstance", gpu))

    def busy(self, gpu: str) -> bool:
        if not self.capable(gpu):
            return False
        with self._state() as state:
            return bool(self._gpu_state(state, gpu)["busy"])

    # --- internals -----------------------------------------------------------------------------

    def _spec(self, gpu: str) -> FakeMigGpu:
        try:
            return self._gpus[gpu]
        except KeyError:
            raise MigError(NVML_ERROR_NOT_FOUND, f"no GPU {gpu}") from None

    def _need_capable(self, gpu: str) -> None:
        if not self.capable(gpu):
            raise MigError(NVML_ERROR_NOT_SUPPORTED, f"GPU {gpu} does not support MIG")

    @staticmethod
    def _need_enabled(gpu: str, mine: Mapping[str, Any]) -> None:
        if not mine["enabled"]:
            raise MigError(NVML_ERROR_NOT_SUPPORTED, f"MIG mode is disabled on {gpu}")

    def _profile(self, gpu: str, name: str) -> ProfileSpec:
        for spec in self._spec(gpu).specs:
            if spec.name == name:
                return spec
        raise MigError(NVML_ERROR_NOT_SUPPORTED, f"GPU {gpu} has no MIG profile {name}")

    def _check_room(
        self, gpu: str, mine: Mapping[str, Any], spec: ProfileSpec, placement: MigPlacement
    ) -> None:
        compute = spec.compute
        for gi, record in mine["gis"].items():
            taken = MigPlacement(record["start"], record["size"])
            if placement.overlaps(taken):
                raise MigError(
                    NVML_ERROR_INSUFFICIENT_RESOURCES,
                    f"{spec.name} at start {placement.start} overlaps GPU instance {gi} "
                    f"({record['profile']} at start {record['start']}) on {gpu}",
                )
            compute += self._profile(gpu, record["profile"]).compute
        if compute > COMPUTE_SLICES:
            raise MigError(
                NVML_ERROR_INSUFFICIENT_RESOURCES,
                f"{spec.name} needs more compute slices than {gpu} has left",
            )

    @staticmethod
    def _gi(gpu: str, mine: Mapping[str, Any], gpu_instance_id: int) -> dict[str, Any]:
        record = mine["gis"].get(str(gpu_instance_id))
        if record is None:
            raise MigError(NVML_ERROR_NOT_FOUND, f"no GPU instance {gpu_instance_id} on {gpu}")
        return record  # type: ignore[no-any-return]

    @staticmethod
    def _instance(gpu: str, gi: int, record: Mapping[str, Any]) -> MigInstance:
        cis = sorted(record["cis"].items())
        ci, mig_uuid = (int(cis[0][0]), cis[0][1]) if cis else (None, None)
        placement = MigPlacement(record["start"], record["size"])
        return MigInstance(gpu, record["profile"], placement, gi, ci, mig_uuid)

    def _fault(self, gpu: str, operation: str) -> None:
        queued = self._once.get((gpu, operation))
        code = queued.pop(0) if queued else self._spec(gpu).faults.get(operation)
        if code is not None:
            raise MigError(code, f"{operation} on {gpu} failed (injected)")

    def _gpu_state(self, state: dict[str, Any], gpu: str) -> dict[str, Any]:
        self._spec(gpu)
        return state["gpus"][gpu]  # type: ignore[no-any-return]

    def _power_on(self, gpu: FakeMigGpu, state: dict[str, Any]) -> dict[str, Any]:
        mine: dict[str, Any] = {"enabled": gpu.enabled and bool(gpu.specs), "gis": {}, "busy": []}
        state["gpus"][gpu.uuid] = mine
        if gpu.instances and not mine["enabled"]:
            raise MigError(NVML_ERROR_NOT_SUPPORTED, "instances need MIG mode enabled")
        for profile, start in gpu.instances:
            spec = self._profile(gpu.uuid, profile)
            placement = MigPlacement(start, spec.size)
            if placement not in spec.placements():
                raise MigError(NVML_ERROR_INVALID_ARGUMENT, f"{profile} cannot start at {start}")
            self._check_room(gpu.uuid, mine, spec, placement)
            gi = 0 if spec.compute == COMPUTE_SLICES else len(mine["gis"]) + 1
            name = f"{gpu.uuid}/{gi}/0/boot"
            mine["gis"][str(gi)] = {
                "profile": profile,
                "start": start,
                "size": spec.size,
                "cis": {"0": f"MIG-{uuidlib.uuid5(_NAMESPACE, name)}"},
            }
        return mine

    @contextlib.contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        if self._path is None:
            if self._memory is None:
                self._memory = {"gpus": {}}
            yield self._memory
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._path.with_name(self._path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = json.loads(self._path.read_text()) if self._path.exists() else {}
            except (OSError, json.JSONDecodeError):
                state = {}
            state.setdefault("gpus", {})
            yield state
            tmp = self._path.with_name(self._path.name + ".tmp")
            tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
            tmp.replace(self._path)
