"""Pages: panel documents rendered into the published site, document in, text out.

Comparison pages (HTML and Markdown), tool pages, the index and its Atom feed, all from the
Jinja2 templates in panel/templates/, rendered sandboxed, and the site's one script (vote.js). Every field of a document is untrusted
text: HTML and Atom are autoescaped (and the feed loses what XML forbids), Markdown goes through
`markdown_text`, and only http(s) URLs become links.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import BytecodeCache, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from panel.cards import category_slug
from panel.mitigations import DESCRIPTIONS
from panel.results import provenance
from panel.rules import SHIP_THRESHOLD

TEMPLATES = Path(__file__).parent / "templates"

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)
"""The Content-Security-Policy every page carries: no script but the site's own files (vote.js;
no inline script, no eval), no fetch but to the site itself, no form sent anywhere."""

SCRIPT_NAME = "vote.js"
"""The site's script of every page, at the root of the output folder: the vote buttons and
the bookmarks (panel/templates/vote.js)."""
SEARCH_SCRIPT = "search.js"
"""The search page's script, beside it: the search over the site's own index."""
SCRIPTS = (SCRIPT_NAME, SEARCH_SCRIPT)

SEARCH_FIELDS = [
    "slug",
    "name",
    "category",
    "tagline",
    "verdict",
    "ship_pct",
    "score_mean",
    "votes",
    "comparisons",
    "added",
]
"""The columns of a row of the search index (a shard holds rows, not objects: a third the size)."""

_MARKDOWN_INLINE = re.compile(r"([\\`*_~\[\]|])")
_MARKDOWN_LIST_NUMBER = re.compile(r"^(\d+)([.)])")
_MARKDOWN_BLOCK_MARK = re.compile(r"^([#+=-])")
_BLANK_LINE = re.compile(r"\n\s*\n")
_WEB_URL = re.compile(r"^https?://[^\s/?#]+", re.IGNORECASE)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 forbids anywhere, even escaped: C0 controls, surrogates, U+FFFE, U+FFFF."""


def _parse_time(iso: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(iso)
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def human_date(iso: str | None) -> str:
    """Return an ISO timestamp as a date a reader scans: "22 Nov 2026" ("—" when missing)."""
    if not iso:
        return "—"
    moment = _parse_time(iso)
    return f"{moment.day} {moment:%b %Y}"


def human_time(iso: str) -> str:
    """Return an ISO timestamp as "22 Nov 2026, 05:52 UTC"."""
    moment = _parse_time(iso)
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


def rfc3339(iso: str) -> str:
    """Return an ISO timestamp as the RFC 3339 UTC time Atom requires."""
    return _parse_time(iso).isoformat()


def date_range(first: str | None, last: str | None) -> str:
    """Return the span of two ISO timestamps as dates, one date when they fall on the same day."""
    start, end = human_date(first), human_date(last)
    return start if start == end else f"{start} – {end}"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:g}%"


def bar_width(value: Any) -> int:
    """Return a score or percentage as a bar width from 0 to 100 (never text in a style)."""
    return max(0, min(100, round(float(value))))


def score_text(review: dict[str, Any]) -> str:
    """Return a review's score line as on the seed pages: "85/100 · ship"; with several samples
    their spread and, where their verdicts disagree, the split: "72 ± 6/100 · ship · split 2/1"."""
    sd, split = review.get("score_sd"), review.get("split")
    spread = "" if sd is None else f" ± {round(sd)}"
    text = f"{review['score']}{spread}/100 · {review['verdict']}"
    return f"{text} · split {split}" if split else text


def samples_text(review: dict[str, Any]) -> str:
    """Return what several samples scored, "Mean of 3 samples: 64, 70, 81"; "" for one."""
    samples = review.get("samples") or []
    if len(samples) < 2:
        return ""
    scores = ", ".join(str(s["score"]) for s in samples)
    return f"Mean of {len(samples)} samples: {scores}"


