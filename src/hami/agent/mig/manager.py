"""The MIG manager: realises the scheduler's reservations at Allocate, reclaims instances of
pods that are gone, adopts live ones after a restart (wire-format.md §2.8, §5.7).

Ownership: a *ledger* (JSON, under ``--mig-state-dir``; in memory when none) records every
instance this plugin made, with the pod it was made for; it is written before the compute
instance is created, so a crash in between leaves an entry the reconciler cleans up. Instances
the ledger does not name were made by someone else and are never touched — unless a live pod's
``hami.io/vgpu-mig-allocations`` records exactly that instance (GPU, GI, CI, MIG UUID), which
adopts it (a lost ledger).

Mutations are serialised per physical GPU (one lock each); backend calls run in a worker
thread so other GPUs and the event loop go on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hami.agent.config.settings import Settings
from hami.agent.errors import AllocationError
from hami.agent.mig.catalog import NVML_ERROR_IN_USE, MigError
from hami.agent.mig.port import MigBackend, MigInstance
from hami.api import keys
from hami.api.annotations import decode_mig_allocations
from hami.api.errors import WireFormatError
from hami.api.types import ContainerDevices, MigAllocation, MigPlacement
from hami.k8s.objects import TERMINAL_PHASES
from hami.k8s.views import PodInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Owned:
    """A ledger entry: an instance this plugin made, and for whom."""

    gpu: str
    gi: int
    profile: str
    start: int
    size: int
    pod_uid: str
    pod: str  # namespace/name, for messages
    ci: int | None = None
    mig_uuid: str | None = None

    @property
    def key(self) -> str:
        return f"{self.gpu}/{self.gi}"

    @property
    def placement(self) -> MigPlacement:
        return MigPlacement(self.start, self.size)


class Ledger:
    """The instances this plugin owns; persisted as JSON when ``path`` is given."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._entries: dict[str, Owned] = {}
        if path is not None and path.exists():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                self._entries = {o.key: o for o in (Owned(**item) for item in raw)}
            except (OSError, ValueError, TypeError) as exc:
                log.error(
                    "MIG ledger %s unreadable (%s): instances it named are left alone", path, exc
                )

    def entries(self) -> list[Owned]:
        with self._lock:
            return list(self._entries.values())

    def put(self, owned: Owned) -> None:
        with self._lock:
            self._entries[owned.key] = owned
            self._save()

    def drop(self, gpu: str, gi: int) -> None:
        with self._lock:
            if self._entries.pop(f"{gpu}/{gi}", None) is not None:
                self._save()

    def _save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self._path.with_name(self._path.name + ".tmp")
        items = [_as_dict(o) for o in self._entries.values()]
        scratch.write_text(json.dumps(items, indent=1, sort_keys=True), encoding="utf-8")
        scratch.replace(self._path)


def _as_dict(owned: Owned) -> dict[str, Any]:
    return {name: getattr(owned, name) for name in Owned.__slots__}


@dataclass(frozen=True, slots=True)
class Realised:
    """What `MigManager.realise` did for one container."""

    allocations: tuple[MigAllocation, ...]  # the container's reservations, runtime identity set
    created: tuple[Owned, ...]  # made by this call (rolled back if the Allocate fails later)

    @property
    def mig_uuids(self) -> list[str]:
        return [a.mig_uuid or "" for a in self.allocations]


def state_dir(settings: Settings) -> Path | None:
    """Where the ledger lives: ``--mig-state-dir``; else ``<hook>/vgpu/mig`` on a real node,
    in memory in simulate mode."""
    if settings.mig_state_dir is not None:
        return settings.mig_state_dir
    return settings.hook_path / "vgpu" / "mig" if settings.prepare_host else None


def ledger_path(settings: Settings) -> Path | None:
    where = state_dir(settings)
    return where / f"{settings.node_name}.ledger.json" if where is not None else None


def fake_mig_state(settings: Settings) -> Path | None:
    """The fake backend's MIG state file (kept beside the ledger)."""
    where = state_dir(settings)
    return where / f"{settings.node_name}.fake-mig.json" if where is not None else None


def reservations_of(pod: PodInfo) -> tuple[MigAllocation, ...]:
    """The pod's MIG reservations; `WireFormatError` when the annotation does not decode."""
    raw = pod.annotations.get(keys.MIG_ALLOCATIONS)
    return decode_mig_allocations(raw) if raw else ()


