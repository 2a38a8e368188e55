"""The one error raised for malformed wire values."""

from __future__ import annotations


class WireFormatError(ValueError):
    """A wire value (annotation, resource quantity) could not be decoded.

    The message names the key, the offending piece and why, e.g.
    ``hami.io/vgpu-devices-allocated: 'GPU-1,NVIDIA,abc,30': memory 'abc' is not an integer``.
    """

    def __init__(self, key: str, piece: str, why: str) -> None:
        self.key = key
        self.piece = piece
        self.why = why
        super().__init__(f"{key}: {piece!r}: {why}")
