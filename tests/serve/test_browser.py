"""Votes through real pages: headless Chromium against a real `panel serve` (started here on a free
loopback port), and pages on other origins that try to vote for the visitor."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from panel.config import data_dir
from panel.personas import load_personas
from panel.records import import_file
from panel.site import build_site
from panel.store import Store
from panel.testing.fakes.http import Reply, ScriptedServer, Seen
from panel.testing.serving import RunningServer, panel_serve
from tests.browser import PHONE, screenshot
from tests.serve.test_api import SEED

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = pytest.mark.slow

SMOL, MISTRAL = "smolvlm-3b", "mistral-8x22b-v2"
COMPARISON = f"compare/{SMOL}-vs-{MISTRAL}.html"
KEY = "browser-test-signing-key-" + "b" * 32


@dataclass
class Site:
    server: RunningServer
    db: Path
    out: Path

    def counts(self) -> dict[str, tuple[int, int]]:
        store = Store(self.db)
        try:
            return {tool: store.vote_counts(tool) for tool in (SMOL, MISTRAL)}
        finally:
            store.close()

    def rebuild(self) -> None:
        store = Store(self.db)
        try:
            build_site(store, load_personas(data_dir("personas")), self.out)
        finally:
            store.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Seed 000's site, built, and `panel serve` serving it."""
    folder = tmp_path_factory.mktemp("served")
    served = Site(server=None, db=folder / "panel.db", out=folder / "site")  # type: ignore[arg-type]
    store = Store(served.db)
    try:
        import_file(SEED, load_personas(data_dir("personas")), store)
        store.save_comparison(SMOL, MISTRAL)
    finally:
        store.close()
    served.rebuild()
    env = {
        "PANEL_DB": str(served.db),
        "PANEL_OUT": str(served.out),
        "PANEL_SIGNING_KEY": KEY,
        "XDG_DATA_HOME": str(folder / "data"),
    }
    with panel_serve("--rebuild-every", "0", env=env, log=folder / "serve.log") as server:
        served.server = server
        yield served


def open_page(context: BrowserContext, url: str) -> tuple[Page, list[str]]:
    """Open url in context; return the page and the console errors it logs."""
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    return page, errors


def wait_label(page: Page, tool: str, text: str) -> None:
    """Wait until every count of tool on the page reads text."""
    page.wait_for_function(
        """([tool, text]) => {
            const found = [...document.querySelectorAll('[data-community-label]')]
                .filter(el => el.getAttribute('data-community-label') === tool);
            return found.length > 0 && found.every(el => el.textContent === text);
        }""",
        arg=[tool, text],
    )


def click_vote(page: Page, tool: str, verdict: str) -> int:
    """Click a vote button and return the status of the POST that ends it (a click in the
    first seconds after the page set the voter cookie is answered 429, and the script sends
    the vote again when the server says)."""
    ended = lambda r: r.url.endswith("/api/votes") and r.status != 429  # noqa: E731
    with page.expect_response(ended) as sent:
        page.locator(f'[data-vote="{tool}"] button[data-verdict="{verdict}"]').click()
    return sent.value.status


def test_a_vote_on_a_comparison_page_counts_once_and_stays(browser: Browser, site: Site) -> None:
    url = site.server.url + COMPARISON
    before = site.counts()
    first = browser.new_context()
    try:
        page, errors = open_page(first, url)
        box = page.locator(f'[data-vote="{SMOL}"]')
        box.wait_for(state="visible")  # the script found the API and showed the buttons
        wait_label(page, SMOL, "No community votes yet")
        assert click_vote(page, SMOL, "ship") == 200
        wait_label(page, SMOL, "1 vote · 100% ship")
        assert page.locator(f'[data-community-pct="{SMOL}"]').inner_text() == "100%"
        ship = box.locator('button[data-verdict="ship"]')
        assert ship.get_attribute("aria-pressed") == "true"
        assert "Thanks" in box.locator(".vote-status").inner_text()
        screenshot(page, "serve-compare-voted.png")

        page.reload()  # the count comes back from the store, and so does the pressed button
        wait_label(page, SMOL, "1 vote · 100% ship")
        page.wait_for_function(
            f"""document.querySelector('[data-vote="{SMOL}"] button[data-verdict="ship"]')
                .getAttribute('aria-pressed') === 'true'"""
        )
        assert click_vote(page, SMOL, "ship") == 200  # the same browser again: no double
        wait_label(page, SMOL, "1 vote · 100% ship")
        assert errors == []
    finally:
        first.close()
    assert site.counts()[SMOL] == (before[SMOL][0] + 1, before[SMOL][1])

    second = browser.new_context()  # another browser: another voter
    try:
        page, errors = open_page(second, url)
        page.locator(f'[data-vote="{SMOL}"]').wait_for(state="visible")
        wait_label(page, SMOL, "1 vote · 100% ship")
        assert click_vote(page, SMOL, "ship") == 200
        wait_label(page, SMOL, "2 votes · 100% ship")
        assert click_vote(page, SMOL, "skip") == 200  # a change of mind replaces the vote
        wait_label(page, SMOL, "2 votes · 50% ship")
        assert errors == []
    finally:
        second.close()
    assert site.counts()[SMOL] == (1, 1)


