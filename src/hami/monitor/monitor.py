"""The monitor's state: open region files matched to pods, refreshed every few seconds.

`refresh()` (the periodic pass) lists this node's pods, scans the cache directories, opens new
region files, drops gone ones, removes stale directories and writes the priority feedback.
`containers()` (called on every scrape) reads each open region. A corrupt or foreign file, or
one truncated since it was opened (seen by a scrape; the next refresh re-opens it), is recorded
(`errors`, one log line per path and reason) and skipped; nothing here raises.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hami.k8s.api import KubeAPI, KubeAPIError
from hami.k8s.views import PodInfo
from hami.monitor import discovery
from hami.monitor.discovery import ContainerDir
from hami.monitor.feedback import Feedback, feedback
from hami.monitor.pods import node_pods
from hami.monitor.region import RegionError, RegionFile, RegionSnapshot, file_identity

log = logging.getLogger(__name__)


class HookPathError(ValueError):
    """The hook path was given in its old meaning, the ``vgpu`` directory itself."""


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    node: str
    # the device plugin's HOOK_PATH prefix: libvgpu at <prefix>/vgpu/libvgpu.so, regions
    # under <prefix>/vgpu/containers/ (HAMi's monitor took <prefix>/vgpu instead)
    hook_path: Path = Path("/usr/local")
    resync_interval: float = 300.0  # HAMI_RESYNC_INTERVAL: grace before stale dirs go
    feedback: bool = True

    @property
    def containers_dir(self) -> Path:
        return self.hook_path / "vgpu" / "containers"


def check_hook_path(hook_path: Path) -> None:
    """Refuse the old meaning of the hook path (``<prefix>/vgpu``) instead of watching nothing.

    It is recognised by its shape: the path ends in ``vgpu``, holds ``containers/`` and has no
    ``vgpu/`` of its own. Raises HookPathError with a one-line explanation.
    """
    if (
        hook_path.name == "vgpu"
        and not (hook_path / "vgpu").is_dir()
        and (hook_path / "containers").is_dir()
    ):
        raise HookPathError(
            f"hook path {hook_path} is the vgpu directory itself; --hook-path/HOOK_PATH is now"
            f" the device plugin's prefix (regions under <prefix>/vgpu/containers):"
            f" use {hook_path.parent}"
        )


@dataclass(frozen=True, slots=True)
class RegionIssue:
    pod_uid: str
    container: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class ContainerReading:
    pod: PodInfo
    container: str
    snapshot: RegionSnapshot


@dataclass(slots=True)
class _Tracked:
    entry: ContainerDir
    region: RegionFile


class Monitor:
    def __init__(
        self,
        settings: MonitorSettings,
        kube: KubeAPI,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_hook_path(settings.hook_path)
        self.settings = settings
        self._kube = kube
        self._clock = clock
        self._regions: dict[Path, _Tracked] = {}
        self.pods: dict[str, PodInfo] = {}
        self.pods_listed = False  # True once a pod list succeeded
        self.errors: dict[Path, RegionIssue] = {}
        self.removed = 0  # stale directories deleted so far
        self.kube_errors = 0
        self.last_refresh = 0.0

    async def refresh(self) -> None:
        listed = await self._list_pods()
        dirs = list(discovery.scan(self.settings.containers_dir))
        if listed:
            gone = discovery.remove_stale(
                dirs, self.pods.keys(), self._clock(), self.settings.resync_interval
            )
            self.removed += len(gone)
            dirs = [d for d in dirs if d not in gone]
        self._track(dirs)
        if self.settings.feedback:
            self._feedback()
        self.last_refresh = self._clock()

    async def _list_pods(self) -> bool:
        try:
            self.pods = await node_pods(self._kube, self.settings.node)
        except KubeAPIError as exc:
            self.kube_errors += 1
            log.warning("cannot list pods of node %s: %s", self.settings.node, exc)
            return False
        self.pods_listed = True
        return True

    def _track(self, dirs: list[ContainerDir]) -> None:
        seen: set[Path] = set()
        issues: dict[Path, RegionIssue] = {}
        for entry in dirs:
            seen.add(entry.path)
            try:
                self._open(entry)
            except RegionError as exc:
                issues[entry.path] = self._issue(entry, exc)
                self._forget(entry.path)
        for path in set(self._regions) - seen:
            self._forget(path)
        self.errors = issues

    def _open(self, entry: ContainerDir) -> None:
        path = discovery.cache_file(entry.path)
        tracked = self._regions.get(entry.path)
        if path is None:
            self._forget(entry.path)  # the container has not started CUDA yet
            return
        if (
            tracked is not None
            and tracked.region.path == path
            and tracked.region.identity == file_identity(path)
        ):
            tracked.entry = entry
            return
        self._forget(entry.path)
        self._regions[entry.path] = _Tracked(entry, RegionFile(path))

    def _issue(self, entry: ContainerDir, exc: RegionError) -> RegionIssue:
        issue = RegionIssue(entry.pod_uid, entry.container, exc.reason, str(exc))
        old = self.errors.get(entry.path)
        if old is None or old.reason != issue.reason:
            log.warning("skipping region of %s/%s: %s", entry.pod_uid, entry.container, exc)
        return issue

    def _forget(self, directory: Path) -> None:
        tracked = self._regions.pop(directory, None)
        if tracked is not None:
            tracked.region.close()

    def _snapshots(self) -> list[tuple[_Tracked, RegionSnapshot]]:
        result = []
        for tracked in self._regions.values():
            try:
                result.append((tracked, tracked.region.snapshot()))
            except RegionError as exc:  # truncated under us: counted until the next refresh
                entry = tracked.entry
                self.errors[entry.path] = self._issue(entry, exc)
            except OSError as exc:
                log.warning("cannot read %s: %s", tracked.region.path, exc)
        return result

    def containers(self) -> list[ContainerReading]:
        """A fresh reading of every region matched to a known pod and container."""
        readings = []
        for tracked, snapshot in self._snapshots():
            entry = tracked.entry
            pod = self.pods.get(entry.pod_uid)
            if pod is None or pod.position(entry.container) is None:
                continue
            readings.append(ContainerReading(pod, entry.container, snapshot))
        return readings

    def unmatched(self) -> int:
        return sum(
            1
            for t in self._regions.values()
            if (pod := self.pods.get(t.entry.pod_uid)) is None
            or pod.position(t.entry.container) is None
        )

    @property
    def tracked(self) -> int:
        return len(self._regions)

    def _feedback(self) -> None:
        pairs = self._snapshots()
        inputs = [
            Feedback(s.recent_kernel, s.priority, tuple(d.uuid for d in s.devices))
            for _, s in pairs
        ]
        for (tracked, snapshot), update in zip(pairs, feedback(inputs), strict=True):
            region = tracked.region
            if update.recent_kernel != snapshot.recent_kernel:
                region.set_recent_kernel(update.recent_kernel)
            if update.utilization_switch != snapshot.utilization_switch:
                region.set_utilization_switch(update.utilization_switch)

    def close(self) -> None:
        for path in list(self._regions):
            self._forget(path)