def mitigations_text(names: list[str] | None) -> str:
    """Return what mitigations did to a review, "Judged with names, maker and brands hidden
    from the judges; …" ("" when none did anything)."""
    known = [DESCRIPTIONS.get(name, name) for name in names or []]
    return f"Judged with {'; '.join(known)}." if known else ""


def interval_text(panel: dict[str, Any]) -> str:
    """Return the 90% interval of a panel's ship %, "90% interval 50–100%"; "" without one."""
    interval = panel.get("ship_pct_interval")
    return "" if not interval else f"90% interval {interval[0]}–{interval[1]}%"


def tone(verdict: str | None) -> str:
    """Return the colour class of a verdict: ship, skip or split (anything else is neutral)."""
    word = (verdict or "").lower()
    return word if word in ("ship", "skip", "split") else "neutral"


def initial(name: str) -> str:
    """Return the letter of a tool's badge: the first character of its name."""
    return name.strip()[:1].upper() or "?"


FLAG_TITLES = {"injection": "Injection attempt", "unanimous-extreme": "Unanimous extreme scores"}


def flag_title(kind: str) -> str:
    """Return the heading of a panel flag: "injection" -> "Injection attempt"."""
    return FLAG_TITLES.get(kind, field_label(kind))


def paragraphs(text: str) -> list[str]:
    """Return the paragraphs of a text: blocks separated by a blank line."""
    return [block for block in _BLANK_LINE.split(text.strip()) if block.strip()]


def field_label(key: str) -> str:
    """Return the heading of a persona field key: "moment_of_truth" -> "Moment of truth"."""
    words = " ".join(key.replace("_", " ").split())
    return words[:1].upper() + words[1:]


def field_items(value: Any) -> list[str]:
    """Return a persona field's value as a list of text items (a list field keeps its items)."""
    values = value if isinstance(value, list) else [value]
    return [str(item) for item in values]


def web_url(url: str | None) -> str | None:
    """Return url if it is an http(s) link, with every character that could end it encoded.

    Anything else (javascript:, data:, relative paths) gives None and is never made a link.
    """
    if not url or not _WEB_URL.match(url):
        return None
    return quote(url, safe=":/?#[]@!$&*+,;=%~")


_CODE_SPAN = re.compile(r"`([^`]+)`")


def code_spans(text: str) -> Markup:
    """Return text escaped, with each `span` in backticks (as panel's own messages write a
    key or a command) shown as code rather than raw backticks."""
    return Markup(_CODE_SPAN.sub(r"<code>\1</code>", str(html.escape(text, quote=True))))


def path_part(slug: str) -> str:
    """Return a slug encoded as one path segment of a relative link."""
    return quote(slug, safe="")


def category_feed(category: str) -> str:
    """Return the path, from the site's root, of a category's Atom feed."""
    return f"feeds/{category_slug(category)}.atom"


def markdown_text(value: Any) -> str:
    """Return value as one line of Markdown that renders as exactly that text.

    Raw HTML is entity-escaped, inline syntax and table pipes are backslash-escaped and
    newlines collapse, so the text stays text in a paragraph and one cell in a table.
    """
    text = html.escape(" ".join(str(value).split()), quote=False)
    text = _MARKDOWN_INLINE.sub(r"\\\1", text)
    text = _MARKDOWN_LIST_NUMBER.sub(r"\1\\\2", text)
    return _MARKDOWN_BLOCK_MARK.sub(r"\\\1", text)


def _compiled_templates() -> BytecodeCache | None:
    """Return Jinja's cache of compiled templates (its own per-user folder in the temporary
    directory, refused unless the user owns it and no one else may write there), so a process
    renders its first page without compiling the templates: the queue's workers each start
    one. None where no safe folder can be had."""
    try:
        return FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None


