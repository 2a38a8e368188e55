"""What every benchmark's JSON report shares: the machine's CPU model and writing the report
(to ``--out`` when given, and to stdout). Imported as ``import report`` by the scripts here
(run as a script, a benchmark's folder is on sys.path)."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write(document: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(document, indent=2)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    sys.stdout.write(text + "\n")
