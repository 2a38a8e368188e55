"""The one Python mirror of libvgpu's shared-region ABI (``libvgpu/include/libvgpu.h``):
constants and ctypes structures, compared field by field with the C printer by
tests/libvgpu/test_abi.py. The byte layout is HAMi-core's version 1.2 (magic 19920718);
libvgpu additionally stores an extension header in the bytes HAMi-core used for a semaphore.
The one reader of region files is `hami.monitor.region`, which takes its v1 offsets from here.
"""

from __future__ import annotations

import ctypes

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
