"""What the site shows, read from the store: every tool's and comparison's mark (a digest of what
its pages are made from, read for the whole catalogue in a few statements) and, for the pages a
build renders, their documents, each read once and only when a page needs it.

Every time a page shows is a time of its inputs (the newest review, judgment or comparison it
rests on), never the clock: the same store renders the same bytes, whenever and however often
the site is built.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from panel.cards import ToolCard, category_slug
from panel.compare import community_of, comparison_document, comparison_slug
from panel.personas import Persona
from panel.rank import ranking
from panel.results import tool_document
from panel.store import Store, StoredPair, ToolMark

BULK_JUDGMENTS = 64
"""Pairs whose judgments are read one pair at a time (an index look-up each); past this many
in one build, every judgment is read at once."""


def digest(*parts: object) -> str:
    """Return a short digest of parts (their repr): what a page records of its inputs."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()


def iso(timestamp: float) -> str:
    """Return epoch seconds as the ISO time the documents hold."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")


class Tool(NamedTuple):
    """A tool as the listings see it: its name, category, when it was added, its mark and the
    time of its newest input."""

    slug: str
    name: str
    category: str
    group: str
    """Its category as a file name (category_slug): what the listings group by."""
    created_at: float
    mark: str
    updated: float


class Pair:
    """A stored comparison: its two tools, when it was made, and (made when first asked: a
    refresh asks for a few of 100,000) its page's name and its mark, a digest of both tools'
    marks, the pair's judgments and its age (what its pages show of it)."""

    __slots__ = ("_catalogue", "_mark", "_slug", "a", "b", "created_at")

    def __init__(self, a: str, b: str, created_at: float, catalogue: Catalogue) -> None:
        self.a, self.b, self.created_at = a, b, created_at
        self._catalogue = catalogue
        self._slug: str | None = None
        self._mark: str | None = None

    @property
    def slug(self) -> str:
        if self._slug is None:
            self._slug = comparison_slug(self.a, self.b)
        return self._slug

    @property
    def mark(self) -> str:
        if self._mark is None:
            self._mark = self._catalogue.pair_mark(self.a, self.b, self.created_at)
        return self._mark


def _tool(mark: ToolMark) -> Tool:
    card = orjson.loads(mark.card)
    category = card.get("category") or "Developer Tools"
    return Tool(
        slug=mark.slug,
        name=card["name"],
        category=category,
        group=category_slug(category),
        created_at=mark.created_at,
        mark=digest(mark.card_hash, mark.created_at, mark.updated_at, mark.reviews, mark.votes),
        updated=max(mark.updated_at, mark.reviews[1]),
    )


