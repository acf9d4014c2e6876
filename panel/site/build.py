"""The static site, built from the store and rebuilt only where it changed.

Every page records the mark of what it was made from (the tools' cards, reviews and votes, the
pair judgments, its place in a listing, the templates and the panel's personas) in a manifest in
the output folder (MANIFEST, a dotfile `panel serve` never serves). A build renders the pages
whose mark changed and removes the pages whose subject is gone; `full` renders every page.
The same store gives the same bytes either way: no page holds the clock.

A run that knows what it changed (the tools whose reviews it stored, the pairs it compared or
judged: `Changed`) refreshes from that instead of comparing every mark: the pages that can show
what changed (its comparisons, their tools' pages, the listing pages and search shards that
hold them, the newest page of each listing, the rankings of their categories, the index, the
feeds and, when pages were added, the sitemap) are marked as a full build would mark them and
rendered where their mark moved; no other page is looked at, so the refresh costs what changed,
not the catalogue. A change that could move pages it cannot see (a tool's category renamed or
moved) falls back to comparing every mark.

Listings are numbered from the oldest item (page 1 holds the first PAGE_SIZE comparisons made),
so a new comparison changes the newest page of its listings only; each page shows its items
newest first. The feeds hold the newest FEED_SIZE; the sitemap (with a base URL) splits into a
sitemap index past SITEMAP_LIMIT addresses; the search index is JSON in shards of SEARCH_SHARD
tools, read by search.js when a visitor searches.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cache, partial
from operator import attrgetter
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from panel import pages
from panel.compare import page_texts, write_script
from panel.files import json_text, write_atomic
from panel.personas import Persona
from panel.site.catalogue import Catalogue, Pair, digest, iso, ranking_summary
from panel.store import Store

SITE_TITLE = "panel · AI tool verdicts"
SCHEMA = "panel.site/2"
"""Part of every page's mark: changed when the code changes what the pages hold."""
MANIFEST = ".panel-site.json"
LOCK = ".panel-site.lock"
PAGE_SIZE = 50
LATEST = 20
"""Comparisons the index shows."""
LATEST_TOOLS = 10
"""Tools the index shows (the newest)."""
FEED_SIZE = 50
TOOL_COMPARISONS = 50
"""Comparisons a tool's page lists (the newest; its category's listings hold the rest)."""
SEARCH_SHARD = 500
SITEMAP_LIMIT = 50_000
"""Addresses a sitemap may hold (sitemaps.org); past it, sitemap.xml is a sitemap index."""
NEVER = 0.0
"""The time of a page with nothing in it."""


class Page(NamedTuple):
    """A page of the site: its path, the mark of what it is made from, how its files' texts
    are made, and the suffixes of its other files (a comparison's .md and .json beside its
    .html)."""

    path: str
    mark: str
    render: Callable[[], tuple[str, ...]]
    others: tuple[str, ...] = ()

    @property
    def files(self) -> list[str]:
        return _files(self.path, self.others)


@dataclass(frozen=True)
class Options:
    """What a build is asked for beyond the store: the public URL (absolute links in the feeds,
    and the sitemap) and the sitemap's limit."""

    base_url: str | None = None
    sitemap_limit: int = SITEMAP_LIMIT


@cache
def _templates_mark() -> str:
    files = sorted(pages.TEMPLATES.iterdir())
    return digest([(f.name, f.read_bytes()) for f in files if f.is_file()])


def _version(personas: list[Persona]) -> str:
    """Return the mark every page shares: the code's schema, the templates, the panel."""
    panel = [(p.key, p.display_name, p.order) for p in personas]
    return digest(SCHEMA, _templates_mark(), panel)


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    """Return items in pages of size, one empty page when there is none."""
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


_pair_mark = attrgetter("mark")
_OTHERS = (".md", ".json")
"""The files of a comparison beside its HTML page."""


@dataclass(frozen=True)
class Changed:
    """What a run changed in the store: the tools whose card or reviews it stored, and the pairs
    it compared or judged (each a frozenset of two slugs)."""

    tools: frozenset[str] = frozenset()
    pairs: frozenset[frozenset[str]] = frozenset()


