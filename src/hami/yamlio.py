"""Reading YAML with libyaml's C parser (``yaml.CSafeLoader``) when PyYAML was built with it.

The C parser reads a large file about 28 times faster than PyYAML's pure-Python one, and both
build the objects with the same ``SafeConstructor``. Where the two parsers differ, the result
is the pure-Python one (what ``yaml.safe_load`` gives):

* a text the C parser rejects is read again by ``SafeLoader``: the caller gets exactly the
  error it got before (message and marks with the source snippet);
* a text with a tab, a byte-order mark or a ``!`` goes to ``SafeLoader`` directly: there the
  parsers differ on texts both accept (a mid-stream BOM is content for PyYAML, the tag ``!``
  on an empty node is null for PyYAML and ``''`` for libyaml) or libyaml accepts a tab that
  PyYAML rejects.

What is left: a few texts PyYAML rejects and libyaml accepts (a block scalar header followed
directly by ``#``, as in ``|#``; ``?`` followed by a non-space inside ``[...]`` or ``{...}``)
now load. Without libyaml everything uses ``SafeLoader``.
"""

from __future__ import annotations

from typing import Any

import yaml

try:
    from yaml import CSafeLoader as FastLoader

    WITH_LIBYAML = True
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as FastLoader  # type: ignore[assignment]

    WITH_LIBYAML = False

__all__ = ["WITH_LIBYAML", "FastLoader", "load", "load_all"]

# Characters on which the two parsers are known to disagree about texts PyYAML accepts
# (or a tab PyYAML rejects): such texts go to the pure-Python parser.
_PURE_ONLY = ("\t", "\ufeff", "!")


def _fast(text: str) -> bool:
    return WITH_LIBYAML and not any(c in text for c in _PURE_ONLY)


def load(text: str) -> Any:
    """The first document of ``text``, as ``yaml.safe_load(text)`` gives it."""
    if _fast(text):
        try:
            return yaml.load(text, Loader=FastLoader)
        except (yaml.YAMLError, UnicodeError):
            pass  # the pure-Python parser gives the error (or the result) it always gave
    return yaml.load(text, Loader=yaml.SafeLoader)


def load_all(text: str) -> list[Any]:
    """Every document of ``text``, as ``list(yaml.safe_load_all(text))`` gives them."""
    if _fast(text):
        try:
            return list(yaml.load_all(text, Loader=FastLoader))
        except (yaml.YAMLError, UnicodeError):
            pass
    return list(yaml.load_all(text, Loader=yaml.SafeLoader))