def _environment(autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(TEMPLATES),
        bytecode_cache=_compiled_templates(),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # the templates ship with panel: no stat of each file per page
    )
    env.filters.update(
        bar=bar_width,
        code=code_spans,
        feed=category_feed,
        date=human_date,
        date_range=date_range,
        datetime=human_time,
        field_items=field_items,
        field_label=field_label,
        category_slug=category_slug,
        interval=interval_text,
        flag_title=flag_title,
        initial=initial,
        md=markdown_text,
        paragraphs=paragraphs,
        path_part=path_part,
        percent=percent,
        provenance=provenance,
        rfc3339=rfc3339,
        samples_text=samples_text,
        mitigations_text=mitigations_text,
        score_text=score_text,
        tone=tone,
        web_url=web_url,
    )
    env.globals["ship_threshold"] = SHIP_THRESHOLD
    env.globals["csp"] = Markup(PAGE_CSP)  # a constant of ours: its quotes stay quotes
    return env


# HTML and Atom escape every value (autoescape=True: select_autoescape would skip *.html.j2).
_MARKUP = _environment(autoescape=True)
_MARKDOWN = _environment(autoescape=False)


def render_html(template_name: str, **context: Any) -> str:
    """Return an HTML page template of panel/templates rendered with context, sandboxed and
    autoescaped like every other page (for pages rendered outside this module, e.g. panel eval)."""
    return _MARKUP.get_template(template_name).render(**context)


STYLESHEET_STANDIN = "<style>/* panel/templates/panel.css */</style>"


def without_stylesheet(html: str) -> str:
    """Return a page with its inlined stylesheet (panel.css, the first <style>) replaced by a
    stand-in naming the file: what golden pages keep, so a CSS edit touches one file."""
    start = html.find("<style>")
    end = html.find("</style>", start)
    if start < 0 or end < 0:
        return html
    return html[:start] + STYLESHEET_STANDIN + html[end + len("</style>") :]


def compare_html(doc: dict[str, Any]) -> str:
    """Return the HTML page of a comparison document (schema panel.compare/1)."""
    return _MARKUP.get_template("compare.html.j2").render(doc=doc, root="../")


def compare_markdown(doc: dict[str, Any]) -> str:
    """Return the Markdown page of a comparison document (schema panel.compare/1)."""
    return _MARKDOWN.get_template("compare.md.j2").render(doc=doc)


def tool_html(
    doc: dict[str, Any],
    comparisons: list[dict[str, Any]],
    rank: dict[str, Any] | None = None,
    more: dict[str, Any] | None = None,
) -> str:
    """Return the page of one tool: its review document with "community", its comparisons and
    its place in its category's ranking.

    comparisons are site index entries that involve the tool, newest first; rank is its entry
    of the ranking document with "of" (tools ranked), "tiers" and "href", or None; more says
    how many comparisons the tool has in all ("total") and where they are listed ("href").
    """
    return _MARKUP.get_template("tool.html.j2").render(
        doc=doc, comparisons=comparisons, rank=rank, more=more, root="../"
    )


def rank_html(doc: dict[str, Any]) -> str:
    """Return the ranking page of one category (schema panel.rank/1): each tool's interval
    drawn on one scale, 0 in the middle."""
    ends = [abs(float(t[k])) for t in doc["tools"] for k in ("low", "high", "strength")]
    extent = max(ends, default=0.0) or 1.0

    def position(value: float) -> int:
        return bar_width(50 + 50 * float(value) / extent)

    return _MARKUP.get_template("rank.html.j2").render(doc=doc, pos=position, root="../")


def index_html(site: dict[str, Any]) -> str:
    """Return the site's front page: the latest comparisons, the categories, the rankings and
    the newest tools, with links to the listings of every comparison and tool."""
    categories = site.get("categories", [])
    feeds = [c["name"] for c in categories] or list(
        dict.fromkeys(tool["category"] for tool in site.get("tools", []))
    )
    context = {
        "categories": [],
        "rankings": [],
        "tools": [],
        "tool_count": len(site.get("tools", [])),
        "tools_href": None,
        "comparisons_href": None,
        "comparison_count": len(site["comparisons"]),
        **site,
        "feed_categories": feeds,
    }
    return _MARKUP.get_template("index.html.j2").render(
        site=context, demo=demo_notice(site["comparisons"]), root=""
    )


