"""The site built incrementally: a page is rewritten exactly when what it shows changed, a page
whose subject is gone is removed, and an incremental build gives the bytes of a full one; the
listings, feeds and sitemap at any size."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from panel.compare import comparison_slug
from panel.personas import Persona
from panel.site import Changed, build, build_site, has_site, refresh_site
from panel.site.catalogue import Catalogue
from panel.store import Store
from panel.testing import catalogue

ATOM = "{http://www.w3.org/2005/Atom}"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


def files(out: Path) -> dict[str, bytes]:
    """Return every file of a site by its path from the root, the build's dotfiles aside."""
    return {
        str(path.relative_to(out)): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


def changed(before: dict[str, bytes], after: dict[str, bytes]) -> set[str]:
    return {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}


def written(out: Path) -> dict[str, int]:
    """Return the inode of every file of a site: a file written again (through a temporary file
    and a rename) gets a new one, even if its bytes are the same."""
    return {str(p.relative_to(out)): p.stat().st_ino for p in out.rglob("*") if p.is_file()}


@pytest.fixture
def small(store: Store) -> Store:
    """A store of 12 tools and 30 comparisons."""
    catalogue.make(store, 12, 30)
    return store


def test_a_build_again_writes_nothing(
    small: Store, personas: list[Persona], tmp_path: Path
) -> None:
    out = tmp_path / "site"
    first = build_site(small, personas, out)
    assert first["comparisons"] == 30 and first["tools"] == 12 and first["written"] > 40
    before = files(out)
    assert build_site(small, personas, out)["written"] == 0
    assert files(out) == before


def test_one_changed_card_rewrites_exactly_the_pages_that_show_it(
    small: Store, personas: list[Persona], tmp_path: Path
) -> None:
    out = tmp_path / "site"
    build_site(small, personas, out)
    before, inodes = files(out), written(out)
    catalogue.edit(small, 3, "Does a new thing")
    build_site(small, personas, out)
    rewritten = {n for n, inode in written(out).items() if inodes.get(n) != inode}
    rewritten.discard(build.MANIFEST)

    mine = [(a, b) for a, b, _ in small.comparisons() if "tool-00003" in (a, b)]
    partners = {a if b == "tool-00003" else b for a, b in mine}
    compare = {
        f"compare/{a}-vs-{b}{suffix}" for a, b in mine for suffix in (".html", ".md", ".json")
    }
    tools = {f"tools/{slug}.html" for slug in partners | {"tool-00003"}}
    assert compare | tools <= rewritten
    others = {
        name
        for name in before
        if name.startswith(("compare/", "tools/")) and name not in compare | tools
    }
    assert not others & rewritten  # no other comparison or tool page
    # Beyond them, exactly the listings, feeds, index and search shard that show the tool.
    assert rewritten == {
        n for n, text in before.items() if b"tool-00003" in text or b"Tool 00003" in text
    }
    assert {n.split("/")[0] for n in rewritten - compare - tools} <= {
        "browse",
        "category",
        "feeds",
        "feed.atom",
        "index.html",
        "search",
    }


def test_incremental_and_full_builds_give_the_same_bytes(
    small: Store, personas: list[Persona], tmp_path: Path
) -> None:
    out = tmp_path / "site"
    build_site(small, personas, out)
    catalogue.edit(small, 5, "Edited once")
    catalogue.add_tools(small, [12, 13])
    catalogue.add_comparisons(small, [(12, 13), (0, 12)], catalogue.START + 500)
    small.save_vote("tool-00001", "ana", "ship")
    build_site(small, personas, out)
    fresh = tmp_path / "fresh"
    build_site(small, personas, fresh, full=True)
    assert files(out) == files(fresh)
    assert (out / build.MANIFEST).read_bytes() == (fresh / build.MANIFEST).read_bytes()
    # --full over a built site rewrites every page and changes no byte.
    again = build_site(small, personas, out, full=True)
    assert again["written"] == len(orjson.loads((out / build.MANIFEST).read_bytes())["pages"])
    assert files(out) == files(fresh)


def test_a_page_whose_subject_is_gone_is_removed(
    small: Store, personas: list[Persona], tmp_path: Path
) -> None:
    out = tmp_path / "site"
    build_site(small, personas, out)
    a, b, _ = small.comparisons()[0]
    gone = out / "compare" / f"{a}-vs-{b}.html"
    assert gone.exists()
    with small.transaction() as db:
        db.execute("DELETE FROM comparisons WHERE a = ? AND b = ?", (a, b))
    counts = build_site(small, personas, out)
    assert counts["removed"] == 1
    assert not gone.exists() and not gone.with_suffix(".md").exists()
    assert not gone.with_suffix(".json").exists()
    assert f"{a}-vs-{b}" not in (out / "index.html").read_text()


def test_listings_are_numbered_from_the_oldest_so_a_new_comparison_touches_the_newest_page(
    store: Store, personas: list[Persona], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "PAGE_SIZE", 3)
    catalogue.add_tools(store, range(8), categories=("Developer Tools",))
    pairs = [(0, n) for n in range(1, 8)]
    catalogue.add_comparisons(store, pairs, catalogue.START + 100)
    out = tmp_path / "site"
    build_site(store, personas, out)
    listing = out / "browse" / "comparisons"
    assert sorted(p.name for p in listing.iterdir()) == ["1.html", "2.html", "3.html", "index.html"]
    assert (listing / "index.html").read_text() == (listing / "3.html").read_text()
    first = (listing / "1.html").read_text()
    assert first.index("tool-00000-vs-tool-00003") < first.index("tool-00000-vs-tool-00001")
    assert 'href="2.html"' in first and "Older" not in first.replace("Oldest", "")
    before = files(out)
    catalogue.add_comparisons(store, [(1, 2)], catalogue.START + 200)
    build_site(store, personas, out)
    touched = {n for n in changed(before, files(out)) if n.startswith("browse/comparisons/")}
    assert touched == {"browse/comparisons/3.html", "browse/comparisons/index.html"}


def test_the_feeds_hold_the_newest_comparisons_and_the_index_stays_small(
    store: Store, personas: list[Persona], tmp_path: Path
) -> None:
    catalogue.make(store, 40, 120)
    out = tmp_path / "site"
    build_site(store, personas, out)
    feed = ET.parse(out / "feed.atom").getroot()
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == build.FEED_SIZE
    newest = [f"urn:panel:compare:{a}-vs-{b}" for a, b, _ in store.comparisons()[: build.FEED_SIZE]]
    assert [e.findtext(f"{ATOM}id") for e in entries] == newest
    for path in (out / "feeds").iterdir():
        assert 0 < len(ET.parse(path).getroot().findall(f"{ATOM}entry")) <= build.FEED_SIZE
    index = (out / "index.html").read_text()
    assert index.count('class="matchup card"') == build.LATEST
    assert 'href="category/design/index.html"' in index
    assert len(index.encode()) < 1_000_000


def test_the_sitemap_splits_into_an_index_past_its_limit(
    small: Store, personas: list[Persona], tmp_path: Path
) -> None:
    whole, split = tmp_path / "whole", tmp_path / "split"
    build_site(small, personas, whole, "https://example.org/site/")
    build_site(small, personas, split, "https://example.org/site/", sitemap_limit=10)
    single = ET.parse(whole / "sitemap.xml").getroot()
    assert single.tag == f"{SITEMAP}urlset"
    every = [loc.text for loc in single.iter(f"{SITEMAP}loc")]
    assert "https://example.org/site/tools/tool-00000.html" in every
    assert len(every) == len(set(every)) > 40
    top = ET.parse(split / "sitemap.xml").getroot()
    assert top.tag == f"{SITEMAP}sitemapindex"
    found = []
    for loc in top.iter(f"{SITEMAP}loc"):
        assert loc.text and loc.text.startswith("https://example.org/site/sitemaps/")
        shard = ET.parse(split / loc.text.removeprefix("https://example.org/site/")).getroot()
        urls = [u.text for u in shard.iter(f"{SITEMAP}loc")]
        assert 0 < len(urls) <= 10
        found += urls
    assert sorted(found) == sorted(every)
    for url in every:
        assert url and (whole / url.removeprefix("https://example.org/site/")).is_file()
    assert not (tmp_path / "plain").exists()
    build_site(small, personas, tmp_path / "plain")
    assert not (tmp_path / "plain" / "sitemap.xml").exists()  # no public URL, no sitemap


def test_the_search_index_holds_every_tool_in_shards(
    small: Store, personas: list[Persona], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "SEARCH_SHARD", 5)
    out = tmp_path / "site"
    build_site(small, personas, out)
    index = orjson.loads((out / "search" / "index.json").read_bytes())
    assert index["shards"] == ["search/tools-1.json", "search/tools-2.json", "search/tools-3.json"]
    rows = []
    for shard in index["shards"]:
        found = orjson.loads((out / shard).read_bytes())
        rows += [dict(zip(found["fields"], row, strict=True)) for row in found["tools"]]
    assert sorted(row["slug"] for row in rows) == [f"tool-{n:05d}" for n in range(12)]
    counted = {row["slug"]: row["comparisons"] for row in rows}
    assert sum(counted.values()) == 2 * 30


def test_refresh_keeps_a_built_site_current_and_leaves_other_folders_alone(
    small: Store, personas: list[Persona], tmp_path: Path
) -> None:
    out = tmp_path / "site"
    assert refresh_site(small.location, personas, out) is None and not has_site(out)
    build_site(small, personas, out, "https://example.org/")
    catalogue.add_tools(small, [12])
    catalogue.add_comparisons(small, [(0, 12)], catalogue.START + 900)
    counts = refresh_site(small.location, personas, out)
    assert counts is not None and counts["comparisons"] == 31
    tool_page = (out / "tools" / "tool-00000.html").read_text()
    assert "tool-00000-vs-tool-00012.html" in tool_page
    assert "tool-00000-vs-tool-00012.html" in (out / "index.html").read_text()
    assert "tool-00000-vs-tool-00012" in (out / "sitemap.xml").read_text()  # its options kept


def test_both_backends_build_the_same_site(
    db: str, personas: list[Persona], tmp_path: Path
) -> None:
    """The store's reads for the site (marks, a card's comparisons, a pair's judgments) on
    SQLite and PostgreSQL alike."""
    store = Store(db)
    try:
        catalogue.make(store, 8, 14)
        out = tmp_path / "site"
        build_site(store, personas, out)
        catalogue.edit(store, 2, "Edited")
        assert 0 < build_site(store, personas, out)["written"] < 40
        assert store.comparisons_of("tool-00002") == [
            c for c in store.comparisons() if "tool-00002" in c[:2]
        ]
        build_site(store, personas, tmp_path / "fresh", full=True)
        assert files(out) == files(tmp_path / "fresh")
    finally:
        store.close()


def _refresh_is_a_full_build(
    store: Store, personas: list[Persona], out: Path, fresh: Path, changed: Changed
) -> dict[str, int]:
    """Refresh the site in out from changed; check that it left nothing a full build would
    write (every mark matches) and holds the bytes of a full build; return the refresh's
    counts."""
    base = "https://example.org/site/"
    counts = build_site(store, personas, out, base, changed=changed)
    counts["scoped"] = SCOPES[-1] is not None
    again = build_site(store, personas, out, base)
    assert (again["written"], again["removed"]) == (0, 0)
    fresh = fresh / str(len(list(fresh.glob("*"))) if fresh.exists() else 0)  # a new folder
    build_site(store, personas, fresh, base, full=True)
    assert files(out) == files(fresh)
    return counts


def slug(number: int) -> str:
    return f"tool-{number:05d}"


SCOPES: list[build.Scope | None] = []
"""What build.scope_of returned, in order (None: every mark compared)."""


@pytest.fixture
def small_on_both(db: str) -> Iterator[Store]:
    """The small store, on SQLite and on PostgreSQL."""
    store = Store(db)
    try:
        catalogue.make(store, 12, 30)
        yield store
    finally:
        store.close()


def test_a_refresh_from_what_a_run_changed_gives_the_site_a_full_build_gives(
    small_on_both: Store, personas: list[Persona], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each kind of change a run makes, refreshed from what it says it changed (see
    build.scope_of), in listings of a few items a page and search shards of a few tools, on
    both backends."""
    small = small_on_both
    monkeypatch.setattr(build, "PAGE_SIZE", 4)
    monkeypatch.setattr(build, "SEARCH_SHARD", 5)
    scope_of = build.scope_of

    def recorded(*args: Any) -> build.Scope | None:
        SCOPES.append(scope_of(*args))
        return SCOPES[-1]

    monkeypatch.setattr(build, "scope_of", recorded)
    out, fresh = tmp_path / "site", tmp_path / "fresh"
    build_site(small, personas, out, "https://example.org/site/")
    # `panel review` of an edited card
    catalogue.edit(small, 3, "Does a new thing")
    done = _refresh_is_a_full_build(small, personas, out, fresh, Changed(frozenset({slug(3)})))
    assert 0 < done["written"] < 40 and done["scoped"]
    # `panel compare` of two stored tools not compared yet
    shown = {frozenset(c[:2]) for c in small.comparisons()}
    a, b = next(
        p for p in itertools.combinations(range(12), 2) if frozenset(map(slug, p)) not in shown
    )
    catalogue.add_comparisons(small, [(a, b)], catalogue.START + 1000)
    pair = frozenset({slug(a), slug(b)})
    assert _refresh_is_a_full_build(small, personas, out, fresh, Changed(pair, frozenset({pair})))[
        "scoped"
    ]
    # a queue run: new tools (one in a new category) with their reviews and comparisons
    catalogue.add_tools(small, [12, 13])
    catalogue.add_tools(small, [14], categories=("Robotics",))
    new = [(12, 0), (13, 12), (14, 1), (14, 12)]
    catalogue.add_comparisons(small, new, catalogue.START + 1100)
    tools = frozenset(slug(n) for p in new for n in p)
    pairs = frozenset(frozenset(map(slug, p)) for p in new)
    assert _refresh_is_a_full_build(small, personas, out, fresh, Changed(tools, pairs))["scoped"]
    # pairs of one category judged side by side: its ranking appears, its listings link to it
    judged = [(0, 4), (4, 8), (0, 8)]
    catalogue.judge(small, judged, catalogue.START + 1200)
    pairs = frozenset(frozenset(map(slug, p)) for p in judged)
    assert _refresh_is_a_full_build(small, personas, out, fresh, Changed(frozenset(), pairs))[
        "scoped"
    ]
    assert (out / "rank" / "developer-tools.html").exists()
    # a card of that category edited: the ranking shows it, and every tool page shows the rank
    catalogue.edit(small, 8, "Ranked and edited")
    assert _refresh_is_a_full_build(small, personas, out, fresh, Changed(frozenset({slug(8)})))[
        "scoped"
    ]
    # a card moved to another category: pages the change cannot name move, every mark is read
    moved = catalogue.card(5).model_copy(update={"category": "Robotics"})
    small.import_records([moved], catalogue.reviews(moved, catalogue.START + 1300, seed=2))
    moved_to = Changed(frozenset({slug(5)}))
    assert not _refresh_is_a_full_build(small, personas, out, fresh, moved_to)["scoped"]


def test_a_refresh_looks_at_the_pages_that_show_what_changed_not_the_catalogue(
    store: Store, personas: list[Persona], tmp_path: Path
) -> None:
    catalogue.make(store, 300, 1500)
    out = tmp_path / "site"
    build_site(store, personas, out, "https://example.org/")
    catalogue.edit(store, 7, "Edited")
    cat = Catalogue(store, personas, out)
    scope = build.scope_of(cat, Changed(frozenset({"tool-00007"})), build._manifest(out))
    assert scope is not None and not scope.sitemap
    looked = [page.path for page in build.SitePages(cat, build.Options(), scope).pages()]
    every = sum(1 for _ in build.SitePages(cat, build.Options()).pages())
    mine = store.comparisons_of("tool-00007")
    assert {f"compare/{comparison_slug(a, b)}.html" for a, b, _ in mine} <= set(looked)
    assert len(looked) < every / 20, (len(looked), every)
