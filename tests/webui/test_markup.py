"""The pages' markup nests as browsers read it: no block element inside a ``<p>`` (a browser
closes the paragraph there, and the rest of it lands outside)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hami.config import load_config
from hami.vendors import registry
from hami.webui.app import WebUI, create_app
from hami.webui.history import History
from hami.webui.simsource import SimSource

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SETTINGS = load_config(EXAMPLES / "config.yaml")
VENDORS = registry.build(SETTINGS)
BLOCKS = frozenset(
    {"address", "blockquote", "details", "div", "dl", "fieldset", "figure", "footer", "form"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "main", "nav", "ol", "p", "pre"}
    | {"section", "table", "ul"}
)


class _BlockInParagraph(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.found: list[tuple[str, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BLOCKS and self.depth:
            self.found.append((tag, self.getpos()[0]))
        if tag == "p":
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "p" and self.depth:
            self.depth -= 1


@pytest.fixture(scope="module")
def client() -> TestClient:
    source = SimSource(EXAMPLES / "cluster.yaml", EXAMPLES / "pods.yaml", VENDORS, SETTINGS)
    return TestClient(create_app(WebUI(source, History(interval=0))))


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/nodes",
        "/nodes/a100-nvlink",
        "/nodes/h100-mig",
        "/accelerators",
        "/accelerators/GPU-a100-0",
        "/workloads",
        "/pending",
        "/namespaces",
        "/pods/demo/infer-small",
        "/what-if",
    ],
)
def test_no_block_inside_a_paragraph(client: TestClient, url: str) -> None:
    page = client.get(url)
    assert page.status_code == 200
    parser = _BlockInParagraph()
    parser.feed(page.text)
    assert parser.found == [], f"{url}: block elements inside <p> at {parser.found}"


def test_overview_totals_hold_both_bars(client: TestClient) -> None:
    page = client.get("/").text
    start = page.index('<div class="totals">')
    totals = page[start : page.index("<h2>", start)]
    assert 'memory <div class="bar"' in totals and 'cores <div class="bar"' in totals
