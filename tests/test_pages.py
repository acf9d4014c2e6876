"""The published pages: golden files from seed 000's fixed reviews, its figures, escaping of hostile text.

The comparison pages are checked against golden case seed-000's expected files (the same
page, its timestamps frozen); the tool page, index and feed against tests/pages_expected/.
Re-render the expected files after a deliberate change of the templates:
    make goldens-update  (pytest --update-goldens)
"""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from panel import pages
from panel.compare import comparison_document
from panel.config import data_dir
from panel.golden import freeze
from panel.personas import load_personas
from panel.rank import judge_of_pairs
from panel.records import import_file
from panel.results import tool_document
from panel.site.catalogue import entry_of
from panel.store import Store
from tests.conftest import REPO

SEED = REPO / "examples" / "seeds" / "000-smolvlm-3b-vs-mistral-8x22b-v2.jsonl"
EXPECTED = Path(__file__).parent / "pages_expected"
GOLDEN_SEED = Path(__file__).parent / "golden" / "seed-000" / "expected"

REVIEWED_AT = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC).timestamp()
GENERATED_AT = "2026-11-22T12:00:00+00:00"
BASE_URL = "https://panel.example.com/verdicts/"

SCRIPT = "<script>window.__pwned = 1; alert(1)</script>"
IMG = '<img src=x onerror="window.__pwned = 2; alert(2)">'
JS_URL = "javascript:alert(1)"
HOSTILE = f"{SCRIPT} {IMG} {JS_URL}"


