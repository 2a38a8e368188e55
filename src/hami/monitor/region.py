"""Reading (and the monitor's few writes to) a container's shared-region file.

The layouts are HAMi's monitor readers (wire-format.md §6.4, isolation-library.md §4.2/§4.6):
v1 is libvgpu's / HAMi-core's `shared_region_t` (2,008,952 bytes; libvgpu's
`lvgpu_region_t` in `libvgpu/include/libvgpu.h` is byte-identical), its offsets taken from the
one Python mirror of that ABI, `hami.monitor.abi`; v0 is the older HAMi-core layout. Selection
follows HAMi: magic first, then size and major version.

The file is never mapped: a container owns its region file and may truncate it, and touching a
mapping past the new end kills the reader with SIGBUS. Each reading copies what it needs with
`pread` (the header and the used slots, then the tail fields); a short read means the file was
truncated under us and raises RegionError "truncated". Reads are lock-free snapshots taken
without the region lock (the sum over slots may mix instants, as in HAMi). In a region written
by libvgpu (its extension header is present) every live process holds an OFD write lock on its
slot's byte after the region; a slot whose lock nobody holds belongs to a killed process that
nobody has reaped yet and is left out, so its usage drops at once. Writes are the two 32-bit
feedback fields, `recent_kernel` and `utilization_switch`, each one 4-byte `pwrite`, made only
while the file still has its full size (a write past the end would grow the file).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hami.monitor import abi as shm

Buffer = bytes | bytearray | memoryview

MAGIC = shm.MAGIC
MAX_DEVICES = shm.MAX_DEVICES
MAX_PROCS = shm.MAX_PROCS
UUID_FIELD = shm.UUID_LEN
UUID_CHARS = 40  # HAMi exports the first 40 bytes of the UUID field
MIN_SIZE = 12


class RegionError(Exception):
    """A region file cannot be used; ``reason`` is a short metric label."""

    def __init__(self, path: Path, reason: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Layout:
    version: str
    size: int
    num: int
    uuids: int
    limit: int
    sm_limit: int
    procs: int
    slot: int  # slot size
    mem_stride: int  # one device_memory_t
    util: int  # device_util[] offset inside a slot
    util_stride: int
    status: int  # status offset inside a slot
    tail: int  # proc_num; utilization_switch, recent_kernel, priority follow as int32
    last_kernel: int | None  # int64 seconds (v1 only)

    @property
    def tail_size(self) -> int:
        """Bytes from ``tail`` to the end of the fields read there."""
        return self.last_kernel + 8 - self.tail if self.last_kernel else 16

    def head_size(self, procs: int) -> int:
        """Bytes from the start through the first ``procs`` slots."""
        return self.procs + procs * self.slot


_R, _S = shm.RegionLayout, shm.Slot
V1 = Layout(
    "v1",
    size=shm.REGION_SIZE,
    num=_R.device_num.offset,
    uuids=_R.uuids.offset,
    limit=_R.limit.offset,
    sm_limit=_R.sm_limit.offset,
    procs=_R.procs.offset,
    slot=ctypes.sizeof(_S),
    mem_stride=ctypes.sizeof(shm.DevMem),
    util=_S.device_util.offset,
    util_stride=ctypes.sizeof(shm.DevUtil),
    status=_S.status.offset,
    tail=_R.proc_num.offset,
    last_kernel=_R.last_kernel_time.offset,
)
_EXT_MAGIC_AT = _R.ext.offset + shm.Ext.magic.offset
_SM_UTIL_WORD = shm.DevUtil.sm_util.offset // 8
V0 = Layout("v0", 1_197_896, 48, 56, 1592, 1720, 1848, 1168, 40, 776, 24, 1160, 1_197_880, None)
MEM_FIELDS = 5  # context, module, data (buffer), offset, total


@dataclass(frozen=True, slots=True)
class RegionDevice:
    """One device of a container: limits from the header, sums over live process slots."""

    index: int  # vdevice index inside the container
    uuid: str
    limit: int  # bytes
    sm_limit: int
    context: int = 0
    module: int = 0
    buffer: int = 0
    offset: int = 0
    total: int = 0
    sm_util: int = 0


@dataclass(frozen=True, slots=True)
class RegionSnapshot:
    version: str
    devices: tuple[RegionDevice, ...]  # devices with a valid UUID only
    procs: int  # live slots (status != 0)
    last_kernel_time: int  # Unix seconds, 0 when unknown (v0)
    priority: int
    recent_kernel: int
    utilization_switch: int


def select_layout(path: Path, data: Buffer, size: int | None = None) -> Layout:
    """HAMi's version selection from the file's ``size`` (default: all of ``data``) and its
    first bytes; raises RegionError."""
    size = len(data) if size is None else size
    if size < MIN_SIZE or len(data) < MIN_SIZE:
        raise RegionError(path, "too_small", f"{size} bytes, not a shared region")
    (magic, major) = struct.unpack_from("<iI", data, 0)
    if magic != MAGIC:
        raise RegionError(path, "bad_magic", f"magic {magic} is not {MAGIC}")
    if V0.size <= size < V1.size:
        return V0
    if major == 1 and size >= V1.size:
        return V1
    raise RegionError(path, "unknown_version", f"major version {major} with {size} bytes")


def _uuid(raw: bytes) -> str | None:
    head = raw[:UUID_CHARS]
    if not head or head[0] == 0:
        return None
    try:
        return head.split(b"\0", 1)[0].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _tail(tail: Buffer) -> tuple[int, int, int, int]:
    procnum, switch, recent, priority = struct.unpack_from("<4i", tail, 0)
    return procnum, switch, recent, priority


def _slots(procnum: int) -> int:
    return max(0, min(procnum, MAX_PROCS))


def has_life_locks(layout: Layout, data: Buffer) -> bool:
    """Whether libvgpu wrote the region (its processes hold per-slot life locks)."""
    if layout is not V1:
        return False
    return bool(struct.unpack_from("<I", data, _EXT_MAGIC_AT)[0] == shm.EXT_MAGIC)


def slot_lock_offset(slot: int) -> int:
    """``LVGPU_LOCK_SLOT_OFF(i)``: the byte a live slot owner keeps write-locked."""
    return shm.REGION_SIZE + 1 + slot


_FLOCK = "hhqqi4x"  # struct flock on 64-bit Linux: type, whence, start, len, pid


def slot_alive(fd: int, slot: int) -> bool:
    """Someone holds slot ``slot``'s life lock (F_OFD_GETLK; unsure counts as alive)."""
    probe = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, slot_lock_offset(slot), 1, 0)
    try:
        answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, probe)
    except OSError:
        return True
    return bool(struct.unpack(_FLOCK, answer)[0] != fcntl.F_UNLCK)


