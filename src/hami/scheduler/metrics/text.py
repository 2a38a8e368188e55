"""Text-format 0.0.4 lines for the §6.2 families, byte for byte what prometheus_client's
``generate_latest`` writes, built from per-family templates."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.openmetrics.exposition import (
    UNDERSCORES,
    escape_label_name,
    escape_metric_name,
)
from prometheus_client.utils import floatToGoString

from hami.metrics.specs import (
    ZONE,
    Spec,
)


def _escape_value(value: str) -> str:
    """A label value as generate_latest escapes it (backslash, newline, double quote)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


@dataclass(frozen=True, slots=True)
class _Line:
    """One family's sample line up to its value: a ``%`` template over escaped label values."""

    slot: int  # the family's position in the exposition
    template: str  # name{label="%(key)s",...} (labels sorted by name, as generate_latest does)


def _line(slot: int, name: str, labels: Iterable[tuple[str, str]], zone: bool) -> _Line:
    """``labels``: (label name, key); the constant zone label joins them, all sorted by name."""
    pairs: list[tuple[str, str | None]] = [*labels, *((("zone", None),) if zone else ())]
    pairs.sort(key=lambda pair: pair[0])  # generate_latest sorts a sample's labels by name

    def part(label: str, key: str | None) -> str:
        value = _escape_value(ZONE).replace("%", "%%") if key is None else f"%({key})s"
        return f'{escape_label_name(label, UNDERSCORES).replace("%", "%%")}="{value}"'

    parts = [part(label, key) for label, key in pairs]
    head = escape_metric_name(name, UNDERSCORES).replace("%", "%%")
    labelstr = "{" + ",".join(parts) + "}" if parts else ""
    return _Line(slot, f"{head}{labelstr} ")


def _header(name: str, help_text: str) -> str:
    escaped = escape_metric_name(name, UNDERSCORES)
    doc = help_text.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {escaped} {doc}\n# TYPE {escaped} gauge\n"


class Layout:
    """The families of `Families` (same order, same legacy twins) as text-format pieces."""

    def __init__(self, specs: Iterable[Spec], legacy: bool = False) -> None:
        specs = tuple(specs)
        self.headers: list[str] = []
        self.new: dict[str, _Line] = {}
        self.old: dict[str, _Line] = {}
        for spec in specs:
            pairs = ((label, label) for label in spec.labels)
            self.new[spec.name] = _line(len(self.headers), spec.name, pairs, spec.zone)
            self.headers.append(_header(spec.name, spec.help))
        for spec in specs:
            if legacy and spec.legacy:
                line = _line(len(self.headers), spec.legacy, spec.legacy_labels, spec.zone)
                self.old[spec.name] = line
                self.headers.append(_header(spec.legacy, spec.help))
        self.encoded_headers = [header.encode("utf-8") for header in self.headers]
        self._numbers: dict[float, str] = {}

    def number(self, value: float) -> str:
        """``floatToGoString(value)``, remembered (sample values repeat across devices)."""
        text = self._numbers.get(value)
        if text is None:
            text = floatToGoString(value)  # type: ignore[no-untyped-call]
            if value and len(self._numbers) < 65536:  # 0 and -0.0 are equal but spelt apart
                self._numbers[value] = text
        return text


class SampleLines:
    """A `Sink` that writes sample lines per family slot (one node's, or the quotas')."""

    __slots__ = ("_escaped", "_labels", "_layout", "lines")

    def __init__(self, layout: Layout) -> None:
        self._layout = layout
        self.lines: list[list[str]] = [[] for _ in layout.headers]
        self._labels: Mapping[str, str] | None = None  # the last label dict, escaped once
        self._escaped: dict[str, str] = {}

    def add(
        self,
        spec: Spec,
        labels: Mapping[str, str],
        value: float,
        legacy_value: float | None = None,
    ) -> None:
        if labels is not self._labels:
            self._labels = labels
            self._escaped = {k: _escape_value(v) for k, v in labels.items()}
        escaped, number = self._escaped, self._layout.number
        line = self._layout.new[spec.name]
        self.lines[line.slot].append(f"{line.template % escaped}{number(value)}\n")
        old = self._layout.old.get(spec.name)
        if old is not None:
            value = value if legacy_value is None else legacy_value
            self.lines[old.slot].append(f"{old.template % escaped}{number(value)}\n")

    def chunks(self) -> tuple[tuple[int, bytes], ...]:
        """(slot, UTF-8 text) of every family that got lines."""
        return tuple(
            (slot, "".join(lines).encode("utf-8")) for slot, lines in enumerate(self.lines) if lines
        )
