"""The site's listings and search in Chromium, served over HTTP from a loopback server, under
the pages' own Content-Security-Policy: the search reads its index and shards from the site,
filters and sorts, and the listings page through every comparison. Screenshots land in
outputs/screenshots/."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from panel.personas import Persona
from panel.site import build_site
from panel.store import Store
from panel.testing import catalogue
from tests.browser import DESKTOP, PHONE, Visit, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@dataclass
class Served(Visit):
    """A visit over HTTP: also the vote API's addresses that answered 404."""

    api_misses: list[str] = field(default_factory=list)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(store: Store, personas: list[Persona], tmp_path: Path) -> Iterator[str]:
    """A site of 30 tools and 80 comparisons, served on a loopback port; yield its URL."""
    catalogue.make(store, 30, 80)
    out = tmp_path / "site"
    build_site(store, personas, out)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def opened(browser: Browser, url: str, viewport: dict[str, int] = DESKTOP) -> Iterator[Served]:
    """Open url in a fresh context, recording console errors (a CSP refusal is one) and every
    request; the vote API's 404s are not errors here."""
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    seen = Served(context.new_page())
    seen.page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
    # A static host has no vote API: vote.js asks for it and keeps the built counts (a 404).
    seen.page.on(
        "response",
        lambda r: seen.api_misses.append(r.url) if r.status == 404 and "/api/" in r.url else None,
    )
    seen.page.on("pageerror", lambda error: seen.errors.append(str(error)))
    seen.page.on("request", lambda request: seen.requests.append(request.url))
    try:
        seen.page.goto(url)
        yield seen
    finally:
        context.close()


def test_search_finds_filters_and_sorts_under_the_csp(browser: Browser, served: str) -> None:
    from playwright.sync_api import expect  # (a string to wait for would be eval: the CSP says no)

    with opened(browser, served + "search.html") as seen:
        page = seen.page
        page.wait_for_selector("[data-search-results] li")
        assert page.is_hidden("[data-search-fallback]")
        assert page.locator("[data-search-results] li").count() == 30
        page.fill("[data-search-q]", "tool 00007")
        expect(page.locator("[data-search-results] li")).to_have_count(1)
        assert "Tool 00007" in page.inner_text("[data-search-results]")
        page.fill("[data-search-q]", "")
        page.select_option("[data-search-category]", "Design")
        page.select_option("[data-search-sort]", "name")
        names = page.locator("[data-search-results] li a").all_inner_texts()
        assert names == sorted(names) and len(names) == 7  # tools 2, 6, ..., 26 are Design
        screenshot(page, "site-search.png")
        page.click("[data-search-results] li a >> nth=0")
        page.wait_for_url("**/tools/tool-00002.html")
        assert _errors(seen) == []
        assert all(url.startswith(served) for url in seen.requests), seen.requests
        assert served + "search/index.json" in seen.requests
    with opened(browser, served + "search.html?q=00012", PHONE) as seen:
        expect(seen.page.locator("[data-search-results] li")).to_have_count(1)
        screenshot(seen.page, "site-search-phone.png")
        assert _errors(seen) == []


def test_the_index_and_listings_page_through_every_comparison(
    browser: Browser, served: str
) -> None:
    with opened(browser, served + "index.html") as seen:
        screenshot(seen.page, "site-index.png")
        seen.page.click("text=Every comparison (80)")
        seen.page.wait_for_url("**/browse/comparisons/index.html")
        shown = seen.page.locator(".matchup").count()
        pages_seen = 1
        while seen.page.locator("a[rel=next]").count():
            seen.page.click("a[rel=next] >> nth=0")
            shown += seen.page.locator(".matchup").count()
            pages_seen += 1
        assert shown == 80 and pages_seen == 2
        screenshot(seen.page, "site-listing.png")
        assert _errors(seen) == []
    with opened(browser, served + "category/design/index.html", PHONE) as seen:
        assert "Design comparisons" in seen.text()
        screenshot(seen.page, "site-category-phone.png")
        width = seen.page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"]
        assert _errors(seen) == []


def _errors(seen: Served) -> list[str]:
    """Return the console errors of a visit but the vote API's 404s."""
    missing = [e for e in seen.errors if "status of 404" in e]
    assert len(missing) <= len(seen.api_misses), seen.errors
    return [e for e in seen.errors if "status of 404" not in e]
