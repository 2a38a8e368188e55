"""Only `hami.api` splits, joins or JSON-decodes annotation values; `api` and `core` are pure.

Escape hatch for a line that is not about annotation values: ``# wire-ok: <reason>`` on that line.
"""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "hami"
API = SRC / "api"
CORE = SRC / "core"

# .split(";"), .split(':'), .rsplit(";", 1), .split(sep=":") …
_SPLIT = re.compile(r"""\.r?split\(\s*(?:sep\s*=\s*)?(['"])[;:]\1""")
# json.loads( / json.load(
_JSON = re.compile(r"\bjson\.loads?\(")
# Reading a file is not reading an annotation: json.loads(path.read_text()) and friends.
_FROM_FILE = re.compile(
    r"\bjson\.loads?\(\s*[\w.]*\.(?:read_text|read_bytes|read)\([^()]*\)|\bjson\.load\("
)
_ESCAPE = re.compile(r"#\s*wire-ok:\s*\S")


def _python_files(root: Path) -> list[Path]:
    return sorted(
        path
        for path in root.rglob("*.py")
        if "proto" not in path.relative_to(root).parts[:-1]
        and not path.name.endswith("_pb2.py")
        and not path.name.endswith("_pb2_grpc.py")
    )


def _offenders(files: list[Path], patterns: list[re.Pattern[str]]) -> list[str]:
    found = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            code = line.split("#", 1)[0] if not _ESCAPE.search(line) else ""
            if any(p.search(code) for p in patterns):
                found.append(f"{path.relative_to(SRC.parent.parent)}:{number}: {line.strip()}")
    return found


def test_scan_covers_the_package() -> None:
    files = _python_files(SRC)
    assert SRC / "api" / "annotations" / "pods.py" in files
    assert len(files) > 5


def test_no_annotation_splitting_outside_the_codec() -> None:
    files = [p for p in _python_files(SRC) if API not in p.parents]
    found = []
    for entry in _offenders(files, [_SPLIT, _JSON]):
        if _SPLIT.search(entry) or not _FROM_FILE.search(entry):
            found.append(entry)
    assert not found, (
        "annotation values are decoded only by hami.api.annotations "
        "(or mark the line '# wire-ok: <reason>'):\n" + "\n".join(found)
    )


def test_detector_catches_the_forms_it_should() -> None:
    bad = [
        'parts = value.split(";")',
        "parts = value.split(':')",
        "a, b = v.rsplit(':', 1)",
        'x = s.split( ";" )',
        "data = json.loads(annotations[key])",
    ]
    good = [
        'parts = value.split(",")',
        "name, _, rest = text.partition('=')",
        'x = s.split(";")  # wire-ok: parses a kubelet flag, not an annotation',
        "doc = json.loads(path.read_text())",
        'doc = json.loads(path.read_text(encoding="utf-8"))',
    ]
    for line in bad:
        assert any(p.search(line) for p in (_SPLIT, _JSON)), line
    for line in good:
        flagged = not _ESCAPE.search(line) and (
            _SPLIT.search(line) or (_JSON.search(line) and not _FROM_FILE.search(line))
        )
        assert not flagged, line


def test_api_and_core_read_no_environment_and_no_clock() -> None:
    forbidden = re.compile(
        r"\bos\.environ\b|\bos\.getenv\(|\btime\.time\(|\bdatetime\.now\(|\bdatetime\.utcnow\("
        r"|\bdate\.today\("
    )
    files = _python_files(API) + _python_files(CORE)
    found = _offenders(files, [forbidden])
    assert not found, "hami.api and hami.core are pure (time is injected):\n" + "\n".join(found)
