"""Pod device lists (§2.5), the per-vendor allocation keys and Unix time stamps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from hami.api import keys
from hami.api.annotations._base import (
    int_field,
)
from hami.api.errors import WireFormatError
from hami.api.types import (
    ContainerDevice,
    ContainerDevices,
    PodDevices,
)

# ------------------------------------------------------------------------------------------------
# pod device lists (§2.5)


def decode_pod_devices(value: str, key: str = keys.NVIDIA_ALLOCATED) -> PodDevices:
    """Decode ``…-devices-to-allocate`` / ``…-devices-allocated`` into one entry per container.

    The final ``;`` terminates the last container; it does not open a new one. Surplus empty
    entries that HAMi's device plugin appends on every rewrite (§9.15) decode as empty containers.
    """
    if value == "":
        return ()
    entries = value.split(";")
    if entries[-1] == "":
        entries.pop()
    return tuple(_decode_container(key, entry) for entry in entries)


def _decode_container(key: str, entry: str) -> ContainerDevices:
    devices = []
    for piece in entry.split(":"):
        if "," not in piece:
            # HAMi parses only the pieces that contain a comma; the rest are skipped (§2.5).
            continue
        fields = piece.split(",")
        if len(fields) < 4:
            raise WireFormatError(
                key, piece, f"a device needs 4 comma-separated fields, got {len(fields)}"
            )
        if not fields[0]:
            raise WireFormatError(key, piece, "device UUID is empty")
        devices.append(
            ContainerDevice(
                uuid=fields[0],
                type=fields[1],
                usedmem=int_field(key, piece, "memory", fields[2]),
                usedcores=int_field(key, piece, "cores", fields[3]),
            )
        )
    return tuple(devices)


def encode_pod_devices(pod_devices: Sequence[Sequence[ContainerDevice]]) -> str:
    """One ``;``-terminated entry per container; each device ``UUID,TYPE,mem,cores:``."""
    return "".join(
        "".join(f"{d.uuid},{d.type},{d.usedmem},{d.usedcores}:" for d in container) + ";"
        for container in pod_devices
    )


# ------------------------------------------------------------------------------------------------
# generic per-vendor keys


def to_allocate_key(vendor_prefix: str) -> str:
    """``hami.io/<prefix>-devices-to-allocate`` (NVIDIA's prefix is ``vgpu``)."""
    return f"hami.io/{vendor_prefix}-devices-to-allocate"


def allocated_key(vendor_prefix: str) -> str:
    return f"hami.io/{vendor_prefix}-devices-allocated"


def unix_seconds(moment: datetime) -> str:
    """A decimal Unix-seconds annotation value (`hami.io/vgpu-time`, `hami.io/bind-time`)."""
    return str(int(moment.timestamp()))


def unix_nanos(moment: datetime) -> str:
    """A decimal Unix-nanoseconds value (`mthreads.com/predicate-time` and friends)."""
    return str(int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000)
