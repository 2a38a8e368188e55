"""`hami.yamlio` reads with libyaml and gives what `yaml.safe_load(_all)` gives (issue 20)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hami import yamlio
from hami.k8s.files import ManifestFileError, documents

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted([*REPO.glob("examples/**/*.yaml"), REPO / "charts/hami/values.yaml"], key=str)

Outcome = tuple[str, Any]


def outcome(read: Callable[[str], Any], text: str) -> Outcome:
    try:
        return "ok", read(text)
    except yaml.YAMLError as exc:
        return "error", str(exc)
    except Exception as exc:  # PyYAML's constructors raise a few others (`!!int ''`)
        return type(exc).__name__, str(exc)


def pure_all(text: str) -> list[Any]:
    return list(yaml.safe_load_all(text))


def test_libyaml_is_there() -> None:
    assert yaml.__with_libyaml__  # the wheel carries it; without it nothing gets faster
    assert yamlio.WITH_LIBYAML
    assert yamlio.FastLoader is yaml.CSafeLoader


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_the_shipped_files_read_the_same(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert yamlio.load_all(text) == pure_all(text)


def test_values_keep_their_types() -> None:
    text = (
        "a: 1\nb: 1.5\nc: yes\nd: ~\ne: 2001-12-14\nf: 0x1F\ng: '1'\nh: !!binary aGk=\n"
        "i: [1, {j: k}]\n<<: {m: n}\nanchor: &x {p: q}\nalias: *x\nbig: 12345678901234567890\n"
    )
    fast = yamlio.load(text)
    assert fast == yaml.safe_load(text)
    assert [type(v) for v in fast.values()] == [type(v) for v in yaml.safe_load(text).values()]
    assert fast["alias"] is fast["anchor"]


@pytest.mark.parametrize(
    "text",
    [
        "a: [1, 2\n",  # libyaml rejects too
        "a: b\n- c\n",
        "---\na: 1\n---\nb: 2\n",  # two documents where one is expected
        "a: 'unterminated\n",
        "x: \x07\n",
    ],
)
def test_errors_are_the_ones_pyyaml_gave(text: str) -> None:
    assert outcome(yamlio.load, text) == outcome(yaml.safe_load, text)
    assert outcome(yamlio.load_all, text) == outcome(pure_all, text)


@pytest.mark.parametrize(
    "text",
    [
        "a: b\tc\n",  # PyYAML rejects the tab, libyaml does not
        "a: !\n",  # null for PyYAML, '' for libyaml
        "- !\n- ! ''\n",
        "a: 1\n---\n\ufeffb\n",  # a BOM inside the stream is content for PyYAML
        "\ufeffa: 1\n",
    ],
)
def test_texts_where_the_parsers_differ_read_as_pyyaml_reads_them(text: str) -> None:
    assert outcome(yamlio.load_all, text) == outcome(pure_all, text)


@pytest.mark.parametrize("text", ["a: |#\n  b\n", "[a?b]\n"])
def test_what_only_libyaml_accepts_now_loads(text: str) -> None:
    """Documented difference: PyYAML rejects these, libyaml reads them."""
    assert outcome(pure_all, text)[0] == "error"
    assert outcome(yamlio.load_all, text)[0] == "ok"


def test_without_libyaml_the_pure_parser_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlio, "WITH_LIBYAML", False)
    monkeypatch.setattr(yamlio, "FastLoader", yaml.SafeLoader)
    for text in ("a: |#\n  b\n", "[a?b]\n"):
        with pytest.raises(yaml.YAMLError):
            yamlio.load_all(text)
    assert yamlio.load("a: [1, 2]") == {"a": [1, 2]}


TOKENS = [
    *"ab1 :-\n,[]{}'\"\\.&*%@`~<=é😀\r\x85\u2028\xa0\x7f\t!\ufeff",
    "\n  ", "\n    ", "- ", ": ", "&a ", "*a", "'q'", '"q"', "|\n  x\n", ">-\n  y\n", "---\n",
    "...\n", '"\\x41"', '"\\u263A"', "%YAML 1.1\n", "!!str ", "!!int ", "!x ", "<<: ", "1e3",
    "0x1F", "2001-12-14", "yes", "null", "\n- ", "key: ", "\n  k: ", "\x00",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=16).map("".join))
def test_any_text_reads_as_pyyaml_reads_it(text: str) -> None:
    """Same objects, or the same error, on texts without `#` and `?` (whose differences are the
    documented ones above)."""
    assert outcome(yamlio.load_all, text) == outcome(pure_all, text)
    assert outcome(yamlio.load, text) == outcome(yaml.safe_load, text)


def test_file_errors_still_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text("kind: Node\nmetadata: {name: [\n", encoding="utf-8")
    with pytest.raises(
        ManifestFileError, match=rf"^{re.escape(str(path))}: not valid YAML: .*\(line 3\)"
    ):
        list(documents(path))
