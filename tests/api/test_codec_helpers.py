"""Codec golden, tolerance and malformed-input tests — the codec's small helpers: comma lists, Go booleans, Unix seconds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hami.api import keys
from hami.api.annotations import (
    decode_comma_list,
    encode_comma_list,
    parse_go_bool,
    unix_seconds,
)
from tests.api.codec_helpers import expect_error

# ------------------------------------------------------------------------------------------------
# small helpers: comma lists, Go bools, unix seconds


def test_comma_lists() -> None:
    cordon = "GPU-03f69c50-207a-2038-9b45-23cac89cb67d, GPU-b ,,"
    assert decode_comma_list(cordon) == ("GPU-03f69c50-207a-2038-9b45-23cac89cb67d", "GPU-b")
    assert decode_comma_list("A100,V100") == ("A100", "V100")
    assert decode_comma_list("  ") == ()
    assert decode_comma_list(None) == ()
    assert encode_comma_list(["A100", "V100"]) == "A100,V100"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[(text, True) for text in ("true", "1", "t", "TRUE", "True", "T")],
        *[(text, False) for text in ("false", "0", "f", "FALSE", "False", "F")],
    ],
)
def test_go_bool(value: str, expected: bool) -> None:
    assert parse_go_bool(keys.NUMA_BIND, value) is expected


@pytest.mark.parametrize("value", ["yes", "tRUE", "", "2"])
def test_go_bool_malformed(value: str) -> None:
    expect_error(
        lambda v: parse_go_bool(keys.NUMA_BIND, v), value, keys.NUMA_BIND, value, "not a boolean"
    )


def test_unix_seconds() -> None:
    assert unix_seconds(datetime(2025, 8, 21, 6, 20, 39, tzinfo=UTC)) == "1755757239"
