"""The one error raised for malformed wire values."""

from __future__ import annotations


class WireFormatError(ValueError):
    """A wire value (annotation, resource quantity) could not be decoded.

    The message names the key, the offending piece and why, e.g.
    ``hami.io/vgpu-devices-allocated: 'GPU-1,NVIDIA,abc,30': memory 'abc' is not an integer``.
    """

    def __init__(self, key: str, piece: str, why: str, *, vendor: str = "") -> None:
        self.key = key
        self.piece = piece
        self.why = why
        self.vendor = vendor  # set for a node registration: the vendor whose format it breaks
        prefix = f"{vendor} registration " if vendor else ""
        super().__init__(f"{prefix}{key}: {piece!r}: {why}")

    def for_vendor(self, vendor: str) -> WireFormatError:
        """The same error, naming the vendor whose registration it is."""
        return WireFormatError(self.key, self.piece, self.why, vendor=vendor)
