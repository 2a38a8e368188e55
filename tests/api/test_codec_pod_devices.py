"""Codec golden, tolerance and malformed-input tests — pod device lists (wire-format.md §2.5, §10)."""

from __future__ import annotations

import pytest

from hami.api import keys
from hami.api.annotations import (
    allocated_key,
    decode_pod_devices,
    encode_pod_devices,
    to_allocate_key,
)
from hami.api.types import (
    ContainerDevice,
)
from tests.api.codec_helpers import UUID_8D, UUID_B, UUID_P4, expect_error
from tests.builders import container_device as dev

# ------------------------------------------------------------------------------------------------
# §2.5 pod device lists

ALLOC = keys.NVIDIA_ALLOCATED


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"{UUID_B},NVIDIA,3000,30:;", ((dev(UUID_B, 3000, 30),),)),
        (
            f"{UUID_B},NVIDIA,3000,0:;{UUID_B},NVIDIA,5000,0:;",
            ((dev(UUID_B, 3000, 0),), (dev(UUID_B, 5000, 0),)),
        ),
        (
            f"{UUID_8D},NVIDIA,500,3:{UUID_P4},NVIDIA,500,3:;",
            ((dev(UUID_8D, 500, 3), dev(UUID_P4, 500, 3)),),
        ),
        (f";{UUID_B},NVIDIA,1000,30:;", ((), (dev(UUID_B, 1000, 30),))),
        # AMD / Metax-SGPU put the registered product type in the TYPE field.
        (
            "GPU-amd,AMD Instinct MI300X,8192,20:;",
            ((dev("GPU-amd", 8192, 20, "AMD Instinct MI300X"),),),
        ),
    ],
)
def test_pod_devices_golden(value: str, expected: tuple[tuple[ContainerDevice, ...], ...]) -> None:
    assert decode_pod_devices(value) == expected
    assert encode_pod_devices(expected) == value


def test_worked_example_pod_devices() -> None:
    value = "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448,NVIDIA,3000,30:;"
    assert decode_pod_devices(value, key=keys.NVIDIA_TO_ALLOCATE) == ((dev(UUID_B, 3000, 30),),)


def test_pod_devices_empty_value_is_no_containers() -> None:
    assert decode_pod_devices("") == ()
    assert encode_pod_devices([]) == ""


def test_pod_devices_trailing_semicolon_does_not_add_a_container() -> None:
    assert len(decode_pod_devices("A,NVIDIA,1,2:;")) == 1
    assert len(decode_pod_devices(";")) == 1
    assert decode_pod_devices(";") == ((),)
    assert encode_pod_devices([()]) == ";"
    # Without the final ';' the last entry still counts once.
    assert decode_pod_devices("A,NVIDIA,1,2:") == ((dev("A", 1, 2),),)


@pytest.mark.parametrize(
    ("value", "containers"),
    [(";;", 2), (";B:;;", 3), ("A:;B:;", 2), (";;;;", 4), (";;;", 3)],
)
def test_device_plugin_growing_strings_decode_to_empty_entries(value: str, containers: int) -> None:
    # HAMi parses only the pieces containing a comma; `B` alone is skipped (§2.5, §9.15).
    assert decode_pod_devices(value) == ((),) * containers


def test_device_plugin_rewrite_sequence() -> None:
    a, b = dev("GPU-a", 1000, 10), dev("GPU-b", 2000, 20)
    first = "GPU-a,NVIDIA,1000,10:;GPU-b,NVIDIA,2000,20:;"
    assert decode_pod_devices(first) == ((a,), (b,))
    second = ";GPU-b,NVIDIA,2000,20:;;"
    assert decode_pod_devices(second) == ((), (b,), ())
    assert encode_pod_devices(decode_pod_devices(second)) == second
    assert decode_pod_devices(";;;;") == ((), (), (), ())


def test_pod_devices_extra_fields_are_ignored_and_empty_pieces_skipped() -> None:
    assert decode_pod_devices("GPU-1,NVIDIA,1000,30,extra,more:;") == ((dev("GPU-1", 1000, 30),),)
    assert decode_pod_devices("GPU-1,NVIDIA,1,2::GPU-2,NVIDIA,3,4:;") == (
        (dev("GPU-1", 1, 2), dev("GPU-2", 3, 4)),
    )


def test_pod_devices_int32_bounds() -> None:
    value = "GPU-1,NVIDIA,2147483647,-2147483648:;"
    assert decode_pod_devices(value) == ((dev("GPU-1", 2**31 - 1, -(2**31)),),)
    assert encode_pod_devices(decode_pod_devices(value)) == value


@pytest.mark.parametrize(
    ("value", "piece", "why"),
    [
        ("uuid,type,100:;", "uuid,type,100", "a device needs 4 comma-separated fields, got 3"),
        ("uuid,type:;", "uuid,type", "got 2"),
        ("GPU-1,NVIDIA,abc,30:;", "GPU-1,NVIDIA,abc,30", "memory 'abc' is not an integer"),
        ("GPU-1,NVIDIA,1000,3x:;", "GPU-1,NVIDIA,1000,3x", "cores '3x' is not an integer"),
        ("GPU-1,NVIDIA,,30:;", "GPU-1,NVIDIA,,30", "memory '' is not an integer"),
        ("GPU-1,NVIDIA,1.5,30:;", "GPU-1,NVIDIA,1.5,30", "memory '1.5' is not an integer"),
        ("GPU-1,NVIDIA,1_000,30:;", "GPU-1,NVIDIA,1_000,30", "memory '1_000' is not an integer"),
        ("GPU-1,NVIDIA,\u0661,30:;", "GPU-1,NVIDIA,\u0661,30", "is not an integer"),
        (
            "GPU-1,NVIDIA,2147483648,30:;",
            "GPU-1,NVIDIA,2147483648,30",
            "memory 2147483648 does not fit in int32",
        ),
        (
            "GPU-1,NVIDIA,1,-2147483649:;",
            "GPU-1,NVIDIA,1,-2147483649",
            "cores -2147483649 does not fit in int32",
        ),
        # A bad device in a later container is still found.
        ("GPU-1,NVIDIA,1,2:;;GPU-2,NVIDIA,x,2:;", "GPU-2,NVIDIA,x,2", "memory 'x'"),
    ],
)
def test_pod_devices_malformed(value: str, piece: str, why: str) -> None:
    expect_error(decode_pod_devices, value, ALLOC, piece, why)


def test_pod_devices_error_names_the_to_allocate_key() -> None:
    expect_error(
        lambda v: decode_pod_devices(v, key=keys.NVIDIA_TO_ALLOCATE),
        "uuid,type,100:;",
        "hami.io/vgpu-devices-to-allocate",
        "uuid,type,100",
        "fields",
    )


def test_vendor_device_list_keys() -> None:
    assert to_allocate_key("vgpu") == keys.NVIDIA_TO_ALLOCATE
    assert allocated_key("vgpu") == keys.NVIDIA_ALLOCATED
    assert to_allocate_key("dcu") == "hami.io/dcu-devices-to-allocate"
    assert allocated_key("Biren") == "hami.io/Biren-devices-allocated"
