"""Trend charts as hand-written inline SVG: a time axis with clock ticks, a 0–100 % axis, one
line per `history.SERIES` entry, a legend, and the range selector's links. Server-rendered, so
the page's partial refresh redraws it and it works offline with no script (docs/decisions.md)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape
from urllib.parse import urlencode

from hami.webui.history import RANGES, SERIES, Sample

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 10, 24


def _clock(t: float) -> str:
    return time.strftime("%H:%M", time.localtime(t))


def _time_ticks(t0: float, t1: float) -> list[float]:
    span = t1 - t0
    step = next((s for s in (60, 300, 600, 900, 1800, 3600, 7200, 14400) if span / s <= 6), 21600)
    first = (int(t0) // step + 1) * step
    return [float(t) for t in range(first, int(t1) + 1, step)]


def range_links(current: str, params: Sequence[tuple[str, str]] = ()) -> str:
    """The range selector: one link per range, the current one marked."""
    links = []
    for name in RANGES:
        query = urlencode([*[(k, v) for k, v in params if k != "range"], ("range", name)])
        mark = ' aria-current="true" class="on"' if name == current else ""
        links.append(f'<a href="?{escape(query)}" data-range="{name}"{mark}>{name}</a>')
    return f'<span class="ranges">range {" ".join(links)}</span>'


def chart(samples: Sequence[Sample], range_name: str, title: str, now: float) -> str:
    """The samples of the last ``range_name`` as lines over real axes, with a legend."""
    span = RANGES.get(range_name, 3600)
    t1 = now
    t0 = t1 - span
    shown = [s for s in samples if s.t >= t0]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - t0) / span * plot_w

    def y(v: float) -> float:
        return TOP + plot_h - min(max(v, 0.0), 100.0) / 100.0 * plot_h

    grid = []
    for pct in (0, 25, 50, 75, 100):
        grid.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(pct):.1f}" y2="{y(pct):.1f}" class="grid"/>'
            f'<text x="{LEFT - 4}" y="{y(pct) + 4:.1f}" text-anchor="end">{pct}%</text>'
        )
    for t in _time_ticks(t0, t1):
        grid.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{TOP}" y2="{TOP + plot_h}" class="grid"/>'
            f'<text x="{x(t):.1f}" y="{HEIGHT - 6}" text-anchor="middle">{_clock(t)}</text>'
        )
    lines, legend = [], []
    for series in SERIES:
        points = [(s.t, s.values()[series.key]) for s in shown]
        known = [(t, v) for t, v in points if v is not None]
        last = f"{known[-1][1]:.0f}%" if known else "no data"
        legend.append(
            f'<li data-series="{series.key}"><span class="sw" style="background:{series.colour}">'
            f"</span>{escape(series.label)}: <b>{last}</b></li>"
        )
        if len(known) >= 2:
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in known)
            lines.append(
                f'<polyline points="{path}" fill="none" stroke="{series.colour}" '
                f'stroke-width="1.6" data-series="{series.key}"/>'
            )
    empty = (
        ""
        if len(shown) >= 2
        else f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" '
        'class="muted">collecting history…</text>'
    )
    return (
        f'<figure class="chart" data-samples="{len(shown)}" data-range="{range_name}">'
        f"<figcaption>{escape(title)}</figcaption>"
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{escape(title)} over the last {range_name}">'
        f'<g class="axes">{"".join(grid)}</g>{"".join(lines)}{empty}</svg>'
        f'<ul class="chart-legend">{"".join(legend)}</ul></figure>'
    )