def write_records(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def frozen_seed(folder: Path) -> Path:
    """Return seed 000 as an import file whose reviews carry a fixed review time."""
    records = [json.loads(line) for line in SEED.read_text(encoding="utf-8").splitlines()]
    for record in records:
        if record["type"] == "review":
            record["created_at"] = REVIEWED_AT
    return write_records(folder / SEED.name, records)


def hostile_records() -> list[dict[str, Any]]:
    """Return a tool and its four reviews with markup and script URLs in every text field."""
    tool = {
        "type": "tool",
        "slug": "evil-tool",
        "name": f"Evil {SCRIPT}",
        "tagline": f"Best for {IMG}",
        "description": f"A tool that says {HOSTILE} in its description.",
        "pricing": f"{JS_URL} per seat | {SCRIPT}",
        "entry": "<b>Free</b>",
        "category": f"Developer Tools {IMG}",
    }
    fields = {
        "builder": {"primitive": SCRIPT},
        "skeptic": {"competitors": [SCRIPT, "Moondream | PaliGemma"], "kill_risk": IMG},
        "futurist": {"thesis": JS_URL},
        "founder": {"moat": f"[click]({JS_URL})"},
    }
    reviews = [
        {
            "type": "review",
            "tool": "evil-tool",
            "persona": persona,
            "score": score,
            "verdict": "ship" if score >= 60 else "skip",
            "review": f"This review quotes {HOSTILE} and\nkeeps going with\n\nmore prose | pipes.",
            "fields": persona_fields,
            "created_at": REVIEWED_AT,
        }
        for (persona, persona_fields), score in zip(fields.items(), (70, 40, 65, 30), strict=True)
    ]
    return [tool, *reviews]


def comparison(store: Store, a: str, b: str) -> dict[str, Any]:
    """Return the comparison document of two stored tools, built by the real code, time frozen."""
    personas = load_personas(data_dir("personas"))
    docs = []
    for slug in (a, b):
        card = store.get_tool(slug)
        assert card is not None, slug
        docs.append(
            tool_document(
                card, [r for s in store.latest_reviews(slug).values() for r in s], personas
            )
        )
    doc = comparison_document(docs[0], docs[1], personas, store)
    doc["generated_at"] = GENERATED_AT
    return doc


def seed_comparison(folder: Path) -> dict[str, Any]:
    """Return seed 000's comparison document, imported into a fresh store in folder."""
    store = Store(folder / "panel.db")
    try:
        import_file(frozen_seed(folder), load_personas(data_dir("personas")), store)
        return comparison(store, "smolvlm-3b", "mistral-8x22b-v2")
    finally:
        store.close()


def hostile_comparison(folder: Path) -> dict[str, Any]:
    """Return a comparison of a hostile tool with SmolVLM-3B; its website is a javascript: URL."""
    store = Store(folder / "panel.db")
    try:
        personas = load_personas(data_dir("personas"))
        import_file(frozen_seed(folder), personas, store)
        import_file(write_records(folder / "evil.jsonl", hostile_records()), personas, store)
        doc = comparison(store, "evil-tool", "smolvlm-3b")
    finally:
        store.close()
    doc["a"]["tool"]["url"] = JS_URL  # a card cannot hold it; the page must not trust that
    return doc


def site_entry(doc: dict[str, Any]) -> dict[str, Any]:
    """Return the site index entry of a comparison document."""
    return entry_of(doc, doc["generated_at"])


def site_index(docs: list[dict[str, Any]], base_url: str | None = None) -> dict[str, Any]:
    """Return the site dictionary of comparison documents (newest first)."""
    tools = {}
    for doc in docs:
        for entry in (doc["a"], doc["b"]):
            tool = entry["tool"]
            tools[tool["slug"]] = {
                "slug": tool["slug"],
                "name": tool["name"],
                "tagline": tool["tagline"],
                "category": tool["category"],
                "entry": tool["entry"],
                "panel": entry["panel"],
                "community": entry["community"],
            }
    return {
        "title": "Panel verdicts",
        "generated_at": GENERATED_AT,
        "base_url": base_url,
        "comparisons": [site_entry(doc) for doc in docs],
        "tools": sorted(tools.values(), key=lambda tool: tool["name"].lower()),
    }


def render_all(doc: dict[str, Any]) -> dict[str, str]:
    """Return every page made from one comparison, by expected file name."""
    site = site_index([doc])
    return {
        "compare.html": pages.compare_html(doc),
        "compare.md": pages.compare_markdown(doc),
        "tool.html": pages.tool_html(doc["a"], site["comparisons"]),
        "index.html": pages.index_html(site),
        "feed.atom": pages.atom_feed(site),
    }


class _Page(HTMLParser):
    """Collects the visible text, the elements and the attributes of an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.scripts: list[list[tuple[str, str]]] = []
        """The attributes of each <script> element."""
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(name, value or "") for name, value in attrs]
        if tag == "script":
            self.scripts.append([(name, value or "") for name, value in attrs])
        self._hidden += tag in ("style", "title", "script")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("style", "title", "script")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)


def parse_page(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def visible_text(html: str) -> str:
    """Return the text a reader sees, whitespace collapsed to single spaces."""
    return " ".join(" ".join(parse_page(html).text).split())


@pytest.fixture(scope="module")
def seed_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return seed_comparison(tmp_path_factory.mktemp("seed"))


@pytest.fixture(scope="module")
def hostile_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return hostile_comparison(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize(
    "name", ["compare.html", "compare.md", "tool.html", "index.html", "feed.atom"]
)
def test_pages_match_the_expected_files(
    seed_doc: dict[str, Any], name: str, request: pytest.FixtureRequest
) -> None:
    # Expected pages hold a stand-in for the stylesheet (pages.without_stylesheet): a CSS edit
    # changes panel.css alone.
    if name.startswith("compare."):  # the golden case's page: timestamps frozen as it has them
        actual = pages.without_stylesheet(render_all(freeze(seed_doc))[name])
        expected_path = GOLDEN_SEED / name
    else:
        actual, expected_path = (
            pages.without_stylesheet(render_all(seed_doc)[name]),
            EXPECTED / name,
        )
        if request.config.getoption("--update-goldens"):
            expected_path.parent.mkdir(exist_ok=True)
            expected_path.write_text(actual, encoding="utf-8")
    assert expected_path.exists(), f"{expected_path} is missing: make goldens-update"
    assert actual == expected_path.read_text(encoding="utf-8"), (
        f"{name} differs from {expected_path}; if the change is intended, re-render with "
        "make goldens-update"
    )


SEED_SCORES = [
    "85/100 · ship",
    "82/100 · ship",
    "78/100 · ship",
    "75/100 · ship",
    "82/100 · ship",
    "78/100 · ship",
    "52/100 · skip",
    "55/100 · skip",
]
SEED_TAGLINES = [
    "Apache 2.0 vision-language model that actually fits on your device",
    "Apache 2.0 MoE model with 30% better instruction following",
]
SEED_PRICING = [
    "Free (Apache 2.0 open weights)",
    "Free (Apache 2.0 weights) / La Plateforme API pay-per-token",
]
SCORE = re.compile(r"\d+/100 · (?:ship|skip)")


def test_comparison_page_shows_exactly_the_seed_figures(seed_doc: dict[str, Any]) -> None:
    html = pages.compare_html(seed_doc)
    text = visible_text(html)
    assert "<title>SmolVLM-3B vs Mistral 8x22B v2 · AI tool comparison</title>" in html
    assert "<h1>SmolVLM-3B vs Mistral 8x22B v2</h1>" in html
    assert "AI tool comparison" in text
    assert "Which one should you ship with?" in text
    # the cards: a community share always with its number of votes
    assert text.count("Panel verdict Ship Panel ship 75% Community ship — 0 votes Entry Free") == 2
    assert "Panel ship 75% 75%" in text  # decision table
    assert text.count("Ship · 3 ship / 1 skip") == 2
    assert SCORE.findall(text) == SEED_SCORES
    assert "Decision SmolVLM-3B Mistral 8x22B v2" in text
    assert f"Pricing {SEED_PRICING[0]} {SEED_PRICING[1]}" in text
    assert f"Best for {SEED_TAGLINES[0]} {SEED_TAGLINES[1]}" in text
    assert "Category Developer Tools Developer Tools" in text
    assert "Community No community votes yet No community votes yet" in text
    assert "Too close to call" in text
    assert seed_doc["head_to_head"]["summary"] in text
    assert "Builder Prefers SmolVLM-3B by 3 points" in text
    assert "Founder Prefers Mistral 8x22B v2 by 3 points" in text
    assert "Models import/unknown" in text
    assert "Reviewed 20 Nov 2026" in text
    assert "Generated 22 Nov 2026, 12:00 UTC" in text


def test_comparison_page_badges_and_links(seed_doc: dict[str, Any]) -> None:
    page = parse_page(pages.compare_html(seed_doc))
    hrefs = [value for name, value in page.attributes if name == "href"]
    assert "../tools/smolvlm-3b.html" in hrefs
    assert "../tools/mistral-8x22b-v2.html" in hrefs
    assert "../index.html" in hrefs
    assert all(not re.match(r"^[a-z]+://", href) for href in hrefs), hrefs
    text = visible_text(pages.compare_html(seed_doc))
    assert "S Developer Tools SmolVLM-3B" in text
    assert "M Developer Tools Mistral 8x22B v2" in text


def test_markdown_shows_exactly_the_seed_figures(seed_doc: dict[str, Any]) -> None:
    markdown = pages.compare_markdown(seed_doc)
    assert markdown.startswith("# SmolVLM-3B vs Mistral 8x22B v2\n")
    assert "Which one should you ship with?" in markdown
    assert "| Panel verdict | Ship · 3 ship / 1 skip | Ship · 3 ship / 1 skip |" in markdown
    assert "| Panel ship | 75% | 75% |" in markdown
    assert f"| Pricing | {SEED_PRICING[0]} | {SEED_PRICING[1]} |" in markdown
    assert f"| Best for | {SEED_TAGLINES[0]} | {SEED_TAGLINES[1]} |" in markdown
    assert "| Category | Developer Tools | Developer Tools |" in markdown
    assert "| Community | No community votes yet | No community votes yet |" in markdown
    assert "| Entry | Free | Free |" in markdown
    table = "\n".join(line for line in markdown.splitlines() if line.startswith("| Builder"))
    assert table == "| Builder | 85/100 · ship | 82/100 · ship | SmolVLM-3B by 3 |"
    # The scorecard table, then each review under its score, in persona order.
    assert SCORE.findall(markdown) == SEED_SCORES + SEED_SCORES


def test_tool_page_and_index_link_the_site_together(seed_doc: dict[str, Any]) -> None:
    site = site_index([seed_doc])
    tool_page = pages.tool_html(seed_doc["a"], site["comparisons"])
    text = visible_text(tool_page)
    assert "SmolVLM-3B" in text and "Ship · 3 ship / 1 skip" in text and "75%" in text
    assert SCORE.findall(text) == [
        "85/100 · ship",
        "78/100 · ship",
        "82/100 · ship",
        "52/100 · skip",
    ]
    assert 'href="../compare/smolvlm-3b-vs-mistral-8x22b-v2.html"' in tool_page
    index = pages.index_html(site)
    for href in (
        "compare/smolvlm-3b-vs-mistral-8x22b-v2.html",
        "tools/smolvlm-3b.html",
        "tools/mistral-8x22b-v2.html",
        "feed.atom",
    ):
        assert f'href="{href}"' in index
    assert "No comparisons yet" in visible_text(pages.index_html({**site, "comparisons": []}))


def test_tool_page_without_reviews_or_comparisons(seed_doc: dict[str, Any]) -> None:
    empty_panel = {**seed_doc["a"]["panel"], "score_mean": None, "score_min": None}
    doc = {**seed_doc["a"], "reviews": [], "panel": empty_panel}
    text = visible_text(pages.tool_html(doc, []))
    assert "No reviews yet." in text
    assert "No comparisons with SmolVLM-3B yet." in text


def test_atom_feed_is_valid_and_links_relative_or_absolute(seed_doc: dict[str, Any]) -> None:
    ns = {"atom": "http://www.w3.org/2005/Atom"}
    for base_url, href in (
        (None, "compare/smolvlm-3b-vs-mistral-8x22b-v2.html"),
        (BASE_URL, BASE_URL + "compare/smolvlm-3b-vs-mistral-8x22b-v2.html"),
    ):
        feed = ET.fromstring(pages.atom_feed(site_index([seed_doc], base_url)))
        (entry,) = feed.findall("atom:entry", ns)
        assert entry.findtext("atom:id", namespaces=ns) == (
            "urn:panel:compare:smolvlm-3b-vs-mistral-8x22b-v2"
        )
        assert entry.findtext("atom:title", namespaces=ns) == "SmolVLM-3B vs Mistral 8x22B v2"
        assert entry.find("atom:link", ns).get("href") == href  # type: ignore[union-attr]
        assert entry.findtext("atom:updated", namespaces=ns) == GENERATED_AT
        assert entry.findtext("atom:summary", namespaces=ns).startswith(
            seed_doc["verdict"]["headline"] + ". " + seed_doc["verdict"]["explanation"]
        )


def test_persona_fields_are_shown_with_labels(hostile_doc: dict[str, Any]) -> None:
    text = visible_text(pages.compare_html(hostile_doc))
    assert f"Competitors {SCRIPT} Moondream | PaliGemma" in text
    assert f"Kill risk {IMG}" in text
    assert f"Thesis {JS_URL}" in text
    markdown = pages.compare_markdown(hostile_doc)
    assert "- **Competitors:** &lt;script&gt;" in markdown
    assert "Moondream \\| PaliGemma" in markdown


PAGE_TAGS = {
    *("html", "head", "meta", "title", "link", "style", "body", "header", "nav", "main"),
    *("section", "article", "aside", "footer", "h1", "h2", "h3", "p", "span", "div", "dl"),
    *("dt", "dd", "ul", "li", "a", "b", "small", "br", "code", "time", "table", "thead"),
    *("tbody", "tr", "th", "td", "button", "details", "summary"),
}
"""Every element the page templates write; any other element in a page came from its data."""
SITE_SCRIPT = [("src", f"../{pages.SCRIPT_NAME}"), ("defer", "")]
"""The one script element a page may hold: the site's own vote.js, from the site's root
(tool and comparison pages, which sit one folder down)..."""
INDEX_SCRIPT = [("src", pages.SCRIPT_NAME), ("defer", "")]
"""...or, on the index, beside it."""
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "srcdoc", "data", "xlink:href", "poster"}


SITE_SCRIPT_TAG = f'<script src="../{pages.SCRIPT_NAME}" defer></script>'


def inert_problems(html: str) -> list[str]:
    """Return what in html could run or fetch: foreign elements, event handlers, script URLs."""
    page = parse_page(html)
    problems = [f"<{tag}> element" for tag in sorted(set(page.tags) - PAGE_TAGS - {"script"})]
    if page.scripts not in ([], [SITE_SCRIPT], [INDEX_SCRIPT]):
        problems.append(f"<script> elements {page.scripts!r}")
    problems += [f"{name} attribute" for name, _ in page.attributes if name.startswith("on")]
    for name, value in page.attributes:
        if value == "data:,":  # the template's own empty favicon, which stops a favicon fetch
            continue
        scheme = "".join(value.split()).lower().split(":", 1)[0]
        if (
            name in URL_ATTRIBUTES and scheme in ("javascript", "data", "vbscript")
        ) or name == "srcdoc":
            problems.append(f"{name}={value!r}")
    return problems


def assert_inert_html(html: str) -> None:
    """Fail if html holds a foreign element, an event handler or a script URL (text is fine)."""
    assert inert_problems(html) == []
    own = html.replace(SITE_SCRIPT_TAG, "").replace(f'<script src="{pages.SCRIPT_NAME}" defer>', "")
    assert "<script" not in own and "<img" not in html


def test_hostile_text_is_only_text_in_every_html_page(hostile_doc: dict[str, Any]) -> None:
    site = site_index([hostile_doc])
    for html in (
        pages.compare_html(hostile_doc),
        pages.tool_html(hostile_doc["a"], site["comparisons"]),
        pages.index_html(site),
    ):
        assert_inert_html(html)
        assert "&lt;script&gt;window.__pwned = 1; alert(1)&lt;/script&gt;" in html
        assert "&lt;b&gt;Free&lt;/b&gt;" in html
        assert f"Evil {SCRIPT}" in visible_text(html)
    compare = visible_text(pages.compare_html(hostile_doc))
    for shown in (HOSTILE, f"{JS_URL} per seat | {SCRIPT}", f"Best for {IMG}", "<b>Free</b>"):
        assert shown in compare
    assert "Visit Evil" not in compare  # the javascript: website is not a link
    assert "<p>more prose | pipes.</p>" in pages.compare_html(hostile_doc)  # a blank line parts


def test_the_only_script_a_page_may_hold_is_the_sites_own(seed_doc: dict[str, Any]) -> None:
    html = pages.compare_html(seed_doc)
    assert html.count(SITE_SCRIPT_TAG) == 1 and inert_problems(html) == []
    for smuggled in (
        '<script src="https://evil.example/vote.js"></script>',
        f'<script src="../{pages.SCRIPT_NAME}" defer></script>',  # a second copy
        "<script>alert(1)</script>",
    ):
        assert inert_problems(html.replace("</body>", smuggled + "</body>")), smuggled
    assert 'data-vote="smolvlm-3b" hidden' in html  # no button until the script finds the API
    assert "script-src 'self'; connect-src 'self'" in html


def test_hostile_text_is_escaped_in_markdown(hostile_doc: dict[str, Any]) -> None:
    markdown = pages.compare_markdown(hostile_doc)
    assert "<script" not in markdown and "<img" not in markdown and "<b>" not in markdown
    assert not re.search(r"(?<!\\)\]\(javascript:", markdown), "a live Markdown link"
    assert "<javascript:" not in markdown
    assert "&lt;script&gt;window.\\_\\_pwned = 1; alert(1)&lt;/script&gt;" in markdown
    assert "\\[click\\](javascript:alert(1))" in markdown
    pricing = next(line for line in markdown.splitlines() if line.startswith("| Pricing |"))
    assert pricing.count(" | ") == 2  # the pipe in the pricing is escaped, the row keeps 3 cells
    # A line break is a space, a blank line a new paragraph, as in the HTML page.
    assert " and keeps going with\n\nmore prose \\| pipes.\n" in markdown


def test_hostile_text_is_escaped_in_the_feed(hostile_doc: dict[str, Any]) -> None:
    feed = pages.atom_feed(site_index([hostile_doc]))
    assert "<script" not in feed
    entry = ET.fromstring(feed).find("{http://www.w3.org/2005/Atom}entry")
    assert entry is not None
    assert entry.findtext("{http://www.w3.org/2005/Atom}title") == hostile_doc["title"]


@pytest.mark.parametrize(
    ("url", "link"),
    [
        ("https://huggingface.co/HuggingFaceTB", "https://huggingface.co/HuggingFaceTB"),
        ("HTTP://example.com/a?b=1&c=2#d", "HTTP://example.com/a?b=1&c=2#d"),
        (
            'https://example.com/"onmouseover="alert(1)',
            "https://example.com/%22onmouseover=%22alert%281%29",
        ),
        ("javascript:alert(1)", None),
        ("JavaScript://example.com/%0Aalert(1)", None),
        (" https://example.com", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("//example.com", None),
        ("https://", None),
        (None, None),
    ],
)
def test_only_web_urls_become_links(url: str | None, link: str | None) -> None:
    assert pages.web_url(url) == link


def test_website_link_is_rendered_for_a_web_url(seed_doc: dict[str, Any]) -> None:
    doc = json.loads(json.dumps(seed_doc))
    doc["a"]["tool"]["url"] = "https://huggingface.co/HuggingFaceTB/SmolVLM"
    html = pages.compare_html(doc)
    assert 'href="https://huggingface.co/HuggingFaceTB/SmolVLM"' in html
    assert "Website: <https://huggingface.co/HuggingFaceTB/SmolVLM>" in pages.compare_markdown(doc)


def test_hostile_reasons_and_names_in_the_judged_head_to_head_are_only_text(
    hostile_doc: dict[str, Any],
) -> None:
    from panel.compare import pairwise_head_to_head
    from panel.config import data_dir
    from panel.personas import load_personas
    from panel.store import StoredPair

    a, b = hostile_doc["a"]["tool"]["slug"], hostile_doc["b"]["tool"]["slug"]
    judgments = [
        StoredPair(first, second, "h1", "h2", "builder", "p", "x", "m", "first", HOSTILE, 1, 0.0)
        for first, second in ((a, b), (b, a))
    ]
    personas = load_personas(data_dir("personas"))
    pairwise = pairwise_head_to_head(hostile_doc["a"], hostile_doc["b"], judgments, personas)
    doc = {**hostile_doc, "head_to_head": {**hostile_doc["head_to_head"], "pairwise": pairwise}}
    html = pages.compare_html(doc)
    assert_inert_html(html)
    assert HOSTILE in visible_text(html) and "flipped with the order" in visible_text(html)
    markdown = pages.compare_markdown(doc)
    assert "<script" not in markdown and "<img" not in markdown
    assert "&lt;script&gt;window.\\_\\_pwned = 1; alert(1)&lt;/script&gt;" in markdown
    site = site_index([doc])
    assert_inert_html(pages.index_html(site))
    assert "<script" not in pages.atom_feed(site)


def test_a_ranking_page_of_hostile_names_is_only_text() -> None:
    doc = {
        "schema": "panel.rank/1",
        "category": HOSTILE,
        "generated_at": "2026-12-05T10:00:00+00:00",
        "pairs": 1,
        "judgments": 8,
        "interval": "sandwich",
        "tools": [
            {
                "slug": "a/../b",
                "name": HOSTILE,
                "strength": 1.5,
                "low": 0.2,
                "high": 9.0,
                "rank": 1,
                "pairs": 1,
                "tier": 1,
                "picked_pct": 82,
                "picked_low": 55,
                "picked_high": 100,
            },
            {
                "slug": "b",
                "name": "B",
                "strength": -1.5,
                "low": -9.0,
                "high": -0.2,
                "rank": 2,
                "pairs": 1,
                "tier": 2,
                "picked_pct": 18,
                "picked_low": 0,
                "picked_high": 45,
            },
        ],
        "unranked": [{"slug": "c", "name": IMG, "pairs": 0, "reason": "in no judged pair"}],
        "settled": {"tiers": 2, "top": [HOSTILE], "first": HOSTILE},
        "rests_on": {"comparisons": 1, "other": 0},
        "judge": judge_of_pairs([]),
    }
    html = pages.rank_html(doc)
    assert_inert_html(html)
    assert HOSTILE in visible_text(html) and IMG in visible_text(html)
    assert 'href="../tools/a%2F..%2Fb.html"' in html
    assert re.findall(r"left: (\d+)%; width: (\d+)%", html) == [("51", "49"), ("0", "49")]
