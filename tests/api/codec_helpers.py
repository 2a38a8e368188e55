"""Shared values and assertions of the codec tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hami.api.errors import WireFormatError

V100 = "NVIDIA-Tesla V100-PCIE-32GB"
UUID_A = "GPU-00552014-5c87-89ac-b1a6-7b53aa24b0ec"
UUID_B = "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448"
UUID_P4 = "GPU-ebe7c3f7-303d-558d-435e-99a160631fe4"
UUID_8D = "GPU-8dcd427f-483b-b48f-d7e5-75fb19a52b76"


def expect_error(
    decode: Callable[[str], object], value: str, key: str, piece: str, why: str
) -> WireFormatError:
    """Decoding *value* fails with a message naming the key, the offending piece and why."""
    with pytest.raises(WireFormatError) as info:
        decode(value)
    err = info.value
    message = str(err)
    assert err.key == key, message
    assert piece in err.piece, message
    assert why in err.why, message
    assert message.startswith(f"{key}: ")
    assert piece in message
    assert why in message
    return err
