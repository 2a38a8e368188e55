"""The C library and its Python mirror agree on the ABI; only intended symbols are exported."""

from __future__ import annotations

import ctypes
import struct
import subprocess
from pathlib import Path

import pytest

from hami.monitor import abi as shm
from hami.monitor import region


def printer(build_dir: Path) -> list[list[str]]:
    out = subprocess.run(
        [str(build_dir / "rel" / "tests" / "abi_print")], capture_output=True, text=True, check=True
    ).stdout
    return [line.split() for line in out.splitlines()]


def test_layout_matches_c(build_dir: Path) -> None:
    rows = printer(build_dir)
    sizes = {r[1]: int(r[2]) for r in rows if r[0] == "size"}
    fields = [(r[1], int(r[2]), int(r[3])) for r in rows if r[0] == "field"]
    assert set(sizes) == set(shm.LAYOUTS)
    for name, size in sizes.items():
        assert ctypes.sizeof(shm.LAYOUTS[name]) == size, name
    seen: dict[str, set[str]] = {n: set() for n in shm.LAYOUTS}
    for qual, offset, size in fields:
        tname, fname = qual.split(".")
        desc = getattr(shm.LAYOUTS[tname], fname)
        assert (desc.offset, desc.size) == (offset, size), qual
        seen[tname].add(fname)
    for tname, cls in shm.LAYOUTS.items():  # every Python field is checked against C
        assert seen[tname] == {f[0] for f in cls._fields_}, tname


def test_constants_match_c(build_dir: Path) -> None:
    consts = {r[1]: int(r[2]) for r in printer(build_dir) if r[0] == "const"}
    assert consts["LVGPU_MAGIC"] == shm.MAGIC
    assert consts["LVGPU_MAJOR"] == shm.MAJOR
    assert consts["LVGPU_MINOR"] == shm.MINOR
    assert consts["LVGPU_EXT_MAGIC"] == shm.EXT_MAGIC
    assert consts["LVGPU_EXT_VERSION"] == shm.EXT_VERSION
    assert consts["LVGPU_MAX_DEVICES"] == shm.MAX_DEVICES
    assert consts["LVGPU_MAX_PROCS"] == shm.MAX_PROCS
    assert consts["LVGPU_FILE_SIZE"] == shm.FILE_SIZE


def test_hami_v1_offsets() -> None:
    """The offsets HAMi's monitor (v1 spec) reads, byte for byte."""
    assert shm.REGION_SIZE == 2_008_952
    assert shm.RegionLayout.procs.offset == 1856
    assert shm.RegionLayout.limit.offset == 1600
    assert shm.RegionLayout.proc_num.offset == 2_008_896
    assert shm.RegionLayout.last_kernel_time.offset == 2_008_912
    assert ctypes.sizeof(shm.Slot) == 1960
    assert shm.Slot.status.offset == 1928


@pytest.mark.parametrize("variant", ["rel", "asan"])
def test_exported_symbols(build_dir: Path, variant: str) -> None:
    nm = subprocess.run(
        ["nm", "-D", "--defined-only", str(build_dir / variant / "libvgpu.so")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    exported = {line.split()[-1] for line in nm.splitlines() if line.strip()}
    intended = {r[1] for r in printer(build_dir) if r[0] == "export"}
    assert exported == intended


def region_bytes(**over: int) -> bytearray:
    r = shm.RegionLayout()
    r.initialized_flag = shm.MAGIC
    r.major_version, r.minor_version = shm.MAJOR, shm.MINOR
    r.ext.magic, r.ext.version = shm.EXT_MAGIC, shm.EXT_VERSION
    r.device_num = 2
    r.uuids[0].value = b"GPU-aaaa"
    r.uuids[1].value = b"GPU-bbbb"
    r.limit[0] = 3000 << 20
    r.proc_num = 3
    for i, (pid, status, used) in enumerate([(10, 1, 100), (0, 0, 999), (12, 1, 50)]):
        r.procs[i].pid, r.procs[i].status = pid, status
        r.procs[i].used[0].total = used
    r.priority = 1
    for k, v in over.items():
        setattr(r, k, v)
    return bytearray(bytes(r)) + b"\0"


def snapshot(data: bytes | bytearray) -> region.RegionSnapshot:
    """What the monitor (the one reader of region files) makes of ``data``."""
    layout = region.select_layout(Path("r.cache"), data)
    return region.read_snapshot(layout, data)


def test_the_monitor_reads_a_libvgpu_region() -> None:
    data = region_bytes()
    snap = snapshot(data)
    assert [(d.uuid, d.limit) for d in snap.devices] == [("GPU-aaaa", 3000 << 20), ("GPU-bbbb", 0)]
    assert snap.procs == 2  # free slots are not processes
    assert snap.devices[0].total == 150
    assert region.has_life_locks(region.V1, data)


def test_the_monitor_reads_a_hami_core_region() -> None:
    data = region_bytes()
    struct.pack_into("<IIII", data, shm.RegionLayout.ext.offset, 0, 0, 0, 0)
    assert not region.has_life_locks(region.V1, data)
    assert snapshot(data).devices[0].total == 150


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too_small"),
        (bytes(region_bytes(initialized_flag=7)), "bad_magic"),
        (bytes(region_bytes(major_version=2)), "unknown_version"),
    ],
)
def test_the_monitor_rejects(data: bytes, reason: str) -> None:
    with pytest.raises(region.RegionError) as raised:
        snapshot(data)
    assert raised.value.reason == reason


def test_corrupt_counts_are_clamped() -> None:
    snap = snapshot(region_bytes(proc_num=5000, device_num=99))
    assert len(snap.devices) == 2  # only devices with a UUID; never past MAX_DEVICES
