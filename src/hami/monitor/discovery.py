"""Finding the per-container cache directories (wire-format.md §6.4).

``<hook>/containers/<podUID>_<container>/`` holds one ``*.cache`` region file (plus, in HAMi's
layout, possibly the library). Directories of pods that no longer exist are removed once they
are older than the resync interval.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from hami.monitor.region import RegionError

log = logging.getLogger(__name__)
MAX_CANDIDATES = 2


@dataclass(frozen=True, slots=True)
class ContainerDir:
    path: Path
    pod_uid: str
    container: str
    mtime: float


def scan(root: Path) -> Iterator[ContainerDir]:
    """Every ``<podUID>_<container>`` directory under ``root`` (missing root: none)."""
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return
    for entry in sorted(entries):
        uid, sep, container = entry.name.partition("_")
        if not sep or not uid or not container:
            continue
        try:
            stat = entry.stat()
        except OSError:
            continue  # removed meanwhile
        if entry.is_dir():
            yield ContainerDir(entry, uid, container, stat.st_mtime)


def cache_file(directory: Path) -> Path | None:
    """The region file of a container directory; None while the container has not made one.

    HAMi's rule: more than two files named like the library or ending in ``.cache`` is an
    error; the first ``*.cache`` file whose name does not contain ``libvgpu.so`` is used.
    """
    try:
        names = sorted(p.name for p in directory.iterdir() if p.is_file())
    except OSError as exc:
        raise RegionError(directory, "unreadable", str(exc)) from None
    candidates = [n for n in names if "libvgpu.so" in n or n.endswith(".cache")]
    if len(candidates) > MAX_CANDIDATES:
        raise RegionError(directory, "ambiguous", f"{len(candidates)} candidate files")
    for name in candidates:
        if name.endswith(".cache") and "libvgpu.so" not in name:
            return directory / name
    return None


def remove_stale(
    dirs: Collection[ContainerDir], live_uids: Collection[str], now: float, grace: float
) -> list[ContainerDir]:
    """Delete directories of pods not in ``live_uids`` whose mtime is older than ``grace``."""
    removed = []
    for entry in dirs:
        if entry.pod_uid in live_uids or now - entry.mtime <= grace:
            continue
        try:
            shutil.rmtree(entry.path)
        except OSError as exc:
            log.warning("cannot remove stale cache directory %s: %s", entry.path, exc)
            continue
        log.info("removed cache directory of deleted pod: %s", entry.path)
        removed.append(entry)
    return removed
