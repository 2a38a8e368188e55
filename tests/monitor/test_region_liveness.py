"""Slots of killed processes in a libvgpu region: left out while nobody holds their life lock;
HAMi-core regions (no extension header, no life locks) are read as before."""

from __future__ import annotations

import fcntl
import os
import struct
from pathlib import Path

from hami.monitor import abi as shm
from hami.monitor.region import RegionFile, has_life_locks, slot_lock_offset

from .regions import Slot, region_bytes, write_region

UUID = "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448"
EXT_AT = shm.RegionLayout.ext.offset


def two_slots(libvgpu: bool) -> bytearray:
    slots = [Slot(1, {0: (0, 0, 100, 0, 100, 10)}), Slot(1, {0: (0, 0, 50, 0, 50, 20)})]
    data = region_bytes([UUID], [1 << 30], slots, extra=1 + len(slots))
    if libvgpu:
        struct.pack_into("<II", data, EXT_AT, shm.EXT_MAGIC, shm.EXT_VERSION)
    return data


def hold_life_lock(path: Path, slot: int) -> int:
    """An open file description holding slot ``slot``'s lock, as its owner process would."""
    fd = os.open(path, os.O_RDWR)
    lock = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, slot_lock_offset(slot), 1, 0)
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, lock)
    return fd


def test_slots_without_a_held_life_lock_are_left_out(tmp_path: Path) -> None:
    path = write_region(tmp_path, two_slots(libvgpu=True))
    owner = hold_life_lock(path, 1)  # slot 0's process is gone
    region = RegionFile(path)
    try:
        assert has_life_locks(region.layout, two_slots(libvgpu=True))
        snap = region.snapshot()
        assert snap.procs == 1
        (device,) = snap.devices
        assert (device.total, device.sm_util) == (50, 20)
        os.close(owner)  # now both are gone
        assert region.snapshot().devices[0].total == 0
    finally:
        region.close()


def test_hami_core_regions_have_no_life_locks(tmp_path: Path) -> None:
    path = write_region(tmp_path, two_slots(libvgpu=False))
    region = RegionFile(path)
    try:
        assert not has_life_locks(region.layout, two_slots(libvgpu=False))
        snap = region.snapshot()
        assert snap.procs == 2
        assert snap.devices[0].total == 150
    finally:
        region.close()
