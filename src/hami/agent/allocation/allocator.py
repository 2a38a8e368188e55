"""The Allocate flow (wire-format.md §5.5): find the pod, pop its container entries, answer
kubelet, write the rest back, finish the bind handshake — and on any failure mark the pod
``failed``, release the node lock and leave an Event on the pod saying why."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import uuid as uuidlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from hami.agent import devices as devlogic
from hami.agent.allocation.response import (
    HookFiles,
    Target,
    build_mig_response,
    build_response,
    container_dir,
    file_kind,
    file_mounts,
    unusable_files,
)
from hami.agent.config.settings import Settings
from hami.agent.errors import AgentError, AllocationError, IsolationUnavailable, PodNotFound
from hami.agent.mig.manager import MigManager, Realised
from hami.agent.values import ContainerAllocation, Gpu
from hami.api import keys
from hami.api.annotations import (
    decode_mig_allocations,
    decode_node_lock,
    decode_pod_devices,
    encode_mig_allocations,
    encode_pod_devices,
)
from hami.api.errors import WireFormatError
from hami.api.types import ContainerDevice, ContainerDevices
from hami.k8s.api import KubeAPIError
from hami.k8s.port import KubePort
from hami.k8s.views import EventSpec, NodeInfo, PodInfo, annotations_patch

log = logging.getLogger(__name__)

# HAMi's pending-pod search accepts `success` too (§5.5): another vendor's plugin may have set
# it on a pod whose NVIDIA entries are still to be allocated. A pod counts as waiting for *this*
# plugin only while its NVIDIA to-allocate list has an entry left (`awaits_allocate`).
PENDING_PHASES = frozenset({keys.BIND_PHASE_ALLOCATING, keys.BIND_PHASE_SUCCESS})
FAILED_REASON = "GPUAllocateFailed"


@dataclass(frozen=True, slots=True)
class PreferredRequest:
    available: tuple[str, ...]
    must_include: tuple[str, ...]
    size: int


class HostPrep:
    """The host side of an answer: checks the HAMi-core files, creates the per-container cache
    directory and the lock directory, and removes cache directories of pods that are gone.
    Disabled (simulate mode: no container is started from the answer) it does nothing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def check(self, settings: Settings, target: Target, hook: HookFiles) -> None:
        """Raise `IsolationUnavailable` naming every file the answer would mount that is not a
        regular file, rather than let the container start without its limits."""
        if not self.enabled:
            return
        problems = unusable_files(file_mounts(settings, target, hook), file_kind)
        if problems:
            raise IsolationUnavailable(
                f"HAMi-core is not installed correctly on node {settings.node_name}: "
                f"{'; '.join(problems)}; container {target.container} would run without its "
                "GPU limits"
            )

    def prepare(self, settings: Settings, target: Target) -> None:
        if not self.enabled:
            return
        directory = container_dir(settings, target)
        shutil.rmtree(directory, ignore_errors=True)
        # writable by every user of the container, sticky: none can remove or replace a file
        # another made (the region file libvgpu creates, the lock files)
        for path in (directory, settings.lock_dir):
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o1777)

    def container_dirs(self, settings: Settings) -> list[str]:
        """The names of the directories (links excluded) under ``<hook>/vgpu/containers``."""
        if not self.enabled:
            return []
        try:
            with os.scandir(_containers_root(settings)) as entries:
                return [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return []

    def remove(self, settings: Settings, names: Iterable[str]) -> None:
        root = _containers_root(settings)
        for name in names:
            shutil.rmtree(root / name, ignore_errors=True)


def _containers_root(settings: Settings) -> Path:
    return settings.hook_path / "vgpu" / "containers"


def is_waiting(pod: PodInfo, node_name: str, phases: frozenset[str]) -> bool:
    """A pod bound here by HAMi whose devices are not all allocated yet."""
    notes = pod.annotations
    return (
        pod.phase in phases
        and not pod.deleting
        and keys.BIND_TIME in notes
        and notes.get(keys.BIND_PHASE) in PENDING_PHASES
        and notes.get(keys.VGPU_NODE) == node_name
    )


def entries_left(pod: PodInfo) -> bool:
    """The pod's NVIDIA to-allocate list still holds a container entry. A value that does not
    decode counts as one: Allocate then fails the pod saying why."""
    value = pod.annotations.get(keys.NVIDIA_TO_ALLOCATE)
    if value is None:
        return False
    try:
        return any(decode_pod_devices(value, keys.NVIDIA_TO_ALLOCATE))
    except WireFormatError:
        return True


def awaits_allocate(pod: PodInfo, node_name: str, phases: frozenset[str]) -> bool:
    """Waiting here (`is_waiting`) with an NVIDIA container entry left. A pod whose entries are
    all allocated (bind-phase `success`) never matches, so a restarted plugin leaves it alone."""
    return is_waiting(pod, node_name, phases) and entries_left(pod)


def allocation_done(pod: PodInfo) -> bool:
    """This plugin allocated the pod completely: bind-phase success, no entry left."""
    return pod.annotations.get(keys.BIND_PHASE) == keys.BIND_PHASE_SUCCESS and not entries_left(pod)


class Allocator:
    """One node's Allocate / GetPreferredAllocation logic; calls are serialised."""

    def __init__(
        self,
        kube: KubePort,
        settings: Settings,
        gpus: Callable[[], Sequence[Gpu]],
        *,
        host: HostPrep | None = None,
        new_id: Callable[[], str] = lambda: uuidlib.uuid4().hex,
        pod_phases: frozenset[str] = frozenset({"Pending"}),
        mig: MigManager | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.node = settings.node_name
        self._gpus = gpus
        self._host = host or HostPrep(settings.prepare_host)
        self._new_id = new_id
        self._phases = pod_phases
        self.mig = mig
        self._mutex = asyncio.Lock()
        # uid → the pod as our last to-allocate write left it, while containers are pending
        self._written: dict[str, PodInfo] = {}

    # --- finding the pod -----------------------------------------------------------------------

    async def find_pod(self, hint: PodInfo | None = None) -> PodInfo:
        """The pod the node lock names, if it waits here; nothing else (docs/security.md).

        kubelet's Allocate does not say which pod it is for, and a pod's annotations alone
        prove nothing: a pod placed with ``spec.nodeName`` and a hand-written
        ``hami.io/vgpu-devices-to-allocate`` would otherwise get what it wrote, or — with an
        old ``bind-time`` — hijack the answer meant for another pod. The node lock is written
        by the scheduler at /bind, on the Node, which tenants cannot write (and the chart's
        ValidatingAdmissionPolicies let only the scheduler set it and this node's plugin
        release it), and it is held until the pod's last container is allocated.

        ``hint``: the pod the caller already holds (the simulated kubelet's watch delivered
        it). Its first call checks it against the lock (one node read); later calls for the
        same pod reuse it — no API read — with the to-allocate value our own earlier Allocate
        calls for it wrote."""
        pod, _ = await self._find(hint)
        return pod

    async def _find(self, hint: PodInfo | None) -> tuple[PodInfo, NodeInfo | None]:
        """The pod, and the node object read on the way (None when not read)."""
        if hint is not None:
            known = self._written.get(hint.uid)
            if known is not None and self._waiting(known):
                return known, None
        if hint is not None and not self._waiting(hint):
            hint = None  # not waiting here: find the pod as kubelet's own call would
        node = await self.kube.get_node(self.node)
        owner = await self._lock_owner(node, hint)
        if owner is None:
            raise PodNotFound(
                f"no pod waiting for GPU allocation on node {self.node} is named by the node "
                f"lock {keys.NODE_LOCK}: Allocate answers only for the pod the scheduler locked "
                "the node for (a pod placed by spec.nodeName or with hand-written hami.io "
                "annotations gets no device)"
            )
        if hint is not None:
            if owner.uid != hint.uid:
                raise PodNotFound(
                    f"pod {hint.ref} is not the pod the node lock of {self.node} names "
                    f"({owner.ref}): it was not placed by the scheduler, or its turn has not come"
                )
            self._written[hint.uid] = owner  # checked: its later calls need no read
        return owner, node

    def _waiting(self, pod: PodInfo) -> bool:
        return awaits_allocate(pod, self.node, self._phases)

    async def _lock_owner(self, node: NodeInfo, hint: PodInfo | None = None) -> PodInfo | None:
        """The pod the node lock names, if it is bound here with an entry left (any phase:
        kwok or a fast kubelet may already call it Running). ``hint``: used instead of a pod
        read when the lock names it."""
        pod = await self._locked_pod(node, hint)
        if pod is None or not entries_left(pod):
            return None
        return pod

    async def _locked_pod(self, node: NodeInfo, hint: PodInfo | None = None) -> PodInfo | None:
        value = node.annotations.get(keys.NODE_LOCK)
        try:
            lock = decode_node_lock(value) if value else None
        except WireFormatError:
            return None
        if lock is None or lock.namespace is None or lock.name is None:
            return None
        if hint is not None and (hint.namespace, hint.name) == (lock.namespace, lock.name):
            pod: PodInfo | None = hint
        else:
            pod = await self.kube.get_pod(lock.namespace, lock.name)
        return pod if pod is not None and pod.node_name == self.node else None

    async def busy(self) -> list[str]:
        """The pods bound here that still wait for an Allocate (the one the node lock names
        included): a stopping plugin serves them before it closes its socket."""
        node = await self.kube.get_node(self.node)
        waiting = {p.ref for p in await self.kube.list_pods(self.node) if self._waiting(p)}
        owner = await self._lock_owner(node)
        if owner is not None:
            waiting.add(owner.ref)
        return sorted(waiting)

    async def release_finished_lock(self) -> bool:
        """At start-up: release the node lock if the pod it names is completely allocated (a
        plugin stopped between writing `success` and releasing the lock). True if released."""
        async with self._mutex:
            node = await self.kube.get_node(self.node)
            pod = await self._locked_pod(node)
            if pod is None or not allocation_done(pod):
                return False
            await self.kube.release_node_lock(self.node, pod, node)
            log.info("node %s: released the lock left by allocated pod %s", self.node, pod.ref)
            return True

    # --- Allocate ------------------------------------------------------------------------------

    async def allocate(
        self, requests: Sequence[Sequence[str]], pod: PodInfo | None = None
    ) -> list[ContainerAllocation]:
        """kubelet's Allocate: one device-ID list per container. ``pod``: see `find_pod`.

        API calls: finding the pod costs one node GET plus a pod GET (the hinted pod: the node
        GET only; its later containers: none); then one pod merge patch (the last container's also sets bind-phase
        success), and after the last container one node GET plus one guarded node patch (no
        GET when finding the pod read the node)."""
        async with self._mutex:
            try:
                found, node = await self._find(pod)
            except PodNotFound as exc:
                await self._note_node(str(exc))
                raise
            try:
                return await self._allocate_for(found, requests, node)
            except KubeAPIError as exc:
                self._written.pop(found.uid, None)
                if exc.status == 0:  # the API was unreachable: not a verdict on the pod; its
                    raise  # lock stays, the caller may try again (the simulated kubelet does)
                await self.fail(found, exc)
                raise AllocationError(f"pod {found.ref}: {exc}") from exc
            except (AgentError, ValueError, KeyError, OSError) as exc:  # WireFormatError too
                self._written.pop(found.uid, None)
                await self.fail(found, exc)
                raise AllocationError(f"pod {found.ref}: {exc}") from exc

    async def _allocate_for(
        self, pod: PodInfo, requests: Sequence[Sequence[str]], node: NodeInfo | None
    ) -> list[ContainerAllocation]:
        entries = list(
            decode_pod_devices(pod.annotations[keys.NVIDIA_TO_ALLOCATE], keys.NVIDIA_TO_ALLOCATE)
        )
        responses = []
        realised: list[Realised] = []
        try:
            for ids in requests:
                position = _next_entry(entries, pod)
                entry = self._entry_for(entries[position], ids, pod, position)
                if self.mig is not None and self.settings.node.operating_mode == keys.MODE_MIG:
                    realised.append(await self._realise(pod, position, entry))
                    answer = build_mig_response(
                        realised[-1].mig_uuids, self.settings, self._new_id()
                    )
                    responses.append(answer)
                else:
                    responses.append(self._respond(pod, position, entry))
                entries[position] = ()
            remaining = encode_pod_devices(entries)
            values = {keys.NVIDIA_TO_ALLOCATE: remaining}
            if realised:  # the runtime identity, in the same write (§2.8)
                values[keys.MIG_ALLOCATIONS] = _with_identity(pod, realised)
            done = not any(entries)
            if done:  # §5.5 steps 4 and 5 in one write: nothing is left for another container
                values[keys.BIND_PHASE] = keys.BIND_PHASE_SUCCESS
            await self.kube.patch_pod(pod.namespace, pod.name, annotations_patch(values))
        except BaseException:
            if self.mig is not None:  # all or none: what this call made goes again
                await self.mig.rollback([o for r in realised for o in r.created])
            raise
        if done:
            self._written.pop(pod.uid, None)
            await self.kube.release_node_lock(self.node, pod, node)
        elif pod.uid in self._written:  # found by a hint: the next hinted call must see this
            self._written[pod.uid] = replace(pod, annotations={**pod.annotations, **values})
        return responses

    def _entry_for(
        self, entry: ContainerDevices, ids: Sequence[str], pod: PodInfo, position: int
    ) -> ContainerDevices:
        if len(entry) != len(ids):
            raise AllocationError(
                f"device number not matched for container #{position} "
                f"({_container_name(pod, position)}): the scheduler assigned {len(entry)} GPU(s), "
                f"kubelet asked for {len(ids)}"
            )
        if (
            not self.settings.node.preferred_allocation
            or self.settings.node.operating_mode == keys.MODE_MIG
        ):
            return entry
        owners = devlogic.replica_owner(self._gpus(), self.settings.node)
        return tuple(
            ContainerDevice(devlogic.physical_id(rid, owners), d.type, d.usedmem, d.usedcores)
            for rid, d in zip(ids, entry, strict=True)
        )

    async def _realise(self, pod: PodInfo, position: int, entry: ContainerDevices) -> Realised:
        assert self.mig is not None
        reservations = self.mig.check(pod, position, entry)
        if self.mig.needs_room(reservations):  # a gone pod's instance may still sit there
            await self.mig.reconcile(await self.kube.list_pods(self.node))
        return await self.mig.realise(pod, reservations)

    def _respond(self, pod: PodInfo, position: int, entry: ContainerDevices) -> ContainerAllocation:
        cache_id = self._new_id()
        if self.settings.node.operating_mode == keys.MODE_MIG:
            return build_mig_response(_mig_uuids(pod, position, entry), self.settings, cache_id)
        target = Target(pod.uid, _container_name(pod, position), _container_env(pod, position))
        hook = HookFiles.inspect(self.settings)
        self._host.check(self.settings, target, hook)
        self._host.prepare(self.settings, target)
        index_of = {g.uuid: g.index for g in self._gpus()}
        return build_response(
            entry, target, self.settings, index_of=index_of, hook=hook, cache_id=cache_id
        )

    # --- failure -------------------------------------------------------------------------------

    async def fail(self, pod: PodInfo, exc: BaseException) -> None:
        """Best effort: bind-phase failed, lock released, a Warning event on the pod."""
        why = f"GPU allocation on node {self.node} failed: {exc}"
        log.error("pod %s: %s", pod.ref, why)
        steps = (
            self.kube.patch_pod(
                pod.namespace,
                pod.name,
                annotations_patch({keys.BIND_PHASE: keys.BIND_PHASE_FAILED}),
            ),
            self.kube.release_node_lock(self.node, pod),
            self.kube.create_event(
                EventSpec("Pod", pod.namespace, pod.name, pod.uid, FAILED_REASON, why)
            ),
        )
        for step in steps:
            try:
                await step
            except (AgentError, KubeAPIError, OSError) as err:
                log.error("pod %s: while recording the failure: %s", pod.ref, err)

    async def _note_node(self, why: str) -> None:
        try:
            node = await self.kube.get_node(self.node)
            event = EventSpec("Node", "default", self.node, node.uid, FAILED_REASON, why)
            await self.kube.create_event(event)
        except (AgentError, KubeAPIError) as err:
            log.error("node %s: cannot record event: %s", self.node, err)

    # --- GetPreferredAllocation ----------------------------------------------------------------

    async def preferred(
        self, requests: Sequence[PreferredRequest], pod: PodInfo | None = None
    ) -> list[list[str]]:
        """Map the annotated GPUs of the k-th waiting container onto available replica IDs.
        ``pod``: see `find_pod`."""
        wanted = await self._wanted_entries(pod)
        owners = devlogic.replica_owner(self._gpus(), self.settings.node)
        return [
            devlogic.preferred_replicas(
                wanted[k] if k < len(wanted) else None, r.available, r.must_include, r.size, owners
            )
            for k, r in enumerate(requests)
        ]

    async def _wanted_entries(self, hint: PodInfo | None) -> list[ContainerDevices]:
        try:
            pod = await self.find_pod(hint)
            value = pod.annotations[keys.NVIDIA_TO_ALLOCATE]
            return [e for e in decode_pod_devices(value, keys.NVIDIA_TO_ALLOCATE) if e]
        except (PodNotFound, WireFormatError) as exc:
            log.info("preferred allocation without a pod: %s", exc)
            return []


def _next_entry(entries: Sequence[ContainerDevices], pod: PodInfo) -> int:
    for position, entry in enumerate(entries):
        if entry:
            return position
    raise AllocationError(
        f"{keys.NVIDIA_TO_ALLOCATE} of pod {pod.ref} has no container entry left to allocate"
    )


def _container_name(pod: PodInfo, position: int) -> str:
    if position < len(pod.containers):
        return pod.containers[position].name
    raise AllocationError(
        f"{keys.NVIDIA_TO_ALLOCATE} of pod {pod.ref} has an entry at position {position} "
        f"but the pod has only {len(pod.containers)} container(s)"
    )


def _container_env(pod: PodInfo, position: int) -> dict[str, str]:
    return dict(pod.containers[position].env)


def _mig_uuids(pod: PodInfo, position: int, entry: ContainerDevices) -> list[str]:
    raw = pod.annotations.get(keys.MIG_ALLOCATIONS)
    if not raw:
        raise AllocationError(f"pod {pod.ref} has no {keys.MIG_ALLOCATIONS} for MIG mode")
    mine = sorted(
        (a for a in decode_mig_allocations(raw) if a.container_index == position),
        key=lambda a: a.device_index,
    )
    if len(mine) != len(entry) or any(a.mig_uuid is None for a in mine):
        raise AllocationError(
            f"MIG instances for container #{position} of pod {pod.ref} are not realised; "
            "this allocator has no MIG manager to create them"
        )
    return [a.mig_uuid for a in mine if a.mig_uuid is not None]


def _with_identity(pod: PodInfo, realised: Sequence[Realised]) -> str:
    """The pod's `hami.io/vgpu-mig-allocations` with the realised entries' runtime identity."""
    done = {(a.container_index, a.device_index): a for r in realised for a in r.allocations}
    every = decode_mig_allocations(pod.annotations[keys.MIG_ALLOCATIONS])
    return encode_mig_allocations([done.get((a.container_index, a.device_index), a) for a in every])
