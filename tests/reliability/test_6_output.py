"""Battery 6: an XSS corpus in every text field of a card and of its four reviews.

Each payload goes in through the real import (validated like cards and answers), then out as
every page: comparison HTML and Markdown, tool page, index, Atom feed. The HTML holds no element
the templates do not write (the one script is the site's own vote.js), no event-handler attribute,
no script URL; the Markdown holds no raw HTML and no live script link; the feed parses and holds
no script. In headless Chromium nothing runs, opens a dialog or fetches (but the site's script),
both as published and with the page's Content-Security-Policy removed, so escaping alone is
proven to hold.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from panel import pages
from panel.compare import comparison_for
from panel.config import data_dir
from panel.personas import load_personas
from panel.records import import_file
from panel.store import Store
from tests.browser import site_script, visit, write_site
from tests.reliability.conftest import Tally
from tests.test_pages import frozen_seed, inert_problems, site_index, visible_text

if TYPE_CHECKING:
    from playwright.sync_api import Browser

XSS = {
    "script-tag": "<script>window.__pwned=1;alert(1)</script>",
    "img-onerror": '<img src=x onerror="window.__pwned=2;alert(2)">',
    "svg-onload": '<svg onload="window.__pwned=3;alert(3)"><circle r=9 /></svg>',
    "svg-script": "<svg><script>window.__pwned=4;alert(4)</script></svg>",
    "javascript-url": '<a href="javascript:window.__pwned=5;alert(5)">x</a>',
    "closing-tag-breakout": "</p></div></main><script>window.__pwned=6</script>",
    "attribute-breakout": '"><script>window.__pwned=7</script><b x="',
    "single-quote-breakout": "'><svg/onload=window.__pwned=8>",
    "title-breakout": "</title><script>window.__pwned=9</script>",
    "style-breakout": "</style><script>window.__pwned=10</script>",
    "iframe-srcdoc": '<iframe srcdoc="<script>parent.__pwned=11</script>"></iframe>',
    "details-ontoggle": "<details open ontoggle=window.__pwned=12>",
    "markdown-script-link": "[click](javascript:window.__pwned=13)",
    "markdown-autolink": "<javascript:window.__pwned=14>",
    "mutation-xss": "<math><mtext><table><mglyph><style><img src=x onerror=window.__pwned=15>",
    "pre-escaped": "&lt;script&gt;window.__pwned=16&lt;/script&gt;",
    "cdata-breakout": "]]><script>window.__pwned=17</script>",
}
IDS = list(XSS)
SIDE_BY_SIDE = "smolvlm-3b"


def hostile_records(key: str) -> list[dict[str, Any]]:
    """Return a tool and four reviews that carry the payload in every text field."""
    payload = XSS[key]
    slug = f"xss-{key}"
    tool = {
        "type": "tool",
        "slug": slug,
        "name": f"Evil {payload}"[:120],
        "tagline": f"Best for {payload}",
        "description": f"A tool that says {payload} in its description.",
        "category": f"Tools {payload}",
        "pricing": f"{payload} per seat | free",
        "entry": payload[:60],
        "maker": payload,
        "license": payload,
        "url": "https://example.com/" + "".join(payload.split()),
    }
    reviews = []
    for persona, score in zip(load_personas(data_dir("personas")), (70, 40, 65, 30), strict=True):
        fields = {
            name: [payload[:120], "Moondream"] if spec.type == "list" else f"It says {payload}."
            for name, spec in persona.fields.items()
        }
        reviews.append(
            {
                "type": "review",
                "tool": slug,
                "persona": persona.key,
                "score": score,
                "verdict": "ship" if score >= 60 else "skip",
                "review": f"This review quotes {payload} and\nkeeps going.\n\nMore prose | pipes.",
                **fields,
            }
        )
    return [tool, *reviews]


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Return the comparison document of each hostile tool with SmolVLM-3B, by payload."""
    folder = tmp_path_factory.mktemp("xss")
    personas = load_personas(data_dir("personas"))
    store = Store(folder / "panel.db")
    try:
        import_file(frozen_seed(folder), personas, store)
        docs = {}
        for key in IDS:
            records = folder / f"{key}.jsonl"
            records.write_text("".join(json.dumps(r) + "\n" for r in hostile_records(key)))
            import_file(records, personas, store)
            card, other = store.get_tool(f"xss-{key}"), store.get_tool(SIDE_BY_SIDE)
            assert card is not None and other is not None
            docs[key] = comparison_for(store, personas, (card, other))
        return docs
    finally:
        store.close()


def markdown_problems(markdown: str) -> list[str]:
    """Return raw HTML and live script links in Markdown (escaped text is fine)."""
    raw = [m for m in re.findall(r"<[^\s>]*", markdown) if not m.startswith("<https://")]
    links = re.findall(r"(?<!\\)\]\(\s*(?:javascript|data|vbscript):", markdown, re.IGNORECASE)
    return [f"raw {m!r}" for m in raw] + [f"live link {m!r}" for m in links]


