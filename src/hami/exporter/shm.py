"""Read-only mirror of libvgpu's shared-region ABI (``libvgpu/include/libvgpu.h``).

The byte layout is HAMi-core's version 1.2 (magic 19920718), so files written by
HAMi-core and by hami's libvgpu are both readable; libvgpu additionally stores
an extension header in the bytes HAMi-core used for a semaphore. ``parse``
validates a buffer and returns plain data; ``load`` reads a file. Nothing here
does I/O at import time, and nothing ever writes to the region.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

MAGIC = 19920718
MAJOR = 1
MINOR = 2
EXT_MAGIC = 0x55504756
EXT_VERSION = 1
MAX_DEVICES = 16
MAX_PROCS = 1024
UUID_LEN = 96
SLOT_FREE = 0
EXT_CONFIG_ERROR = 0x1

u64 = ctypes.c_uint64
i32 = ctypes.c_int32
u32 = ctypes.c_uint32


class DevMem(ctypes.Structure):
    _fields_ = [
        ("context_size", u64),
        ("module_size", u64),
        ("data_size", u64),
        ("offset", u64),
        ("total", u64),
        ("unused", u64 * 3),
    ]


class DevUtil(ctypes.Structure):
    _fields_ = [
        ("dec_util", u64),
        ("enc_util", u64),
        ("sm_util", u64),
        ("unused", u64 * 3),
    ]


class Slot(ctypes.Structure):
    _fields_ = [
        ("pid", i32),
        ("hostpid", i32),
        ("used", DevMem * MAX_DEVICES),
        ("monitorused", u64 * MAX_DEVICES),
        ("device_util", DevUtil * MAX_DEVICES),
        ("status", i32),
        ("seqlock", u64),
        ("unused", u64 * 2),
    ]


class Ext(ctypes.Structure):
    _fields_ = [
        ("magic", u32),
        ("version", u32),
        ("flags", u32),
        ("reserved0", u32),
        ("generation", u64),
        ("reserved1", u64),
    ]


class RegionLayout(ctypes.Structure):
    _fields_ = [
        ("initialized_flag", i32),
        ("major_version", u32),
        ("minor_version", u32),
        ("sm_init_flag", i32),
        ("owner_pid", u64),
        ("ext", Ext),
        ("device_num", u64),
        ("uuids", (ctypes.c_char * UUID_LEN) * MAX_DEVICES),
        ("limit", u64 * MAX_DEVICES),
        ("sm_limit", u64 * MAX_DEVICES),
        ("procs", Slot * MAX_PROCS),
        ("proc_num", i32),
        ("utilization_switch", i32),
        ("recent_kernel", i32),
        ("priority", i32),
        ("last_kernel_time", u64),
        ("sem_postinit", ctypes.c_uint8 * 32),
    ]


REGION_SIZE = ctypes.sizeof(RegionLayout)
FILE_SIZE = REGION_SIZE + 1
LAYOUTS: dict[str, type[ctypes.Structure]] = {
    "lvgpu_devmem_t": DevMem,
    "lvgpu_devutil_t": DevUtil,
    "lvgpu_slot_t": Slot,
    "lvgpu_ext_t": Ext,
    "lvgpu_region_t": RegionLayout,
}


class RegionError(ValueError):
    """The bytes are not a shared region this reader understands."""


@dataclass(frozen=True)
class DeviceUsage:
    total: int
    context: int
    data: int
    sm_util: int


@dataclass(frozen=True)
class Process:
    slot: int
    pid: int
    hostpid: int
    status: int
    devices: tuple[DeviceUsage, ...]


@dataclass(frozen=True)
class Region:
    major: int
    minor: int
    libvgpu: bool  # written by hami's libvgpu (extension header present)
    config_error: bool
    uuids: tuple[str, ...]
    limits: tuple[int, ...]
    sm_limits: tuple[int, ...]
    processes: tuple[Process, ...]
    utilization_switch: int
    recent_kernel: int
    priority: int
    last_kernel_time: int

    def used(self, device: int) -> int:
        """Bytes charged on region device index ``device`` by live processes."""
        return sum(p.devices[device].total for p in self.processes)


def parse(data: bytes) -> Region:
    """Validate ``data`` (a whole region file) and return its contents."""
    if len(data) < REGION_SIZE:
        raise RegionError(
            f"region is {len(data)} bytes, a version {MAJOR}.{MINOR} region needs "
            f"{REGION_SIZE}: truncated, or not a libvgpu/HAMi-core file"
        )
    raw = RegionLayout.from_buffer_copy(data[:REGION_SIZE])
    if raw.initialized_flag != MAGIC:
        raise RegionError(
            f"bad magic {raw.initialized_flag} (expected {MAGIC}): not initialised or not a region"
        )
    if raw.major_version != MAJOR:
        raise RegionError(
            f"region version {raw.major_version}.{raw.minor_version} is not supported "
            f"(this reader knows {MAJOR}.x)"
        )
    is_ours = raw.ext.magic == EXT_MAGIC
    if is_ours and raw.ext.version != EXT_VERSION:
        raise RegionError(f"libvgpu extension version {raw.ext.version} is not supported")
    ndev = raw.device_num
    if ndev > MAX_DEVICES:
        raise RegionError(f"corrupt region: device_num {ndev} > {MAX_DEVICES}")
    if not 0 <= raw.proc_num <= MAX_PROCS:
        raise RegionError(f"corrupt region: proc_num {raw.proc_num} outside 0..{MAX_PROCS}")
    procs = []
    for i in range(raw.proc_num):
        s = raw.procs[i]
        if s.status == SLOT_FREE:
            continue
        devs = tuple(
            DeviceUsage(
                total=s.used[d].total,
                context=s.used[d].context_size,
                data=s.used[d].data_size,
                sm_util=s.device_util[d].sm_util,
            )
            for d in range(MAX_DEVICES)
        )
        procs.append(Process(i, s.pid, s.hostpid, s.status, devs))
    return Region(
        major=raw.major_version,
        minor=raw.minor_version,
        libvgpu=is_ours,
        config_error=bool(is_ours and raw.ext.flags & EXT_CONFIG_ERROR),
        uuids=tuple(raw.uuids[d].value.decode("ascii", "replace") for d in range(ndev)),
        limits=tuple(raw.limit[d] for d in range(ndev)),
        sm_limits=tuple(raw.sm_limit[d] for d in range(ndev)),
        processes=tuple(procs),
        utilization_switch=raw.utilization_switch,
        recent_kernel=raw.recent_kernel,
        priority=raw.priority,
        last_kernel_time=raw.last_kernel_time,
    )


def load(path: str | Path) -> Region:
    """Read and parse the region file at ``path`` (read-only)."""
    with open(path, "rb") as f:
        return parse(f.read(REGION_SIZE))
