"""Region files: HAMi's version selection, v0/v1 layouts, sums over live slots, the C ABI."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hami.monitor.region import (
    V0,
    V1,
    RegionError,
    RegionFile,
    read_snapshot,
    select_layout,
)

from .regions import Slot, region_bytes, write_region

ROOT = Path(__file__).resolve().parents[2]
UUID = "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448"


def test_v1_sums_live_slots_and_skips_dead_ones() -> None:
    slots = [
        Slot(1, {0: (10, 0, 100, 0, 110, 30)}),
        Slot(0, {0: (999, 0, 999, 0, 999, 99)}),  # dead: status 0
        Slot(2, {0: (5, 1, 50, 0, 56, 20), 1: (0, 0, 7, 0, 7, 1)}),
    ]
    data = region_bytes([UUID, "GPU-b"], [1 << 30, 2 << 30], slots, last_kernel=1700000000)
    snap = read_snapshot(select_layout(Path("x"), data), data)
    assert snap.version == "v1" and snap.procs == 2
    first = snap.devices[0]
    assert first.uuid == UUID[:40] and first.limit == 1 << 30
    assert (first.context, first.module, first.buffer, first.total, first.sm_util) == (
        15,
        1,
        150,
        166,
        50,
    )
    assert snap.devices[1].total == 7
    assert (snap.last_kernel_time, snap.priority, snap.recent_kernel) == (1700000000, 1, 2)


def test_v0_layout_is_selected_by_size() -> None:
    data = region_bytes([UUID], [4096], [Slot(1, {0: (1, 2, 3, 4, 10, 5)})], layout=V0, extra=0)
    layout = select_layout(Path("x"), data)
    assert layout is V0
    snap = read_snapshot(layout, data)
    assert snap.devices[0].total == 10 and snap.devices[0].sm_util == 5
    assert snap.last_kernel_time == 0


def test_uuid_fields_that_are_empty_or_not_utf8_are_skipped() -> None:
    data = region_bytes(["", UUID], [1, 2])
    data[V1.uuids + 2 * 96] = 0xFF  # third device: invalid UTF-8
    struct.pack_into("<Q", data, V1.num, 3)
    snap = read_snapshot(V1, data)
    assert [(d.index, d.uuid) for d in snap.devices] == [(1, UUID[:40])]


def test_proc_num_and_device_num_are_clamped() -> None:
    data = region_bytes([UUID], [1], [Slot(1, {0: (0, 0, 0, 0, 3, 0)})])
    struct.pack_into("<Q", data, V1.num, 1 << 40)
    struct.pack_into("<i", data, V1.tail, 1 << 20)
    snap = read_snapshot(V1, data)
    assert snap.procs == 1 and snap.devices[0].total == 3
    struct.pack_into("<i", data, V1.tail, -5)
    assert read_snapshot(V1, data).procs == 0


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00" * 8, "too_small"),
        (b"\x00" * 4096, "bad_magic"),
        (struct.pack("<iI", 19920718, 7) + b"\0" * (V1.size - 8), "unknown_version"),
        (struct.pack("<iI", 19920718, 1) + b"\0" * 100, "unknown_version"),
    ],
)
def test_foreign_files_are_rejected_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(RegionError) as caught:
        select_layout(Path("f"), data)
    assert caught.value.reason == reason


@given(st.binary(min_size=0, max_size=4096))
def test_arbitrary_small_files_never_crash_the_selection(data: bytes) -> None:
    with pytest.raises(RegionError):
        select_layout(Path("f"), data)


def test_region_file_maps_and_writes_feedback_fields(tmp_path: Path) -> None:
    path = write_region(tmp_path, region_bytes([UUID], [1], recent_kernel=3, switch=1))
    region = RegionFile(path)
    region.set_recent_kernel(-1)
    region.set_utilization_switch(0)
    snap = region.snapshot()
    region.close()
    assert (snap.recent_kernel, snap.utilization_switch) == (-1, 0)
    data = path.read_bytes()
    assert struct.unpack_from("<ii", data, V1.tail + 4) == (0, -1)


def test_region_file_on_a_read_only_file_reads_and_skips_writes(tmp_path: Path) -> None:
    path = write_region(tmp_path, region_bytes([UUID], [1], recent_kernel=3))
    path.chmod(0o444)
    region = RegionFile(path)
    region.set_recent_kernel(0)
    assert region.snapshot().recent_kernel == 3 or region.writable  # root may still write
    region.close()


C_PROBE = r"""
#include <stdio.h>
#include <stddef.h>
#include "libvgpu.h"
int main(void) {
    printf("%zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu\n",
        sizeof(lvgpu_region_t), offsetof(lvgpu_region_t, device_num),
        offsetof(lvgpu_region_t, uuids), offsetof(lvgpu_region_t, limit),
        offsetof(lvgpu_region_t, sm_limit), offsetof(lvgpu_region_t, procs),
        sizeof(lvgpu_slot_t), offsetof(lvgpu_slot_t, device_util),
        offsetof(lvgpu_slot_t, status), offsetof(lvgpu_region_t, proc_num),
        offsetof(lvgpu_region_t, last_kernel_time));
    return 0;
}
"""


def test_v1_layout_matches_the_libvgpu_header(tmp_path: Path) -> None:
    source = tmp_path / "probe.c"
    source.write_text(C_PROBE)
    binary = tmp_path / "probe"
    include = ROOT / "libvgpu" / "include"
    subprocess.run(["cc", "-std=c11", f"-I{include}", str(source), "-o", str(binary)], check=True)
    values = [
        int(v)
        for v in subprocess.run([binary], capture_output=True, text=True, check=True).stdout.split()
    ]
    expected = [
        V1.size,
        V1.num,
        V1.uuids,
        V1.limit,
        V1.sm_limit,
        V1.procs,
        V1.slot,
        V1.util,
        V1.status,
        V1.tail,
        V1.last_kernel,
    ]
    assert values == expected


def test_region_file_truncated_after_open_reads_short_and_never_grows(tmp_path: Path) -> None:
    slot = Slot(1, {0: (0, 0, 5, 0, 5, 0)})
    path = write_region(tmp_path, region_bytes([UUID], [1], [slot, slot]))
    region = RegionFile(path)
    try:
        assert region.snapshot().devices[0].total == 10
        os.truncate(path, V1.procs + V1.slot)  # the second slot and the tail are gone
        with pytest.raises(RegionError) as caught:
            region.snapshot()
        assert caught.value.reason == "truncated"
        region.set_recent_kernel(-1)
        region.set_utilization_switch(0)
        assert path.stat().st_size == V1.procs + V1.slot  # no write past the end
    finally:
        region.close()