def is_live(pod: PodInfo, node: str) -> bool:
    """A pod whose reservations must keep their instances."""
    return pod.node_name == node and not pod.deleting and pod.phase not in TERMINAL_PHASES


class MigManager:
    """One node's MIG instances."""

    def __init__(
        self,
        backend: MigBackend,
        node: str,
        gpus: Iterable[str],
        *,
        ledger: Path | None = None,
        disable_idle: bool = False,
    ) -> None:
        self.backend = backend
        self.node = node
        self.gpus = tuple(gpus)
        self.ledger = Ledger(ledger)
        self.disable_idle = disable_idle
        self._locks = {g: asyncio.Lock() for g in self.gpus}

    # --- Allocate ------------------------------------------------------------------------------

    def check(
        self, pod: PodInfo, position: int, entry: ContainerDevices
    ) -> tuple[MigAllocation, ...]:
        """The container's reservations, checked against the entry and the hardware before
        anything is created; an `AllocationError` names what is wrong."""
        try:
            every = reservations_of(pod)
        except WireFormatError as exc:
            raise AllocationError(
                f"{keys.MIG_ALLOCATIONS} of pod {pod.ref} is invalid: {exc}"
            ) from None
        if not every:
            raise AllocationError(f"pod {pod.ref} has no {keys.MIG_ALLOCATIONS} for MIG mode")
        mine = tuple(
            sorted(
                (a for a in every if a.container_index == position), key=lambda a: a.device_index
            )
        )
        wanted = [d.uuid for d in entry]
        if [a.gpu_uuid for a in mine] != wanted:
            raise AllocationError(
                f"{keys.MIG_ALLOCATIONS} of pod {pod.ref} does not match container #{position}: "
                f"it reserves {[a.gpu_uuid for a in mine] or 'nothing'}, the scheduler assigned "
                f"{wanted} (edited by hand?)"
            )
        for a in mine:
            self._check_one(pod, a)
        for i, a in enumerate(mine):
            for b in mine[i + 1 :]:
                if a.gpu_uuid == b.gpu_uuid and a.placement.overlaps(b.placement):
                    raise AllocationError(
                        f"{keys.MIG_ALLOCATIONS} of pod {pod.ref}: devices {a.device_index} and "
                        f"{b.device_index} overlap on {a.gpu_uuid}"
                    )
        return mine

    def _check_one(self, pod: PodInfo, a: MigAllocation) -> None:
        where = f"{keys.MIG_ALLOCATIONS} of pod {pod.ref}, device {a.device_index}"
        if a.gpu_uuid not in self._locks:
            raise AllocationError(f"{where}: GPU {a.gpu_uuid} is not a MIG GPU of node {self.node}")
        profiles = {p.name: p for p in self.backend.profiles(a.gpu_uuid)}
        profile = profiles.get(a.profile)
        if profile is None:
            raise AllocationError(
                f"{where}: GPU {a.gpu_uuid} has no MIG profile {a.profile} "
                f"(it has {', '.join(profiles) or 'none'})"
            )
        if a.placement not in profile.placements:
            legal = ", ".join(f"{{start: {p.start}, size: {p.size}}}" for p in profile.placements)
            raise AllocationError(
                f"{where}: {a.profile} cannot be placed at {{start: {a.placement.start}, size: "
                f"{a.placement.size}}} on {a.gpu_uuid} (legal: {legal})"
            )

    def needs_room(self, reservations: Sequence[MigAllocation]) -> bool:
        """A reservation overlaps an instance we own for another pod (whose pod may be gone:
        reconcile before creating)."""
        owned = self.ledger.entries()
        return any(
            o.gpu == a.gpu_uuid and o.placement.overlaps(a.placement) and a.mig_uuid is None
            for a in reservations
            for o in owned
        )

    async def realise(self, pod: PodInfo, reservations: Sequence[MigAllocation]) -> Realised:
        """Ensure an instance at exactly each reservation (all or none: what this call made is
        destroyed again when one fails)."""
        done: list[MigAllocation] = []
        created: list[Owned] = []
        try:
            for a in reservations:
                async with self._locks[a.gpu_uuid]:
                    instance, made = await asyncio.to_thread(self._ensure, pod, a)
                if made is not None:
                    created.append(made)
                done.append(
                    replace(
                        a,
                        mig_uuid=instance.mig_uuid,
                        gpu_instance_id=instance.gpu_instance_id,
                        compute_instance_id=instance.compute_instance_id,
                    )
                )
        except (MigError, AllocationError) as exc:
            await self.rollback(created)
            if isinstance(exc, MigError):
                raise AllocationError(f"creating MIG instance failed, nothing kept: {exc}") from exc
            raise
        return Realised(tuple(done), tuple(created))

    def _ensure(self, pod: PodInfo, a: MigAllocation) -> tuple[MigInstance, Owned | None]:
        """The instance of reservation ``a`` (existing, or made now) and its ledger entry if
        made now. Runs in a worker thread under the GPU's lock."""
        gpu = a.gpu_uuid
        live = self.backend.instances(gpu) if self.backend.enabled(gpu) else []
        if a.mig_uuid is not None:  # realised before: it must still be there, exactly
            for inst in live:
                if (inst.gpu_instance_id, inst.compute_instance_id, inst.mig_uuid) == (
                    a.gpu_instance_id,
                    a.compute_instance_id,
                    a.mig_uuid,
                ) and (inst.profile, inst.placement) == (a.profile, a.placement):
                    self._adopt(pod, inst)
                    return inst, None
            raise AllocationError(
                f"{keys.MIG_ALLOCATIONS} of pod {pod.ref} names {a.mig_uuid} (GI "
                f"{a.gpu_instance_id}, CI {a.compute_instance_id}) on {gpu}, which does not exist "
                "(edited by hand, or destroyed)"
            )
        owned = {o.gi: o for o in self.ledger.entries() if o.gpu == gpu}
        for inst in live:
            o = owned.get(inst.gpu_instance_id)
            if (
                o is not None
                and o.pod_uid == pod.uid
                and (inst.profile, inst.placement) == (a.profile, a.placement)
                and inst.mig_uuid is not None
            ):  # made for this pod by an earlier, interrupted call
                return inst, None
        if not self.backend.enabled(gpu):
            log.info("enabling MIG mode on %s", gpu)
            self.backend.set_enabled(gpu, True)
        gi = self.backend.create_gpu_instance(gpu, a.profile, a.placement)
        entry = Owned(gpu, gi, a.profile, a.placement.start, a.placement.size, pod.uid, pod.ref)
        self.ledger.put(entry)
        try:
            inst = self.backend.create_compute_instance(gpu, gi)
        except MigError:
            self._destroy(entry)
            raise
        if inst.mig_uuid is None:
            self._destroy(replace(entry, ci=inst.compute_instance_id))
            raise AllocationError(f"the MIG device of GI {gi} on {gpu} has no UUID")
        entry = replace(entry, ci=inst.compute_instance_id, mig_uuid=inst.mig_uuid)
        self.ledger.put(entry)
        log.info(
            "pod %s: created %s at %d on %s (GI %d, CI %s, %s)",
            pod.ref,
            a.profile,
            a.placement.start,
            gpu,
            gi,
            inst.compute_instance_id,
            inst.mig_uuid,
        )
        return inst, entry

    def _adopt(self, pod: PodInfo, inst: MigInstance) -> None:
        key = f"{inst.gpu_uuid}/{inst.gpu_instance_id}"
        if key not in {o.key for o in self.ledger.entries()}:
            self.ledger.put(
                Owned(
                    inst.gpu_uuid,
                    inst.gpu_instance_id,
                    inst.profile,
                    inst.placement.start,
                    inst.placement.size,
                    pod.uid,
                    pod.ref,
                    inst.compute_instance_id,
                    inst.mig_uuid,
                )
            )
            log.info("pod %s: adopted %s on %s", pod.ref, inst.mig_uuid, inst.gpu_uuid)

    async def rollback(self, created: Sequence[Owned]) -> None:
        """Destroy instances made by a failed Allocate (newest first)."""
        for owned in reversed(created):
            async with self._locks[owned.gpu]:
                try:
                    await asyncio.to_thread(self._destroy, owned)
                except MigError as exc:
                    log.error("rolling back %s: %s (the reconciler retries)", owned.key, exc)

    def _destroy(self, owned: Owned) -> None:
        """CI first, then GI (NVML refuses a GI that still has CIs); ledger entry last."""
        live = {i.gpu_instance_id: i for i in self.backend.instances(owned.gpu)}
        inst = live.get(owned.gi)
        if inst is not None and (inst.profile, inst.placement) == (owned.profile, owned.placement):
            if inst.compute_instance_id is not None:
                self.backend.destroy_compute_instance(owned.gpu, owned.gi, inst.compute_instance_id)
            self.backend.destroy_gpu_instance(owned.gpu, owned.gi)
        self.ledger.drop(owned.gpu, owned.gi)

    # --- reconciliation ------------------------------------------------------------------------

    async def reconcile(self, pods: Sequence[PodInfo]) -> list[Owned]:
        """Destroy owned instances no live pod reserves; adopt live pods' recorded instances;
        switch idle GPUs out of MIG mode when configured. ``pods``: every pod on this node (a
        failed listing must skip the cycle: fail closed). Returns what was destroyed."""
        keep: dict[str, set[tuple[str, int, str]]] = {}  # pod uid → (gpu, start, profile)
        undecodable: set[str] = set()
        recorded: list[tuple[PodInfo, MigAllocation]] = []
        for pod in pods:
            if not is_live(pod, self.node):
                continue
            try:
                reservations = reservations_of(pod)
            except WireFormatError:
                undecodable.add(pod.uid)  # its instances are kept until it is gone
                continue
            keep[pod.uid] = {(a.gpu_uuid, a.placement.start, a.profile) for a in reservations}
            recorded += [(pod, a) for a in reservations if a.mig_uuid is not None]
        destroyed = []
        for gpu in self.gpus:
            async with self._locks[gpu]:
                destroyed += await asyncio.to_thread(
                    self._reconcile_gpu,
                    gpu,
                    keep,
                    undecodable,
                    [(p, a) for p, a in recorded if a.gpu_uuid == gpu],
                )
        return destroyed

    def _reconcile_gpu(
        self,
        gpu: str,
        keep: Mapping[str, set[tuple[str, int, str]]],
        undecodable: set[str],
        recorded: Sequence[tuple[PodInfo, MigAllocation]],
    ) -> list[Owned]:
        try:
            enabled = self.backend.enabled(gpu)
        except MigError as exc:
            log.warning("MIG reconcile of %s skipped: %s", gpu, exc)
            return []
        live = {i.gpu_instance_id: i for i in self.backend.instances(gpu)} if enabled else {}
        owned = [o for o in self.ledger.entries() if o.gpu == gpu]
        for o in owned:  # the ledger names an instance that is gone (destroyed by hand, reset)
            if o.gi not in live or (live[o.gi].profile, live[o.gi].placement) != (
                o.profile,
                o.placement,
            ):
                self.ledger.drop(o.gpu, o.gi)
        for pod, a in recorded:  # adopt recorded instances the ledger lost
            inst = live.get(a.gpu_instance_id or 0)
            if (
                inst is not None
                and (inst.mig_uuid, inst.compute_instance_id) == (a.mig_uuid, a.compute_instance_id)
                and (inst.profile, inst.placement) == (a.profile, a.placement)
            ):
                self._adopt(pod, inst)
        destroyed = []
        for o in (o for o in self.ledger.entries() if o.gpu == gpu):
            if o.pod_uid in undecodable or (gpu, o.start, o.profile) in keep.get(o.pod_uid, set()):
                continue
            try:
                self._destroy(o)
            except MigError as exc:
                level = logging.INFO if exc.code == NVML_ERROR_IN_USE else logging.WARNING
                log.log(level, "MIG instance %s of pod %s not destroyed yet: %s", o.key, o.pod, exc)
                continue
            log.info("destroyed %s (GI %d) on %s: pod %s is gone", o.profile, o.gi, gpu, o.pod)
            destroyed.append(o)
        if self.disable_idle and enabled:
            self._maybe_disable(gpu, keep)
        return destroyed

    def _maybe_disable(self, gpu: str, keep: Mapping[str, set[tuple[str, int, str]]]) -> None:
        """MIG mode off when nothing uses the GPU: no instance at all (ours or not), no
        process, no live pod reserving it."""
        if any(g == gpu for wanted in keep.values() for g, _, _ in wanted):
            return
        if self.backend.instances(gpu) or self.backend.busy(gpu):
            return
        try:
            self.backend.set_enabled(gpu, False)
        except MigError as exc:
            log.warning("could not switch idle %s out of MIG mode: %s", gpu, exc)
            return
        log.info("switched idle %s out of MIG mode (node config)", gpu)
