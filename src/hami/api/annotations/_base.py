"""Shared helpers of the codec: Go-style JSON, bounded integers, booleans, comma lists."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import cast

from hami.api.errors import WireFormatError

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

# ------------------------------------------------------------------------------------------------
# small shared helpers


def go_json(value: object) -> str:
    """Serialise like Go's ``json.Marshal``: compact, UTF-8, with <, >, & and U+2028/9 escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _go_map(value: object) -> object:
    """Go's ``json.Marshal`` writes map keys sorted (nested maps included)."""
    if isinstance(value, Mapping):
        items = cast(Mapping[object, object], value).items()
        return {str(k): _go_map(v) for k, v in sorted(items, key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_go_map(v) for v in cast(Sequence[object], value)]
    return value


def load_json(key: str, value: str) -> object:
    try:
        return cast(object, json.loads(value))
    except json.JSONDecodeError as exc:
        raise WireFormatError(key, clip(value), f"not valid JSON ({exc.msg} at {exc.pos})") from exc
    except (ValueError, RecursionError) as exc:  # huge integer literals, absurd nesting
        raise WireFormatError(key, clip(value), f"not valid JSON ({exc})") from None


def clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


DECIMAL_INT = re.compile(r"[+-]?[0-9]+")


def int_field(key: str, piece: str, name: str, raw: object, *, bits32: bool = True) -> int:
    """An integer from JSON or text; rejects bools, fractions and (for int32 fields) overflow."""
    if isinstance(raw, bool):
        raise WireFormatError(key, piece, f"{name} {raw!r} is not an integer")
    if isinstance(raw, int):
        number = raw
    elif isinstance(raw, float) and raw.is_integer():
        number = int(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        # Go's strconv.ParseInt(s, 10, …): ASCII digits only (Python's int() would also take
        # "1_000" and non-ASCII digits).
        if not DECIMAL_INT.fullmatch(text):
            raise WireFormatError(key, piece, f"{name} {raw!r} is not an integer")
        try:
            number = int(text, 10)
        except ValueError:
            raise WireFormatError(key, piece, f"{name} {raw!r} is not an integer") from None
    else:
        raise WireFormatError(key, piece, f"{name} {raw!r} is not an integer")
    if bits32 and not INT32_MIN <= number <= INT32_MAX:
        raise WireFormatError(key, piece, f"{name} {number} does not fit in int32")
    return number


_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_go_bool(key: str, value: str) -> bool:
    """Go's ``strconv.ParseBool``."""
    text = value.strip()
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    raise WireFormatError(key, value, "not a boolean (true/false/1/0/t/f)")


def decode_comma_list(value: str | None) -> tuple[str, ...]:
    """A comma list such as `nvidia.com/use-gputype`: tokens trimmed, empty tokens dropped."""
    if not value:
        return ()
    return tuple(token.strip() for token in value.split(",") if token.strip())


def encode_comma_list(items: Iterable[str]) -> str:
    return ",".join(items)