class Catalogue:
    """The store as one site build reads it (see the module docstring)."""

    def __init__(self, store: Store, personas: list[Persona], current: Path | None = None) -> None:
        """current: the site whose comparison documents (compare/*.json) are as their marks
        say, to read listings' entries from (None: make every entry)."""
        self.store = store
        self.current = current
        self.personas = personas
        self._keys = {p.key for p in personas}
        marks = store.tool_marks()
        self._votes = {m.slug: m.votes for m in marks}
        self.tools = {m.slug: _tool(m) for m in marks}
        """Every tool, oldest first."""
        self.judged = store.pair_marks()
        tools = self.tools
        self.comparisons = [
            Pair(a, b, created, self)
            for a, b, created in store.comparisons()
            if a in tools and b in tools
        ]
        """Every comparison of two stored tools, newest first."""
        self._documents: dict[str, dict[str, Any]] = {}
        self._entries: dict[str, dict[str, Any]] = {}
        self._judgments: dict[frozenset[str], list[StoredPair]] | None = None
        self._asked = 0
        self._rankings: dict[str, dict[str, Any]] = {}
        self._rank_marks: dict[str, str | None] = {}

    # --- how the catalogue is arranged ---------------------------------------------------------

    @cached_property
    def of_tool(self) -> dict[str, list[Pair]]:
        """Return each tool's comparisons, newest first."""
        found: dict[str, list[Pair]] = {slug: [] for slug in self.tools}
        for pair in self.comparisons:
            found[pair.a].append(pair)
            found[pair.b].append(pair)
        return found

    @cached_property
    def categories(self) -> dict[str, str]:
        """Return every category, by its file name, as first spelled (tools by slug), by name."""
        seen: dict[str, str] = {}
        for slug in sorted(self.tools):
            name = self.tools[slug].category
            seen.setdefault(category_slug(name), name)
        return dict(sorted(seen.items(), key=lambda item: item[1].casefold()))

    def pair_mark(self, a: str, b: str, created_at: float) -> str:
        """Return the mark of the comparison of a and b made at created_at (see Pair)."""
        judged = self.judged.get(frozenset((a, b))) if self.judged else None
        inputs = f"{self.tools[a].mark}/{self.tools[b].mark}/{judged}/{created_at!r}"
        return hashlib.blake2b(inputs.encode(), digest_size=12).hexdigest()

    def category_of(self, slug: str) -> str:
        """Return the file name of a tool's category."""
        return self.tools[slug].group

    @cached_property
    def listed(self) -> dict[str, list[Pair]]:
        """Return each category's comparisons (those of a tool of it), newest first."""
        found: dict[str, list[Pair]] = {category: [] for category in self.categories}
        group = {slug: tool.group for slug, tool in self.tools.items()}
        for pair in self.comparisons:
            first, second = group[pair.a], group[pair.b]
            found[first].append(pair)
            if second != first:
                found[second].append(pair)
        return found

    @cached_property
    def tools_in(self) -> Counter[str]:
        """Return how many tools each category has."""
        return Counter(self.category_of(slug) for slug in self.tools)

    @cached_property
    def members(self) -> dict[str, list[str]]:
        """Return each category's tools, by slug, in slug order."""
        found: dict[str, list[str]] = {category: [] for category in self.categories}
        for slug in sorted(self.tools):
            found[self.category_of(slug)].append(slug)
        return found

    # --- marks ---------------------------------------------------------------------------------

    def updated(self, pair: Pair) -> float:
        """Return the time of a comparison's newest input."""
        judged = self.judged.get(frozenset((pair.a, pair.b)), (0, 0.0, 0))
        return max(self.tools[pair.a].updated, self.tools[pair.b].updated, judged[1])

    @cached_property
    def shown(self) -> set[frozenset[str]]:
        """Return the pairs the site compares."""
        return {frozenset((p.a, p.b)) for p in self.comparisons}

    @cached_property
    def _judged_in(self) -> dict[str, list[tuple[str, ...]]]:
        """Return, by category, the judged pairs of two of its tools with their marks."""
        found: dict[str, list[tuple[str, ...]]] = {}
        for pair, judged in self.judged.items():
            a, b = sorted(pair)
            if a in self.tools and b in self.tools and self.category_of(a) == self.category_of(b):
                found.setdefault(self.category_of(a), []).append((a, b, repr(judged)))
        return found

    def rank_mark(self, category: str) -> str | None:
        """Return the mark of a category's ranking (None: no pair of its tools was judged):
        its judged pairs, its tools and which pairs the site compares."""
        if category not in self._rank_marks:
            self._rank_marks[category] = self._rank_mark(category)
        return self._rank_marks[category]

    def _rank_mark(self, category: str) -> str | None:
        judged = self._judged_in.get(category)
        if not judged:
            return None
        members = self.members[category]
        compared = [frozenset(j[:2]) in self.shown for j in judged]
        return digest(sorted(judged), [self.tools[s].mark for s in members], compared)

    # --- documents -----------------------------------------------------------------------------

    def card(self, slug: str) -> ToolCard:
        card = self.store.get_tool(slug)
        assert card is not None, slug  # every tool of the catalogue is stored
        return card

    def tool_document(self, slug: str) -> dict[str, Any]:
        """Return a tool's review document, with its community votes."""
        if slug not in self._documents:
            latest = self.store.latest_reviews(slug)
            reviews = [r for k, found in latest.items() if k in self._keys for r in found]
            self._documents[slug] = {
                **tool_document(self.card(slug), reviews, self.personas),
                "community": community_of(*self._votes[slug]),
            }
        return self._documents[slug]

    def judgments(self, pair: Pair) -> list[StoredPair]:
        """Return the newest judgments of a pair by the panel's personas: one look-up per pair,
        or every judgment read at once when a build needs many pairs (BULK_JUDGMENTS)."""
        key = frozenset((pair.a, pair.b))
        if key not in self.judged:
            return []
        self._asked += 1
        if self._judgments is None and self._asked <= BULK_JUDGMENTS:
            found = self.store.latest_pairs((pair.a, pair.b))
            return [j for j in found if j.persona in self._keys]
        return self._all_judgments().get(key, [])

    def _all_judgments(self) -> dict[frozenset[str], list[StoredPair]]:
        if self._judgments is None:
            self._judgments = {}
            for j in self.store.latest_pairs():
                if j.persona in self._keys:
                    self._judgments.setdefault(frozenset((j.first, j.second)), []).append(j)
        return self._judgments

    @cached_property
    def _judgments_in(self) -> dict[str, list[StoredPair]]:
        """Return, by category, the judgments of two of its tools: each read once a build,
        however many categories are ranked."""
        found: dict[str, list[StoredPair]] = {category: [] for category in self.categories}
        for judgments in self._all_judgments().values():
            for j in judgments:
                if j.first in self.tools and j.second in self.tools:
                    category = self.category_of(j.first)
                    if category == self.category_of(j.second):
                        found[category].append(j)
        return found

    def comparison(self, pair: Pair) -> dict[str, Any]:
        """Return a comparison's document, dated by its newest input (and keep its entry)."""
        a, b = self.tool_document(pair.a), self.tool_document(pair.b)
        document = comparison_document(a, b, self.personas, self.store, self.judgments(pair))
        document["generated_at"] = iso(self.updated(pair))
        self._entries[pair.slug] = entry_of(document, pair.created_at)
        return document

    def entry(self, pair: Pair) -> dict[str, Any]:
        """Return what the listings, the tool pages and the feeds show of a comparison: from
        its document as rendered in this build, else as the site holds it (`current`: a page
        the build did not render is as its mark says), else made now."""
        found = self._entries.get(pair.slug)
        if found is None:
            document = self._current(pair)
            found = entry_of(document, pair.created_at) if document else self._entry_made(pair)
            self._entries[pair.slug] = found
        return found

    def _entry_made(self, pair: Pair) -> dict[str, Any]:
        self.comparison(pair)
        return self._entries[pair.slug]

    def _current(self, pair: Pair) -> dict[str, Any] | None:
        if self.current is None:
            return None
        try:
            found = orjson.loads((self.current / "compare" / f"{pair.slug}.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        return found if isinstance(found, dict) and found.get("slug") == pair.slug else None

    def tool_summary(self, slug: str) -> dict[str, Any]:
        """Return what the listings show of a tool, with its number of comparisons."""
        return {
            **summary(self.tool_document(slug)),
            "comparisons": len(self.of_tool[slug]),
            "created_at": iso(self.tools[slug].created_at),
        }

    def ranking(self, category: str) -> dict[str, Any]:
        """Return the ranking document of a category (see rank_mark), dated by its newest
        judgment."""
        if category not in self._rankings:
            members = self.members[category]
            judgments = self._judgments_in[category]
            cards = [self.card(s) for s in members]
            document = ranking(cards, judgments, self.tools[members[0]].category, self.shown)
            inside = set(members)
            newest = max(j.created_at for j in judgments if {j.first, j.second} <= inside)
            document["generated_at"] = iso(newest)
            self._rankings[category] = document
        return self._rankings[category]

    def ranks(self, category: str, href: str) -> dict[str, dict[str, Any]]:
        """Return, by slug, what a tool's page shows of its place in its category's ranking."""
        entries = self.ranking(category)["tools"]
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


def summary(document: dict[str, Any]) -> dict[str, Any]:
    """Return what a listing shows of a tool's review document."""
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


def ranking_summary(document: dict[str, Any], href: str) -> dict[str, Any]:
    """Return what the index shows of a category's ranking: what it rests on, and its top."""
    return {
        "category": document["category"],
        "href": href,
        "pairs": document["pairs"],
        "judgments": document["judgments"],
        "ranked": len(document["tools"]),
        "unranked": len(document["unranked"]),
        "top": document["tools"][0]["name"] if document["tools"] else None,
        "settled": document["settled"],
        "judge": document["judge"],
    }


def entry_of(document: dict[str, Any], created_at: float | str) -> dict[str, Any]:
    """Return what a listing shows of a comparison document (see Catalogue.entry), made at
    created_at (epoch seconds, or ISO)."""
    head_to_head = document["head_to_head"]
    shown = {"summary": head_to_head["summary"]}
    if "pairwise" in head_to_head:
        shown["pairwise"] = {"summary": head_to_head["pairwise"]["summary"]}
    return {
        "slug": document["slug"],
        "title": document["title"],
        "created_at": created_at if isinstance(created_at, str) else iso(created_at),
        "a": summary(document["a"]),
        "b": summary(document["b"]),
        "head_to_head": shown,
        "verdict": document["verdict"],
        "judge": document["judge"],
        "category": document["a"]["tool"]["category"],
    }
