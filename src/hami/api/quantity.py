"""Kubernetes resource quantities (``"3000"``, ``"2Gi"``, ``"1k"``, ``"500m"``, ``"1e3"``)."""

from __future__ import annotations

import math
import re
from fractions import Fraction

from hami.api.errors import WireFormatError

_PATTERN = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_MAX_EXPONENT = 1000  # guards against "1e999999999" taking forever; no real quantity comes close
_EXPONENT = re.compile(r"^[eE]([+-]?[0-9]+)$")


def parse_quantity(text: object, what: str = "quantity") -> Fraction:
    """Parse a Kubernetes quantity (a YAML int is accepted too) into an exact fraction."""
    if isinstance(text, bool):
        raise WireFormatError(what, str(text), "not a quantity")
    if isinstance(text, int):
        return Fraction(text)
    if isinstance(text, float):
        if not math.isfinite(text):
            raise WireFormatError(what, str(text), "not a finite quantity")
        return Fraction(str(text))
    if not isinstance(text, str):
        raise WireFormatError(what, str(text), "not a quantity")
    match = _PATTERN.match(text.strip())
    if not match:
        raise WireFormatError(what, text, "not a Kubernetes quantity")
    try:
        number = Fraction(match.group(1))
    except ValueError:  # e.g. more digits than Python converts (sys.get_int_max_str_digits)
        raise WireFormatError(what, text, "number is too long") from None
    suffix = match.group(2)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    exponent = _EXPONENT.match(suffix)
    if exponent:
        digits = exponent.group(1).lstrip("+-").lstrip("0")
        if len(digits) > len(str(_MAX_EXPONENT)) or int(digits or "0") > _MAX_EXPONENT:
            raise WireFormatError(what, text, f"exponent {exponent.group(1)} is out of range")
        power = int(exponent.group(1))
        return number * Fraction(10) ** power
    raise WireFormatError(what, text, f"unknown quantity suffix {suffix!r}")


def parse_int_quantity(text: object, what: str = "quantity") -> int:
    """A quantity that must be a whole number (HAMi reads these with ``AsInt64``)."""
    value = parse_quantity(text, what)
    if value.denominator != 1:
        raise WireFormatError(what, str(text), "must be a whole number")
    return int(value)
