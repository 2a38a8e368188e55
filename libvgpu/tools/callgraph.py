#!/usr/bin/env python3
"""Fail when libvgpu's units call each other in a circle.

A unit is one src/*.c file. Unit A depends on unit B when A names a
`vgpu__*` function that B defines. The graph must be acyclic: each unit sits
above the ones it calls (docs/libvgpu.md lists the order).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DEF = re.compile(r"^[A-Za-z_][\w \t\*]*?\b(vgpu__\w+)\s*\(", re.M)
USE = re.compile(r"\b(vgpu__\w+)\s*\(")


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def graph(src: Path) -> dict[str, set[str]]:
    bodies = {p.stem: strip_comments(p.read_text()) for p in sorted(src.glob("*.c"))}
    owner = {name: unit for unit, text in bodies.items() for name in DEF.findall(text)}
    return {
        unit: {owner[n] for n in USE.findall(text) if n in owner and owner[n] != unit}
        for unit, text in bodies.items()
    }


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(edges[u]):
            if state.get(v) == 1:
                return [*stack[stack.index(v) :], v]
            if v not in state and (found := visit(v)):
                return found
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(edges):
        if u not in state and (found := visit(u)):
            return found
    return None


def main() -> int:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent.parent / "src")
    edges = graph(src)
    cycle = find_cycle(edges)
    if cycle:
        print("libvgpu call circle: " + " -> ".join(cycle), file=sys.stderr)
        return 1
    if "-v" in sys.argv:
        for u in sorted(edges):
            print(f"{u}: {' '.join(sorted(edges[u]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
