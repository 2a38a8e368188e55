"""Writing region files for tests (the layouts of `hami.monitor.region`)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from hami.monitor.region import MAGIC, UUID_FIELD, V0, V1, Layout


@dataclass
class Slot:
    status: int = 1
    # per device: (context, module, data, offset, total, sm_util)
    used: dict[int, tuple[int, int, int, int, int, int]] = field(default_factory=dict)


def region_bytes(
    uuids: list[str],
    limits: list[int],
    slots: list[Slot] = [],  # noqa: B006 - read only
    *,
    layout: Layout = V1,
    last_kernel: int = 0,
    priority: int = 1,
    recent_kernel: int = 2,
    switch: int = 1,
    extra: int = 1,
) -> bytearray:
    data = bytearray(layout.size + extra)
    struct.pack_into("<i", data, 0, MAGIC)
    if layout is V1:
        struct.pack_into("<II", data, 4, 1, 2)
    struct.pack_into("<Q", data, layout.num, len(uuids))
    for i, uuid in enumerate(uuids):
        raw = uuid.encode()
        data[layout.uuids + i * UUID_FIELD : layout.uuids + i * UUID_FIELD + len(raw)] = raw
        struct.pack_into("<Q", data, layout.limit + 8 * i, limits[i])
    for n, slot in enumerate(slots):
        base = layout.procs + n * layout.slot
        struct.pack_into("<ii", data, base, 100 + n, 0)
        struct.pack_into("<i", data, base + layout.status, slot.status)
        for dev, (ctx, mod, buf, off, total, sm) in slot.used.items():
            struct.pack_into(
                "<5Q", data, base + 8 + dev * layout.mem_stride, ctx, mod, buf, off, total
            )
            struct.pack_into("<Q", data, base + layout.util + dev * layout.util_stride + 16, sm)
    struct.pack_into("<4i", data, layout.tail, len(slots), switch, recent_kernel, priority)
    if layout.last_kernel is not None:
        struct.pack_into("<q", data, layout.last_kernel, last_kernel)
    return data


def write_region(directory: Path, data: bytes | bytearray, name: str = "abc.cache") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(bytes(data))
    return path


__all__ = ["V0", "V1", "Slot", "region_bytes", "write_region"]