def read_snapshot(
    layout: Layout, data: Buffer, alive: Callable[[int], bool] | None = None
) -> RegionSnapshot:
    """Sum the live slots of a whole region; ``alive(slot)``, when given, must also hold for a
    slot to count."""
    tail = memoryview(data)[layout.tail : layout.tail + layout.tail_size]
    return snapshot_of(layout, data, tail, alive)


def snapshot_of(
    layout: Layout, head: Buffer, tail: Buffer, alive: Callable[[int], bool] | None = None
) -> RegionSnapshot:
    """The snapshot from ``head`` (the region from offset 0 through at least the slots that
    ``proc_num`` in ``tail`` names; slots past its end are not read) and ``tail`` (the
    ``layout.tail_size`` bytes at ``layout.tail``)."""
    (num,) = struct.unpack_from("<Q", head, layout.num)
    count = min(num, MAX_DEVICES)
    limits = struct.unpack_from(f"<{MAX_DEVICES}Q", head, layout.limit)
    sm_limits = struct.unpack_from(f"<{MAX_DEVICES}Q", head, layout.sm_limit)
    procnum, switch, recent, priority = _tail(tail)
    sums = [[0] * (MEM_FIELDS + 1) for _ in range(count)]
    live = 0
    slots = min(_slots(procnum), (len(head) - layout.procs) // layout.slot)
    for slot in range(slots):
        base = layout.procs + slot * layout.slot
        (status,) = struct.unpack_from("<i", head, base + layout.status)
        if status == 0 or (alive is not None and not alive(slot)):
            continue
        live += 1
        _add_slot(layout, head, base, sums)
    last = 0
    if layout.last_kernel:
        (last,) = struct.unpack_from("<q", tail, layout.last_kernel - layout.tail)
    devices = []
    for i in range(count):
        start = layout.uuids + i * UUID_FIELD
        uuid = _uuid(bytes(head[start : start + UUID_FIELD]))
        if uuid is None:
            continue
        ctx, module, buffer, offset, total, sm = sums[i]
        devices.append(
            RegionDevice(i, uuid, limits[i], sm_limits[i], ctx, module, buffer, offset, total, sm)
        )
    return RegionSnapshot(layout.version, tuple(devices), live, last, priority, recent, switch)


def _add_slot(layout: Layout, data: Buffer, base: int, sums: list[list[int]]) -> None:
    words = layout.mem_stride // 8
    used = struct.unpack_from(f"<{MAX_DEVICES * words}Q", data, base + 8)
    util_words = layout.util_stride // 8
    util = struct.unpack_from(f"<{MAX_DEVICES * util_words}Q", data, base + layout.util)
    for i, acc in enumerate(sums):
        for f in range(MEM_FIELDS):
            acc[f] += used[i * words + f]
        acc[MEM_FIELDS] += util[i * util_words + _SM_UTIL_WORD]


class RegionFile:
    """An open region file, read with pread (re-opened when the file is replaced)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writable = os.access(path, os.W_OK)
        try:
            self._fd = os.open(path, os.O_RDWR if self.writable else os.O_RDONLY)
        except OSError as exc:
            raise RegionError(path, "unreadable", str(exc)) from None
        try:
            stat = os.fstat(self._fd)
            self.identity = (stat.st_dev, stat.st_ino, stat.st_size)
            head = os.pread(self._fd, V1.procs, 0)
            self.layout = select_layout(path, head, stat.st_size)
            self._locks = has_life_locks(self.layout, head)
        except OSError as exc:
            os.close(self._fd)
            raise RegionError(path, "unreadable", str(exc)) from None
        except RegionError:
            os.close(self._fd)
            raise

    def _read(self, size: int, offset: int) -> bytes:
        data = os.pread(self._fd, size, offset)
        if len(data) < size:
            raise RegionError(
                self.path,
                "truncated",
                f"truncated under the reader: {len(data)} of {size} bytes at offset {offset}",
            )
        return data

    def snapshot(self) -> RegionSnapshot:
        """A fresh reading; RegionError "truncated" if the file got shorter, OSError else."""
        layout = self.layout
        tail = self._read(layout.tail_size, layout.tail)
        head = self._read(layout.head_size(_slots(_tail(tail)[0])), 0)
        return snapshot_of(layout, head, tail, self._alive if self._locks else None)

    def _alive(self, slot: int) -> bool:
        return slot_alive(self._fd, slot)

    def _write_int(self, offset: int, value: int) -> None:
        if not self.writable or os.fstat(self._fd).st_size < self.layout.size:
            return  # read-only, or truncated: writing would grow the file
        os.pwrite(self._fd, struct.pack("<i", value), offset)

    def set_recent_kernel(self, value: int) -> None:
        self._write_int(self.layout.tail + 8, value)

    def set_utilization_switch(self, value: int) -> None:
        self._write_int(self.layout.tail + 4, value)

    def close(self) -> None:
        os.close(self._fd)


def file_identity(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_size)