def test_a_vote_on_a_tool_page(browser: Browser, site: Site) -> None:
    context = browser.new_context()
    try:
        page, errors = open_page(context, site.server.url + f"tools/{MISTRAL}.html")
        page.locator(f'[data-vote="{MISTRAL}"]').wait_for(state="visible")
        before = site.counts()[MISTRAL]
        assert click_vote(page, MISTRAL, "skip") == 200
        votes = before[0] + before[1] + 1
        wait_label(page, MISTRAL, f"{votes} vote{'s' if votes != 1 else ''} · 0% ship")
        screenshot(page, "serve-tool-voted.png")
        assert errors == []
    finally:
        context.close()


def test_the_buttons_fit_a_phone(browser: Browser, site: Site) -> None:
    context = browser.new_context(viewport=PHONE)  # type: ignore[arg-type]
    try:
        page, errors = open_page(context, site.server.url + COMPARISON)
        for tool in (SMOL, MISTRAL):
            page.locator(f'[data-vote="{tool}"]').wait_for(state="visible")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], "the page scrolls sideways on a phone"
        screenshot(page, "serve-compare-phone.png")
        assert errors == []
    finally:
        context.close()


def test_without_javascript_the_page_shows_its_last_build(browser: Browser, site: Site) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page, _ = open_page(context, site.server.url + COMPARISON)
        built = site.counts()
        assert not page.locator(f'[data-vote="{SMOL}"]').is_visible()  # no dead buttons
        shown = page.locator(f'[data-community-label="{SMOL}"]').inner_text()
        site.rebuild()  # a page rebuilt after the votes shows them
        page.reload()
        rebuilt = page.locator(f'[data-community-label="{SMOL}"]').inner_text()
    finally:
        context.close()
    votes = sum(built[SMOL])
    assert votes > 0 and shown == "No community votes yet"
    assert rebuilt.startswith(f"{votes} vote")


ATTACKS = {
    # A form may post text/plain shaped as JSON, and the browser sends the visitor's cookie with
    # it when the attacker's page is on the same site (here: another port of 127.0.0.1).
    "form": """<form method="post" enctype="text/plain" action="{api}">
        <input name='{{"tool": "{tool}", "verdict": "ship", "x": "' value='"}}'>
        <button id="go">Win a prize</button></form>""",
    "fetch-no-cors": """<button id="go" onclick='fetch("{api}", {{method: "POST",
        mode: "no-cors", credentials: "include", headers: {{"Content-Type": "text/plain"}},
        body: JSON.stringify({{tool: "{tool}", verdict: "ship"}})}}).catch(() => {{}})'>Go</button>""",
    "fetch-json": """<button id="go" onclick='fetch("{api}", {{method: "POST",
        credentials: "include", headers: {{"Content-Type": "application/json"}},
        body: JSON.stringify({{tool: "{tool}", verdict: "ship"}})}}).catch(() => {{}})'>Go</button>""",
}


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"], ids=["same-site", "cross-site"])
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_page_on_another_origin_cannot_vote(
    browser: Browser, site: Site, attack: str, host: str
) -> None:
    api = site.server.url + "api/votes"
    refused = site.server.requests('"POST /api/votes HTTP/1.1" 403')
    html = (
        f"<!doctype html><html><body>{ATTACKS[attack].format(api=api, tool=MISTRAL)}</body></html>"
    )
    posted: list[int] = []

    def evil(seen: Seen) -> Reply:
        return Reply(200, html)

    with ScriptedServer(evil) as attacker:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(site.server.url + COMPARISON)  # the visitor has the site's cookie
            page.locator(f'[data-vote="{MISTRAL}"]').wait_for(state="visible")
            before = site.counts()
            page.on("response", lambda r: posted.append(r.status) if r.url == api else None)
            page.goto(attacker.url.replace("127.0.0.1", host) + "/prize.html")
            page.click("#go")
            page.wait_for_timeout(500)  # a fetch that goes out at all has answered by now
        finally:
            context.close()
    after = site.counts()
    assert after == before, "a page on another origin changed the votes"
    assert all(status == 403 for status in posted), posted
    if attack == "fetch-json":  # the browser asks first (a preflight), and is not allowed
        assert site.server.requests('"OPTIONS /api/votes HTTP/1.1" 405') >= 1
    else:  # the POST went out, and the server refused it: not only the browser's doing
        assert site.server.requests('"POST /api/votes HTTP/1.1" 403') == refused + 1


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_every_count_on_every_page_is_live_with_its_number_of_votes(
    browser: Browser, site: Site, viewport: dict[str, int] | None
) -> None:
    """The index and the tool tiles, which carry no vote button, read the live count too: a
    vote cast after the build shows on every page, each share with its number of votes."""
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    try:
        page, errors = open_page(context, site.server.url + f"tools/{SMOL}.html")
        page.locator(f'[data-vote="{SMOL}"]').wait_for(state="visible")
        assert click_vote(page, SMOL, "ship") == 200
        ship, skip = site.counts()[SMOL]
        votes = ship + skip
        label = f"{votes} vote{'s' if votes != 1 else ''} · {round(100 * ship / votes)}% ship"
        for path in ("index.html", COMPARISON, f"tools/{MISTRAL}.html"):
            shown, more = open_page(context, site.server.url + path)
            if shown.locator(f'[data-community-label="{SMOL}"]').count():
                wait_label(shown, SMOL, label)
            tiles = shown.locator(f'[data-community-votes="{SMOL}"]')
            for n in range(tiles.count()):
                assert tiles.nth(n).inner_text() == f"{votes} vote{'s' if votes != 1 else ''}"
            errors += more
        screenshot(shown, f"serve-live-counts-{'phone' if viewport else 'desktop'}.png")
        assert errors == []
    finally:
        context.close()
