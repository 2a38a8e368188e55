"""The real discovery backend: NVML through nvidia-ml-py (``pynvml``), imported lazily so the
package imports and tests run on machines without a GPU or driver.

Reports UUID, index, model, memory, NUMA node (sysfs), MIG profiles (read only), PCIe/NVLink
pair scores (wire-format.md §3.9) and XID health events (§5.8). NVML has no "recovered" event;
a GPU marked unhealthy by an XID stays so until the plugin restarts (as in HAMi).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import math
from collections.abc import AsyncIterator, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from hami.agent.discovery.port import LINK_SCORES, NVLINK_SCORE
from hami.agent.errors import DiscoveryError
from hami.agent.values import Gpu, HealthEvent
from hami.api.types import MigPlacement, MigProfile, PairScores

log = logging.getLogger(__name__)

EVENT_WAIT_MS = 5000
SYSFS_PCI = Path("/sys/bus/pci/devices")
_PROFILE_PREFIXES = ("1g", "2g", "3g", "4g", "6g", "7g", "8g")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def numa_node(bus_id: str, root: Path = SYSFS_PCI) -> int:
    """NUMA node of a PCI device from sysfs (NVML's 8-digit domain trimmed); unknown → 0."""
    try:
        value = int((root / bus_id.lower()[-12:] / "numa_node").read_text().strip())
    except (OSError, ValueError):
        return 0
    return max(value, 0)


class NvmlSource:
    """A `DeviceSource` over NVML. ``nvml`` is the pynvml module (or a test double)."""

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        self._handles: dict[str, Any] = {}
        self._gpus = tuple(self._discover())
        self._scores: tuple[PairScores, ...] | None = None
        self._events: Any = None

    @classmethod
    def open(cls) -> NvmlSource:
        try:
            import pynvml
        except ImportError as exc:
            raise DiscoveryError(f"nvidia-ml-py is not installed: {exc}") from None
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise DiscoveryError(f"NVML initialisation failed (no driver or GPU?): {exc}") from None
        return cls(pynvml)

    def mig(self) -> Any:
        """The MIG backend over the same NVML session (`hami.agent.mig.nvml.NvmlMig`)."""
        from hami.agent.mig.nvml import NvmlMig

        return NvmlMig(self._nvml, self._handles, {g.uuid: g.mig_profiles for g in self._gpus})

    def close(self) -> None:
        if self._events is not None:
            self._nvml.nvmlEventSetFree(self._events)
            self._events = None
        self._nvml.nvmlShutdown()

    # --- discovery -----------------------------------------------------------------------------

    def gpus(self) -> Sequence[Gpu]:
        return self._gpus

    def _discover(self) -> list[Gpu]:
        nvml = self._nvml
        found = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = _text(nvml.nvmlDeviceGetUUID(handle))
            self._handles[uuid] = handle
            bus_id = _text(nvml.nvmlDeviceGetPciInfo(handle).busId)
            found.append(
                Gpu(
                    uuid=uuid,
                    index=index,
                    model=_text(nvml.nvmlDeviceGetName(handle)),
                    memory_mib=self._memory(handle),
                    numa=numa_node(bus_id),
                    bus_id=bus_id,
                    mig_profiles=self._mig_profiles(handle),
                )
            )
        return found

    def _memory(self, handle: Any) -> int:
        """Total memory in MiB; 0 when NVML cannot tell (unified-memory GPUs)."""
        try:
            return int(self._nvml.nvmlDeviceGetMemoryInfo(handle).total) // (1024 * 1024)
        except self._nvml.NVMLError:
            return 0

    def _mig_profiles(self, handle: Any) -> tuple[MigProfile, ...]:
        infos = []
        for profile_id in range(self._nvml.NVML_GPU_INSTANCE_PROFILE_COUNT):
            info = self._profile_info(handle, profile_id)
            if info is not None and info.instanceCount > 0:
                infos.append(info)
        full = max((i.multiprocessorCount for i in infos), default=0)
        profiles = [self._profile(handle, info, full) for info in infos]
        return tuple(p for p in profiles if p.name.startswith(_PROFILE_PREFIXES))

    def _profile_info(self, handle: Any, profile_id: int) -> Any:
        nvml = self._nvml
        for version in (2, 1):
            try:
                return nvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, profile_id, version)
            except nvml.NVMLError:
                continue
        return None

    def _profile(self, handle: Any, info: Any, full_sms: int) -> MigProfile:
        name = _text(getattr(info, "name", b"")).removeprefix("MIG ").strip()
        if not name:
            name = f"{info.sliceCount}g.{math.ceil(info.memorySizeMB / 1024)}gb"
        core = math.ceil(info.multiprocessorCount * 100 / full_sms) if full_sms else 0
        return MigProfile(
            name=name,
            memory_mb=int(info.memorySizeMB),
            core=core,
            slice_count=int(info.sliceCount),
            placements=self._placements(handle, info.id),
        )

    def _placements(self, handle: Any, profile_id: int) -> tuple[MigPlacement, ...]:
        nvml = self._nvml
        count = ctypes.c_uint(0)
        try:
            nvml.nvmlDeviceGetGpuInstancePossiblePlacements(
                handle, profile_id, None, ctypes.byref(count)
            )
            array = (nvml.c_nvmlGpuInstancePlacement_t * count.value)()
            nvml.nvmlDeviceGetGpuInstancePossiblePlacements(
                handle, profile_id, array, ctypes.byref(count)
            )
        except nvml.NVMLError:
            return ()
        return tuple(MigPlacement(int(p.start), int(p.size)) for p in array[: count.value])

    # --- topology ------------------------------------------------------------------------------

    def pair_scores(self) -> Sequence[PairScores]:
        if self._scores is None:
            self._scores = self._compute_scores()
        return self._scores

    def _compute_scores(self) -> tuple[PairScores, ...]:
        table: dict[str, dict[str, int]] = {g.uuid: {} for g in self._gpus}
        for a, b in combinations(self._gpus, 2):
            forward, backward = self._link_score(a, b), self._link_score(b, a)
            score = forward if forward == backward else 0
            if forward != backward:
                log.warning("asymmetric GPU P2P link between %s and %s", a.uuid, b.uuid)
            table[a.uuid][b.uuid] = table[b.uuid][a.uuid] = score
        return tuple(PairScores(uuid=u, scores=s) for u, s in table.items())

    def _link_score(self, a: Gpu, b: Gpu) -> int:
        nvml = self._nvml
        levels = {
            nvml.NVML_TOPOLOGY_INTERNAL: LINK_SCORES["internal"],
            nvml.NVML_TOPOLOGY_SINGLE: LINK_SCORES["single"],
            nvml.NVML_TOPOLOGY_MULTIPLE: LINK_SCORES["multiple"],
            nvml.NVML_TOPOLOGY_HOSTBRIDGE: LINK_SCORES["hostbridge"],
            nvml.NVML_TOPOLOGY_NODE: LINK_SCORES["node"],
            nvml.NVML_TOPOLOGY_SYSTEM: LINK_SCORES["system"],
        }
        try:
            level = nvml.nvmlDeviceGetTopologyCommonAncestor(
                self._handles[a.uuid], self._handles[b.uuid]
            )
        except nvml.NVMLError:
            level = None
        return levels.get(level, 0) + NVLINK_SCORE * self._nvlinks(a, b)

    def _nvlinks(self, a: Gpu, b: Gpu) -> int:
        """Enabled NVLink lanes from a to b; via NVSwitch: the smaller switch lane count."""
        direct = self._lanes(a, lambda remote, _kind: remote == b.bus_id.lower())
        if direct:
            return direct
        switch = self._nvml.NVML_NVLINK_DEVICE_TYPE_SWITCH
        to_switch_a = self._lanes(a, lambda _remote, kind: kind == switch)
        to_switch_b = self._lanes(b, lambda _remote, kind: kind == switch)
        return min(to_switch_a, to_switch_b)

    def _lanes(self, gpu: Gpu, match: Any) -> int:
        nvml, handle, lanes = self._nvml, self._handles[gpu.uuid], 0
        for link in range(nvml.NVML_NVLINK_MAX_LINKS):
            try:
                if nvml.nvmlDeviceGetNvLinkState(handle, link) != nvml.NVML_FEATURE_ENABLED:
                    continue
                remote = _text(nvml.nvmlDeviceGetNvLinkRemotePciInfo(handle, link).busId).lower()
                kind = nvml.nvmlDeviceGetNvLinkRemoteDeviceType(handle, link)
            except nvml.NVMLError:
                continue
            lanes += bool(match(remote, kind))
        return lanes

    # --- health --------------------------------------------------------------------------------

    async def health_events(self) -> AsyncIterator[HealthEvent]:
        for failed in self._register_events():
            yield failed
        while True:
            event = await asyncio.to_thread(self._wait_event)
            if event is not None:
                yield event

    def _register_events(self) -> list[HealthEvent]:
        nvml = self._nvml
        self._events = nvml.nvmlEventSetCreate()
        wanted = (
            nvml.nvmlEventTypeXidCriticalError
            | nvml.nvmlEventTypeDoubleBitEccError
            | nvml.nvmlEventTypeSingleBitEccError
        )
        failed = []
        for uuid, handle in self._handles.items():
            try:
                supported = nvml.nvmlDeviceGetSupportedEventTypes(handle)
                nvml.nvmlDeviceRegisterEvents(handle, wanted & supported, self._events)
            except nvml.NVMLError as exc:
                if getattr(exc, "value", None) == nvml.NVML_ERROR_NOT_SUPPORTED:
                    log.info("GPU %s is too old for health events; not checked", uuid)
                    continue
                failed.append(HealthEvent(uuid, False, f"cannot register NVML events: {exc}"))
        return failed

    def _wait_event(self) -> HealthEvent | None:
        nvml = self._nvml
        try:
            data = nvml.nvmlEventSetWait_v2(self._events, EVENT_WAIT_MS)
        except nvml.NVMLError as exc:
            if getattr(exc, "value", None) == nvml.NVML_ERROR_TIMEOUT:
                return None
            return HealthEvent(None, False, f"NVML event wait failed: {exc}")
        if data.eventType != nvml.nvmlEventTypeXidCriticalError:
            return None
        xid = int(data.eventData)
        try:
            uuid: str | None = _text(nvml.nvmlDeviceGetUUID(data.device))
        except nvml.NVMLError:
            uuid = None
        if uuid not in self._handles:
            uuid = None  # an event for a device we do not know: mark every device
        return HealthEvent(uuid, False, f"XID {xid}", xid=xid)