def listing_html(listing: dict[str, Any]) -> str:
    """Return one page of a listing (two folders below the site's root): {"kind": "comparisons"
    (site index entries) or "tools" (tool summaries), "title", "category" (its name or None),
    "ranking" (its page or None), "entries" (newest first), "number", "first" (the first item's
    number), "newer" and "older" (the neighbouring pages, or None)}."""
    return _MARKUP.get_template("listing.html.j2").render(listing=listing, root="../../")


def search_html(categories: list[str]) -> str:
    """Return the search page (search.js reads the index): its filters name the categories."""
    return _MARKUP.get_template("search.html.j2").render(categories=categories, root="")


def search_row(tool: dict[str, Any]) -> list[Any]:
    """Return a tool summary (with "comparisons" and "created_at") as a row of SEARCH_FIELDS."""
    panel = tool["panel"]
    return [
        tool["slug"],
        tool["name"],
        tool["category"],
        tool["tagline"],
        tone(panel["verdict"]),
        panel["ship_pct"],
        panel["score_mean"],
        tool["community"]["votes"],
        tool["comparisons"],
        tool["created_at"][:10],
    ]


def sitemap_xml(base: str, paths: list[str]) -> str:
    """Return a sitemap (sitemaps.org) of the pages at paths under the site's URL base."""
    urls = "".join(f"<url><loc>{_loc(base, path)}</loc></url>\n" for path in paths)
    return f'{_XML}<urlset xmlns="{_SITEMAPS}">\n{urls}</urlset>\n'


def sitemap_index_xml(base: str, paths: list[str]) -> str:
    """Return a sitemap index of the sitemaps at paths under the site's URL base."""
    maps = "".join(f"<sitemap><loc>{_loc(base, path)}</loc></sitemap>\n" for path in paths)
    return f'{_XML}<sitemapindex xmlns="{_SITEMAPS}">\n{maps}</sitemapindex>\n'


_XML = '<?xml version="1.0" encoding="UTF-8"?>\n'
_SITEMAPS = "http://www.sitemaps.org/schemas/sitemap/0.9"


def _loc(base: str, path: str) -> str:
    """Return the escaped absolute URL of a page (its path's segments percent-encoded)."""
    return html.escape(base + "/".join(quote(part, safe="") for part in path.split("/")))


def demo_notice(entries: list[dict[str, Any]]) -> str | None:
    """Return the demo-judge notice when any of the site's comparisons was judged by the tiny
    demo model (results.judge), else None."""
    return next((e["judge"]["notice"] for e in entries if e["judge"]["notice"]), None)


def _in_category(item: dict[str, Any], category: str) -> bool:
    names = {item[side].get("category", "").casefold() for side in ("a", "b")}
    return category.casefold() in names | {item.get("category", "").casefold()}


def atom_feed(site: dict[str, Any], category: str | None = None, *, filtered: bool = False) -> str:
    """Return the Atom feed of the site's comparisons, or of those of one category (links
    absolute when base_url is set); filtered: the site's comparisons are the category's already."""
    base = site["base_url"].rstrip("/") + "/" if site["base_url"] else ""
    items = [
        c for c in site["comparisons"] if category is None or filtered or _in_category(c, category)
    ]
    self_href = "feed.atom" if category is None else category_feed(category)
    return xml_text(
        _MARKUP.get_template("feed.atom.j2").render(
            site=site, items=items, category=category, self_href=self_href, base=base
        )
    )


def vote_script() -> str:
    """Return the site's script (SCRIPT_NAME), which the tool and comparison pages load."""
    return script(SCRIPT_NAME)


def script(name: str) -> str:
    """Return one of the site's scripts (SCRIPTS)."""
    return (TEMPLATES / name).read_text(encoding="utf-8")


def xml_text(text: str) -> str:
    """Return text without the characters XML forbids, so the document parses whatever the
    cards, imports and answers held."""
    return _NOT_XML.sub("", text)