def feed_problems(feed: str) -> list[str]:
    try:
        root = ET.fromstring(feed)
    except ET.ParseError as exc:
        return [f"feed does not parse: {exc}"]
    problems = [el.tag for el in root.iter() if el.tag.rsplit("}", 1)[-1] in ("script", "svg")]
    links = [el.get("href", "") for el in root.iter() if el.tag.endswith("}link")]
    return problems + [href for href in links if href.lower().startswith("javascript:")]


@pytest.mark.parametrize("key", IDS)
def test_every_page_is_inert(documents: dict[str, dict[str, Any]], tally: Tally, key: str) -> None:
    doc = documents[key]
    site = site_index([doc])
    checks = {
        "compare.html": inert_problems(pages.compare_html(doc)),
        "tool.html": inert_problems(pages.tool_html(doc["a"], site["comparisons"])),
        "index.html": inert_problems(pages.index_html(site)),
        "compare.md": markdown_problems(pages.compare_markdown(doc)),
        "feed.atom": feed_problems(pages.atom_feed(site)),
    }
    for problems in checks.values():
        tally.add("output", survived=not problems, lost=len(problems))
    assert not any(checks.values()), {k: v for k, v in checks.items() if v}
    payload = " ".join(XSS[key].split())
    assert f"A tool that says {payload} in its description." in visible_text(
        pages.compare_html(doc)
    )


@pytest.fixture(scope="module")
def hostile_site(
    documents: dict[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The static site of every hostile comparison, and a copy of each page without its CSP."""
    folder = write_site(tmp_path_factory.mktemp("xss-site"), list(documents.values()))
    for page in [*folder.rglob("*.html")]:
        bare = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page.read_text())
        assert bare != page.read_text(), f"{page} has no CSP to remove"
        page.with_name(page.stem + ".no-csp.html").write_text(bare)
    return folder


@pytest.mark.parametrize("csp", [True, False], ids=["published", "without-csp"])
@pytest.mark.parametrize("key", IDS)
def test_nothing_runs_in_chromium(
    browser: Browser, hostile_site: Path, tally: Tally, key: str, csp: bool
) -> None:
    suffix = ".html" if csp else ".no-csp.html"
    paths = [
        hostile_site / "compare" / f"xss-{key}-vs-{SIDE_BY_SIDE}{suffix}",
        hostile_site / "tools" / f"xss-{key}{suffix}",
    ]
    if key == IDS[0]:
        paths.append(hostile_site / f"index{suffix}")  # every hostile tool is listed there
    for path in paths:
        with visit(browser, path) as seen:
            pwned = seen.page.evaluate("typeof window.__pwned") != "undefined"
            # The site's own script (vote.js, from the site's root) is the one script allowed,
            # and the templates' own folds (fields, provenance, the verdict's rule) the only
            # <details>.
            ours = f"[src='../{pages.SCRIPT_NAME}'], [src='{pages.SCRIPT_NAME}']"
            foreign = seen.page.locator(
                f"script:not({ours}), img, svg, iframe, math, object, "
                "details:not(.more, .provenance, .rule)"
            ).count()
            own = seen.page.locator(f"script:is({ours})").count()
            fetched = [
                url for url in seen.requests if url not in (path.as_uri(), site_script(path))
            ]
            bad_links = seen.page.eval_on_selector_all(
                "a", "links => links.map(a => a.href).filter(h => !/^(file|https?):/.test(h))"
            )
            text = seen.text()
        failed = pwned or foreign or own > 1 or fetched or seen.dialogs or seen.errors or bad_links
        tally.add("output", survived=not failed, lost=int(pwned) + len(seen.dialogs))
        assert not failed, (
            path.name,
            pwned,
            foreign,
            fetched,
            seen.dialogs,
            seen.errors,
            bad_links,
        )
        assert "Evil" in text


TERMINAL = {
    "rich-markup": "[bold red]now[/] [/blue-red] [link=https://evil.example]click[/link]",
    "escape-sequences": "clear\x1b[2J title\x1b]0;pwned\x07 link\x1b]8;;https://evil\x1b\\x bell\x07",
}


@pytest.mark.parametrize("key", list(TERMINAL))
def test_the_terminal_scorecard_prints_text_not_markup_or_escapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tally: Tally, key: str
) -> None:
    from panel.cli.output import print_scorecard
    from panel.results import tool_document

    payload = TERMINAL[key]
    records = [
        {**record, "slug": f"term-{key}"}
        if record["type"] == "tool"
        else {**record, "tool": f"term-{key}"}
        for record in hostile_records("script-tag")
    ]
    for record in records:
        for field in ("name", "tagline", "review"):
            if field in record:
                record[field] = f"{record[field][:60]} {payload}"
    path = tmp_path / "term.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    personas = load_personas(data_dir("personas"))
    store = Store(tmp_path / "panel.db")
    try:
        import_file(path, personas, store)
        card = store.get_tool(f"term-{key}")
        assert card is not None
        doc = tool_document(
            card, [r for s in store.latest_reviews(card.slug).values() for r in s], personas
        )
    finally:
        store.close()
    print_scorecard(doc)
    printed = capsys.readouterr().out
    shown = "[/blue-red]" in printed if key == "rich-markup" else "clear[2J" in printed
    escapes = "\x1b" in printed or "\x07" in printed
    tally.add("output", survived=shown and not escapes, lost=int(escapes))
    assert shown, printed
    assert not escapes, repr(printed)
