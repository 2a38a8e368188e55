"""Kubernetes resource quantities as HAMi reads them (container limits/requests, wire-format.md §1)."""

from __future__ import annotations

from fractions import Fraction

import pytest
import yaml

from hami.api import keys
from hami.api.errors import WireFormatError
from hami.api.quantity import parse_int_quantity, parse_quantity


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3000", Fraction(3000)),
        ("2Gi", Fraction(2 * 2**30)),
        ("1Ki", Fraction(1024)),
        ("1Mi", Fraction(2**20)),
        ("1Ti", Fraction(2**40)),
        ("1k", Fraction(1000)),
        ("1M", Fraction(10**6)),
        ("1G", Fraction(10**9)),
        ("1E", Fraction(10**18)),
        ("500m", Fraction(1, 2)),
        ("250u", Fraction(1, 4000)),
        ("3n", Fraction(3, 10**9)),
        ("1e3", Fraction(1000)),
        ("1E3", Fraction(1000)),
        ("12e-1", Fraction(6, 5)),
        ("5e+2", Fraction(500)),
        ("1.5", Fraction(3, 2)),
        ("1.5Gi", Fraction(3 * 2**29)),
        (".5", Fraction(1, 2)),
        ("1.", Fraction(1)),
        ("-5", Fraction(-5)),
        ("+5", Fraction(5)),
        ("0", Fraction(0)),
        (" 30 ", Fraction(30)),
    ],
)
def test_quantity_strings(text: str, expected: Fraction) -> None:
    assert parse_quantity(text) == expected


def test_quantity_from_yaml_numbers() -> None:
    limits = yaml.safe_load(
        "nvidia.com/gpumem: 3000\nnvidia.com/gpucores: 30\nnvidia.com/gpu: 1.5\n"
    )
    assert parse_quantity(limits[keys.NVIDIA_GPUMEM]) == 3000
    assert parse_int_quantity(limits[keys.NVIDIA_GPUCORES]) == 30
    assert isinstance(parse_int_quantity(limits[keys.NVIDIA_GPUMEM]), int)
    assert parse_quantity(limits[keys.NVIDIA_GPU]) == Fraction(3, 2)
    assert parse_quantity(1e3) == 1000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3000", 3000),
        ("2Gi", 2 * 2**30),
        ("1k", 1000),
        ("1e3", 1000),
        ("2000m", 2),
        ("-5", -5),
        (7, 7),
    ],
)
def test_int_quantity(value: object, expected: int) -> None:
    result = parse_int_quantity(value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    ("value", "piece", "why"),
    [
        ("", "", "not a Kubernetes quantity"),
        ("abc", "abc", "not a Kubernetes quantity"),
        ("Gi", "Gi", "not a Kubernetes quantity"),
        ("--5", "--5", "not a Kubernetes quantity"),
        ("1kb", "1kb", "unknown quantity suffix 'kb'"),
        ("1KiB", "1KiB", "unknown quantity suffix 'KiB'"),
        ("1ki", "1ki", "unknown quantity suffix 'ki'"),
        ("5 Gi", "5 Gi", "unknown quantity suffix ' Gi'"),
        ("1e", "1e", "unknown quantity suffix 'e'"),
        ("1e1.5", "1e1.5", "unknown quantity suffix"),
        ("1e999999999", "1e999999999", "exponent 999999999 is out of range"),
        ("1" * 5000, "1111", "number is too long"),
        (True, "True", "not a quantity"),
        (None, "None", "not a quantity"),
        ([1], "[1]", "not a quantity"),
        (float("nan"), "nan", "not a finite quantity"),
        (float("inf"), "inf", "not a finite quantity"),
    ],
)
def test_quantity_malformed(value: object, piece: str, why: str) -> None:
    with pytest.raises(WireFormatError) as info:
        parse_quantity(value, what=keys.NVIDIA_GPUMEM)
    err = info.value
    assert err.key == keys.NVIDIA_GPUMEM
    assert piece in err.piece
    assert why in err.why
    assert str(err).startswith("nvidia.com/gpumem: ")


@pytest.mark.parametrize("value", ["500m", "1.5", 1.5, "1e-1"])
def test_int_quantity_rejects_fractions(value: object) -> None:
    with pytest.raises(WireFormatError, match="must be a whole number") as info:
        parse_int_quantity(value, what=keys.NVIDIA_GPUCORES)
    assert info.value.key == keys.NVIDIA_GPUCORES


def test_default_what_is_quantity() -> None:
    with pytest.raises(WireFormatError) as info:
        parse_quantity("x")
    assert info.value.key == "quantity"