@dataclass
class Scope:
    """The pages a refresh from a Changed looks at (see the module docstring)."""

    pairs: list[Pair]
    tools: set[str]
    categories: set[str]
    """Categories whose ranking is looked at."""
    listed: dict[str, set[int]]
    """By listing folder, the numbers of its pages looked at."""
    shards: set[int]
    sitemap: bool


class SitePages:
    """Every page of the site, with its mark (see the module docstring); with a scope, only the
    pages it names."""

    def __init__(self, catalogue: Catalogue, options: Options, scope: Scope | None = None) -> None:
        self.cat = catalogue
        self.options = options
        self.scope = scope

    def mark(self, *parts: object) -> str:
        return digest(*parts)

    def pages(self) -> Iterator[Page]:
        yield from self._comparisons()
        yield from self._tools()
        yield from self._rankings()
        yield from self._listings()
        yield self._index()
        yield from self._feeds()
        yield from self._search()
        if self.options.base_url and (self.scope is None or self.scope.sitemap):
            yield from self._sitemap()

    # --- comparisons, tools, rankings ----------------------------------------------------------

    def _comparisons(self) -> Iterator[Page]:
        render = self._comparison
        for pair in self.cat.comparisons if self.scope is None else self.scope.pairs:
            yield Page(f"compare/{pair.slug}.html", pair.mark, partial(render, pair), _OTHERS)

    def _comparison(self, pair: Pair) -> tuple[str, ...]:
        return tuple(page_texts(self.cat.comparison(pair)).values())

    def _tools(self) -> Iterator[Page]:
        slugs = self.cat.tools if self.scope is None else sorted(self.scope.tools)
        for slug in slugs:
            tool, mine = self.cat.tools[slug], self.cat.of_tool[slug]
            shown = mine[:TOOL_COMPARISONS]
            ranked = self.cat.rank_mark(self.cat.category_of(slug))
            marks = [p.mark for p in shown]
            mark = self.mark("tool", tool.mark, marks, len(mine), ranked)
            yield Page(f"tools/{slug}.html", mark, partial(self._tool, slug, shown))

    def _tool(self, slug: str, shown: list[Pair]) -> tuple[str, ...]:
        category = self.cat.category_of(slug)
        rank = None
        if self.cat.rank_mark(category):
            rank = self.cat.ranks(category, f"rank/{category}.html").get(slug)
        listing = f"../category/{category}/index.html"
        more = {"total": len(self.cat.of_tool[slug]), "href": listing}
        entries = [self.cat.entry(p) for p in shown]
        return (pages.tool_html(self.cat.tool_document(slug), entries, rank, more),)

    def _rankings(self) -> Iterator[Page]:
        for category in self.cat.categories if self.scope is None else self.scope.categories:
            ranked = self.cat.rank_mark(category)
            if ranked:
                render = partial(self._ranking, category)
                yield Page(f"rank/{category}.html", _rank_page_mark(ranked), render)

    def _ranking(self, category: str) -> tuple[str, ...]:
        return (pages.rank_html(self.cat.ranking(category)),)

    # --- listings ------------------------------------------------------------------------------

    def _pages_of(self, category: str | None) -> int:
        """Return the number of the newest page of a listing of comparisons (all, or one
        category's)."""
        listed = self.cat.comparisons if category is None else self.cat.listed[category]
        return max(1, -(-len(listed) // PAGE_SIZE))

    def _listings(self) -> Iterator[Page]:
        compared, every = _pair_mark, partial(self._pair_page, None)
        yield from self._paged(
            "browse/comparisons", self.cat.comparisons[::-1], compared, None, every
        )
        for category, listed in self.cat.listed.items():
            # A category's pages show its name as spelled and link to its ranking, if any.
            shows = (self.cat.categories[category], bool(self.cat.rank_mark(category)))
            render = partial(self._pair_page, category)
            yield from self._paged(f"category/{category}", listed[::-1], compared, shows, render)
        tools = list(self.cat.tools)
        yield from self._paged("browse/tools", tools, self._tool_mark, None, self._tool_listing)

    def _tool_mark(self, slug: str) -> tuple[str, int]:
        return self.cat.tools[slug].mark, len(self.cat.of_tool[slug])

    def _paged(
        self,
        folder: str,
        items: list[Any],
        item_mark: Callable[[Any], object],
        shows: object,
        render: Callable[[int, bool, list[Any]], tuple[str, ...]],
    ) -> Iterator[Page]:
        """Yield the pages of a listing of comparisons or tools (oldest first), then its
        index.html, the newest page again under a name that stays; `shows` is what its pages
        show beside their items."""
        chunks = _chunks(items, PAGE_SIZE)
        numbers: Sequence[int] = range(1, len(chunks) + 1)
        if self.scope is not None:
            numbers = sorted(n for n in self.scope.listed.get(folder, ()) if 0 < n <= len(chunks))
            if not numbers:
                return
        for number in numbers:
            chunk, newer = chunks[number - 1], number < len(chunks)
            marks = [item_mark(item) for item in chunk]
            mark = self.mark("list", folder, shows, number, newer, marks)
            page = Page(f"{folder}/{number}.html", mark, partial(render, number, newer, chunk))
            yield page
        if number == len(chunks):
            yield page._replace(path=f"{folder}/index.html")

    def _listing(self, number: int, newer: bool, **fields: Any) -> dict[str, Any]:
        return {
            "number": number,
            "first": (number - 1) * PAGE_SIZE + 1,
            "newer": f"{number + 1}.html" if newer else None,
            "older": f"{number - 1}.html" if number > 1 else None,
            **fields,
        }

    def _pair_page(
        self, category: str | None, number: int, newer: bool, chunk: list[Pair]
    ) -> tuple[str, ...]:
        name = None if category is None else self.cat.categories[category]
        listing = self._listing(
            number,
            newer,
            kind="comparisons",
            category=name,
            title=f"{name} comparisons" if name else "Every comparison",
            entries=[self.cat.entry(p) for p in reversed(chunk)],
            ranking=f"rank/{category}.html" if category and self.cat.rank_mark(category) else None,
        )
        return (pages.listing_html(listing),)

    def _tool_listing(self, number: int, newer: bool, chunk: list[str]) -> tuple[str, ...]:
        listing = self._listing(
            number,
            newer,
            kind="tools",
            category=None,
            title="Every tool",
            entries=[self.cat.tool_summary(slug) for slug in reversed(chunk)],
            ranking=None,
        )
        return (pages.listing_html(listing),)

    # --- the index and the feeds ---------------------------------------------------------------

    def _categories(self) -> list[dict[str, Any]]:
        counts = self.cat.tools_in
        return [
            {
                "name": name,
                "slug": category,
                "tools": counts[category],
                "comparisons": len(self.cat.listed[category]),
                "href": f"category/{category}/index.html",
                "feed": pages.category_feed(name),
                "ranking": f"rank/{category}.html" if self.cat.rank_mark(category) else None,
            }
            for category, name in self.cat.categories.items()
        ]

    def _index(self) -> Page:
        latest = self.cat.comparisons[:LATEST]
        ranks = [(c, self.cat.rank_mark(c)) for c in self.cat.categories]
        newest = max((t.updated for t in self.cat.tools.values()), default=NEVER)
        mark = self.mark(
            "index",
            [p.mark for p in latest],
            self._categories(),
            ranks,
            [self._tool_mark(s) for s in list(self.cat.tools)[-LATEST_TOOLS:]],
            len(self.cat.comparisons),
            newest,
        )
        return Page("index.html", mark, partial(self._index_page, latest, newest))

    def _index_page(self, latest: list[Pair], newest: float) -> tuple[str, ...]:
        rankings = [
            ranking_summary(self.cat.ranking(c), f"rank/{c}.html")
            for c in self.cat.categories
            if self.cat.rank_mark(c)
        ]
        site = {
            "title": SITE_TITLE,
            "generated_at": iso(newest),
            "base_url": self.options.base_url,
            "comparisons": [self.cat.entry(p) for p in latest],
            "rankings": rankings,
            "categories": self._categories(),
            "tool_count": len(self.cat.tools),
            "comparison_count": len(self.cat.comparisons),
            "tools": [self.cat.tool_summary(s) for s in list(self.cat.tools)[-LATEST_TOOLS:][::-1]],
            "tools_href": "browse/tools/index.html",
            "comparisons_href": "browse/comparisons/index.html",
        }
        return (pages.index_html(site),)

    def _feeds(self) -> Iterator[Page]:
        yield self._feed(None, self.cat.comparisons[:FEED_SIZE])
        for category in self.cat.categories:
            yield self._feed(category, self.cat.listed[category][:FEED_SIZE])

    def _feed(self, category: str | None, items: list[Pair]) -> Page:
        name = None if category is None else self.cat.categories[category]
        path = "feed.atom" if name is None else pages.category_feed(name)
        marks = [p.mark for p in items]
        mark = self.mark("feed", name, self.options.base_url, marks)
        return Page(path, mark, partial(self._feed_text, name, items))

    def _feed_text(self, name: str | None, items: list[Pair]) -> tuple[str, ...]:
        entries = [self.cat.entry(p) for p in items]
        newest = max((self.cat.updated(p) for p in items), default=NEVER)
        site = {
            "title": SITE_TITLE,
            "generated_at": iso(newest),
            "base_url": self.options.base_url,
            "comparisons": entries,
        }
        return (pages.atom_feed(site, name, filtered=True),)

    # --- search and the sitemap ----------------------------------------------------------------

    def _search(self) -> Iterator[Page]:
        categories = list(self.cat.categories.values())
        chunks = _chunks(list(self.cat.tools), SEARCH_SHARD)
        shards = [f"search/tools-{n}.json" for n in range(1, len(chunks) + 1)]
        meta = {"schema": "panel.search/1", "shards": shards, "categories": categories}
        yield Page("search.html", self.mark(categories), lambda: (pages.search_html(categories),))
        yield Page("search/index.json", self.mark(meta), lambda: (json_text(meta),))
        for number, (path, chunk) in enumerate(zip(shards, chunks, strict=True)):
            if self.scope is not None and number not in self.scope.shards:
                continue
            marks = [(self.cat.tools[s].mark, len(self.cat.of_tool[s])) for s in chunk]
            yield Page(path, self.mark("shard", marks), partial(self._shard, path, chunk))

    def _shard(self, path: str, chunk: list[str]) -> tuple[str, ...]:
        kept = self._rows_kept(path)
        rows = [kept.get(slug) or pages.search_row(self.cat.tool_summary(slug)) for slug in chunk]
        return (orjson.dumps({"fields": pages.SEARCH_FIELDS, "tools": rows}).decode() + "\n",)

    def _rows_kept(self, path: str) -> dict[str, list[Any]]:
        """Return, by slug, the rows of a search shard as the site holds it, of the tools a
        refresh does not look at (they are as they were: a refresh looks at every tool whose
        card, reviews or comparisons changed); none in a build that compares every mark."""
        if self.scope is None or self.cat.current is None:
            return {}
        try:
            found = orjson.loads((self.cat.current / path).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}
        if not isinstance(found, dict) or found.get("fields") != pages.SEARCH_FIELDS:
            return {}
        rows = [row for row in found.get("tools", []) if isinstance(row, list) and row]
        return {row[0]: row for row in rows if row[0] not in self.scope.tools}

    def _addresses(self) -> dict[str, list[str]]:
        """Return every page's address by kind, each kind in an order that new pages extend."""
        listings = [f"browse/comparisons/{n}.html" for n in range(1, self._pages_of(None) + 1)]
        for category in self.cat.categories:
            listings += [
                f"category/{category}/{n}.html" for n in range(1, self._pages_of(category) + 1)
            ]
        tool_pages = max(1, -(-len(self.cat.tools) // PAGE_SIZE))
        listings += [f"browse/tools/{n}.html" for n in range(1, tool_pages + 1)]
        ranks = [f"rank/{c}.html" for c in self.cat.categories if self.cat.rank_mark(c)]
        return {
            "pages": ["index.html", "search.html", *ranks, *listings],
            "tools": [f"tools/{slug}.html" for slug in self.cat.tools],
            "compare": [f"compare/{p.slug}.html" for p in reversed(self.cat.comparisons)],
        }

    def _sitemap(self) -> Iterator[Page]:
        base = (self.options.base_url or "").rstrip("/") + "/"
        kinds = self._addresses()
        limit = self.options.sitemap_limit
        if sum(len(urls) for urls in kinds.values()) <= limit:
            every = [url for urls in kinds.values() for url in urls]
            yield self._urlset("sitemap.xml", base, every)
            return
        shards = []
        for kind, urls in kinds.items():
            for number, chunk in enumerate(_chunks(urls, limit), 1):
                shards.append(f"sitemaps/{kind}-{number}.xml")
                yield self._urlset(shards[-1], base, chunk)
        yield Page(
            "sitemap.xml",
            self.mark("sitemap-index", base, shards),
            lambda: (pages.sitemap_index_xml(base, shards),),
        )

    def _urlset(self, path: str, base: str, urls: list[str]) -> Page:
        mark = self.mark("urlset", base, urls)
        return Page(path, mark, lambda: (pages.sitemap_xml(base, urls),))


def scope_of(cat: Catalogue, changed: Changed, found: dict[str, Any]) -> Scope | None:
    """Return the pages a refresh from changed looks at, given the manifest found (see the
    module docstring); None where every mark must be compared: the manifest does not say which
    categories the site shows, or one of them is gone or spelled anew, or a tool moved."""
    shown_before = found.get("categories")
    if not isinstance(shown_before, dict) or any(
        cat.categories.get(key) != name for key, name in shown_before.items()
    ):
        return None
    spelled = found.get("tools") or {}
    tools = {slug for slug in changed.tools if slug in cat.tools}
    if any(
        spelled.get(slug, cat.tools[slug].category) != cat.tools[slug].category for slug in tools
    ):
        return None
    pairs = {p.slug: p for slug in tools for p in cat.of_tool[slug]}
    for key in changed.pairs:
        first = min(key)
        pairs.update((p.slug, p) for p in cat.of_tool.get(first, ()) if {p.a, p.b} == key)
    shown = tools | {p.a for p in pairs.values()} | {p.b for p in pairs.values()}
    before = found.get("pages", {})
    judged = {slug for key in changed.pairs for slug in key if slug in cat.tools}
    categories = {cat.category_of(slug) for slug in shown | judged}
    listed: dict[str, set[int]] = {}
    flipped = False
    for category in categories:
        ranked, line = cat.rank_mark(category), before.get(f"rank/{category}.html")
        if (ranked is None) != (line is None):  # its listings link to the ranking, or stop
            listed[f"category/{category}"] = set(range(1, len(cat.listed[category]) + 2))
            flipped = True
        if ranked is not None and (line is None or line[0] != _rank_page_mark(ranked)):
            shown.update(cat.members[category])
    touched = list(pairs.values())
    _place(listed, "browse/comparisons", cat.comparisons, touched)
    for category in {cat.category_of(slug) for p in touched for slug in (p.a, p.b)}:
        mine = [p for p in touched if category in (cat.category_of(p.a), cat.category_of(p.b))]
        _place(listed, f"category/{category}", cat.listed[category], mine)
    order = {slug: n for n, slug in enumerate(cat.tools)}
    places = [order[slug] for slug in shown]
    last = max(0, len(order) - 1)
    listed["browse/tools"] = {n // PAGE_SIZE + 1 for n in [*places, last, last - PAGE_SIZE]}
    added = [f"compare/{p.slug}.html" for p in touched] + [f"tools/{s}.html" for s in shown]
    return Scope(
        pairs=touched,
        tools=shown,
        categories=categories,
        listed=listed,
        shards={n // SEARCH_SHARD for n in places},
        sitemap=flipped or any(path not in before for path in added),
    )


def _rank_page_mark(ranked: str) -> str:
    """Return the mark of a category's ranking page from the ranking's mark."""
    return digest("rank", ranked)


def _place(
    listed: dict[str, set[int]], folder: str, items: list[Pair], touched: list[Pair]
) -> None:
    """Add to listed[folder] the numbers of the pages of a listing (items newest first, its
    pages numbered from the oldest) that hold the touched items, and its two newest pages (a
    new item may start a page, and the one before it then links to it)."""
    if not touched:
        return
    wanted = set(touched)  # the catalogue's own Pair objects, each one of a kind
    count = len(items)
    numbers = listed.setdefault(folder, set())
    numbers |= {(count - 1 - n) // PAGE_SIZE + 1 for n, p in enumerate(items) if p in wanted}
    newest = max(1, -(-count // PAGE_SIZE))
    numbers |= {newest, newest - 1}


def _files(key: str, others: Sequence[str]) -> list[str]:
    """Return the files of a page from its path and the suffixes of its other files."""
    stem = key.rsplit(".", 1)[0]
    return [key, *(stem + suffix for suffix in others)]


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold the output folder's build lock: one build or refresh writes it at a time."""
    with (out / LOCK).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _manifest(out: Path) -> dict[str, Any]:
    """Return the manifest of the site in out ({} when there is none, or it is unreadable)."""
    try:
        found = orjson.loads((out / MANIFEST).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return found if isinstance(found, dict) and found.get("schema") == SCHEMA else {}


def has_site(out: Path) -> bool:
    """Return whether out holds a site built by `panel site build`."""
    return bool(_manifest(out))


def site_options(found: dict[str, Any]) -> Options:
    """Return the options a site was last built with (the defaults if none), from its manifest."""
    return Options(found.get("base_url"), int(found.get("sitemap_limit", SITEMAP_LIMIT)))


def build_site(
    store: Store,
    personas: list[Persona],
    out: Path,
    base_url: str | None = None,
    *,
    full: bool = False,
    sitemap_limit: int = SITEMAP_LIMIT,
    changed: Changed | None = None,
) -> dict[str, int]:
    """Bring the site under out up to date with the store: render every page whose inputs
    changed since it was written (every page with full), remove the pages whose subject is
    gone; return how many comparisons, tools and rankings it holds and how many pages were
    written and removed. With changed (what a run stored), look only at the pages that can
    show it (see the module docstring)."""
    options = Options(base_url, sitemap_limit)
    built = _build(store, personas, out, lambda _found: options, full=full, changed=changed)
    assert built is not None  # a build makes the site it does not find
    return built


def update_site(
    store: Store, personas: list[Persona], out: Path, changed: Changed | None = None
) -> dict[str, int]:
    """Bring the site under out up to date with the options it was last built with (its base
    URL, its sitemap's limit; the defaults for a new site): what `panel serve` keeps; with
    changed, from what a run changed."""
    built = _build(store, personas, out, site_options, changed=changed)
    assert built is not None
    return built


def refresh_site(
    db: str | Path, personas: list[Persona], out: Path, changed: Changed | None = None
) -> dict[str, int] | None:
    """Bring the site under out up to date after a run changed the store (review, compare,
    queue run), from what it changed where it says, with the options it was last built with;
    None (nothing done) where out holds no site: `panel site build` makes one."""
    if not (out / MANIFEST).is_file():
        return None
    store = Store(db, write=False)
    try:
        return _build(store, personas, out, site_options, changed=changed, built_only=True)
    finally:
        store.close()


def _build(
    store: Store,
    personas: list[Persona],
    out: Path,
    options_of: Callable[[dict[str, Any]], Options],
    *,
    full: bool = False,
    changed: Changed | None = None,
    built_only: bool = False,
) -> dict[str, int] | None:
    """Build the site under out (see build_site) with the options options_of gives from its
    manifest, read once, under the build lock; with built_only, None where there is no site."""
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        found = _manifest(out)
        if built_only and not found:
            return None
        options = options_of(found)
        before: dict[str, list[str]] = found.get("pages", {})
        version = _version(personas)
        # Another panel or other templates: every page is out of date.
        full = full or found.get("version") != version
        catalogue = Catalogue(store, personas, None if full else out)
        scope = None if full or changed is None else scope_of(catalogue, changed, found)
        site = SitePages(catalogue, options, scope)
        after: dict[str, list[str]] = dict(before) if scope is not None else {}
        written = 0
        for page in site.pages():
            line = before.get(page.path)
            after[page.path] = [page.mark, *page.others]
            if full or line is None or line[0] != page.mark:
                for name, text in zip(page.files, page.render(), strict=True):
                    write_atomic(out / name, text)
                written += 1
        gone = [_files(key, entry[1:]) for key, entry in before.items() if key not in after]
        for files in gone:
            for name in files:
                (out / name).unlink(missing_ok=True)
        write_script(out)
        manifest = {
            "schema": SCHEMA,
            "version": version,
            **asdict(options),
            "categories": catalogue.categories,
            "tools": {slug: tool.category for slug, tool in catalogue.tools.items()},
            "pages": after,
        }
        if written or gone or {**found, "pages": before} != manifest:
            write_atomic(out / MANIFEST, orjson.dumps(manifest).decode())
    return {
        "comparisons": len(catalogue.comparisons),
        "tools": len(catalogue.tools),
        "rankings": sum(1 for c in catalogue.categories if catalogue.rank_mark(c)),
        "written": written,
        "removed": len(gone),
    }
