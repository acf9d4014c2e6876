"""The static site: an index of comparisons and tools, a page per tool, the comparison pages, a
ranking page per category whose tools were judged in pairs, an Atom feed and the vote buttons'
script, all rebuilt from the store with relative links (open from disk or any static host;
`panel serve` serves them with the vote API).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

from panel import pages
from panel.cards import category_slug
from panel.compare import community, comparison_document, write_pages, write_script
from panel.files import write_atomic
from panel.personas import Persona
from panel.rank import categories, ranking
from panel.results import tool_document
from panel.store import Store

SITE_TITLE = "panel · AI tool verdicts"


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")


def _summary(document: dict[str, Any]) -> dict[str, Any]:
    tool = document["tool"]
    return {
        "slug": tool["slug"],
        "name": tool["name"],
        "tagline": tool["tagline"],
        "category": tool["category"],
        "entry": tool["entry"],
        "panel": document["panel"],
        "community": document["community"],
    }


def build_site(
    store: Store, personas: list[Persona], out: Path, base_url: str | None = None
) -> dict[str, int]:
    """Write the whole site under out; return how many pages of each kind were written."""
    keys = {p.key for p in personas}
    tools: dict[str, dict[str, Any]] = {}
    for card in store.tools():
        latest = store.latest_reviews(card.slug)
        reviews = [r for k, found in latest.items() if k in keys for r in found]
        tools[card.slug] = {
            **tool_document(card, reviews, personas),
            "community": community(store, card.slug),
        }

    judgments = [j for j in store.latest_pairs() if j.persona in keys]
    entries = []
    compared = store.comparisons()
    for a, b, created in compared:
        pairs = [j for j in judgments if {j.first, j.second} == {a, b}]
        document = comparison_document(tools[a], tools[b], personas, store, pairs)
        write_pages(document, out)
        entries.append(
            {
                "slug": document["slug"],
                "title": document["title"],
                "created_at": _iso(created),
                "a": _summary(tools[a]),
                "b": _summary(tools[b]),
                "head_to_head": document["head_to_head"],
                "verdict": document["verdict"],
                "judge": document["judge"],
                "category": document["a"]["tool"]["category"],
            }
        )

    rankings: list[dict[str, Any]] = []
    ranks: dict[str, dict[str, Any]] = {}
    cards = store.tools()
    shown = {frozenset((a, b)) for a, b, _created in compared}
    for category in categories(cards):
        document = ranking(cards, judgments, category, shown)
        if document["pairs"]:
            href = f"rank/{category_slug(category)}.html"
            write_atomic(out / href, pages.rank_html(document))
            rankings.append({**_ranking_summary(document), "href": href})
            ranks.update(_ranks_of(document, href))

    site = {
        "title": SITE_TITLE,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "base_url": base_url,
        "comparisons": entries,
        "tools": [_summary(doc) for doc in tools.values()],
        "rankings": rankings,
    }
    for slug, document in tools.items():
        mine = [e for e in entries if slug in (e["a"]["slug"], e["b"]["slug"])]
        page = pages.tool_html(document, mine, ranks.get(slug))
        write_atomic(out / "tools" / f"{slug}.html", page)
    write_script(out)
    write_atomic(out / "index.html", pages.index_html(site))
    write_atomic(out / "feed.atom", pages.atom_feed(site))
    for category in categories(cards):
        write_atomic(out / pages.category_feed(category), pages.atom_feed(site, category))
    return {"comparisons": len(entries), "tools": len(tools), "rankings": len(rankings)}


def _ranks_of(document: dict[str, Any], href: str) -> dict[str, dict[str, Any]]:
    """Return, by slug, what a tool's page shows of its place in its category's ranking."""
    entries = document["tools"]
    size = Counter(entry["tier"] for entry in entries)
    return {
        entry["slug"]: {
            **entry,
            "of": len(entries),
            "tier_size": size[entry["tier"]],
            "href": f"../{href}",
        }
        for entry in entries
    }


def _ranking_summary(document: dict[str, Any]) -> dict[str, Any]:
    """Return what the index shows of a category's ranking: what it rests on, and its top."""
    return {
        "category": document["category"],
        "pairs": document["pairs"],
        "judgments": document["judgments"],
        "ranked": len(document["tools"]),
        "unranked": len(document["unranked"]),
        "top": document["tools"][0]["name"] if document["tools"] else None,
        "settled": document["settled"],
        "judge": document["judge"],
    }
