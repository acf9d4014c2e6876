"""The pages in a real browser: headless Chromium shows the seed figures, runs and fetches nothing.

Needs playwright and Debian's chromium (`make test` installs both); screenshots land in
outputs/screenshots/.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from panel import pages

from .test_pages import SEED_SCORES, hostile_comparison, seed_comparison, site_index

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, Request

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "outputs" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@dataclass
class Visit:
    """An open page and what happened while it loaded."""

    page: Page
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def text(self) -> str:
        return " ".join(self.page.inner_text("body").split())


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: `make test` installs it (pip install playwright)")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except Error as exc:
            pytest.fail(f"{CHROMIUM} does not start under playwright: {exc}")
        yield chromium
        chromium.close()


def write_site(folder: Path, docs: list[dict[str, Any]]) -> Path:
    """Write the static site of comparison documents into folder; return folder."""
    site = site_index(docs)
    (folder / "compare").mkdir(parents=True)
    (folder / "tools").mkdir()
    (folder / "index.html").write_text(pages.index_html(site), encoding="utf-8")
    (folder / "feed.atom").write_text(pages.atom_feed(site), encoding="utf-8")
    for doc in docs:
        (folder / "compare" / f"{doc['slug']}.html").write_text(
            pages.compare_html(doc), encoding="utf-8"
        )
        for side in (doc["a"], doc["b"]):
            slug = side["tool"]["slug"]
            involved = [c for c in site["comparisons"] if slug in (c["a"]["slug"], c["b"]["slug"])]
            (folder / "tools" / f"{slug}.html").write_text(
                pages.tool_html(side, involved), encoding="utf-8"
            )
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site of seed 000's comparison."""
    doc = seed_comparison(tmp_path_factory.mktemp("seed"))
    return write_site(tmp_path_factory.mktemp("site"), [doc])


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site of a comparison with a tool whose every text carries markup and script URLs."""
    doc = hostile_comparison(tmp_path_factory.mktemp("hostile"))
    return write_site(tmp_path_factory.mktemp("hostile-site"), [doc])


@contextmanager
def visit(browser: Browser, path: Path, viewport: dict[str, int] = DESKTOP) -> Iterator[Visit]:
    """Open path in a fresh browser context, recording requests, console errors and dialogs."""
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    seen = Visit(context.new_page())

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            seen.errors.append(message.text)

    def on_dialog(dialog: Dialog) -> None:
        seen.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_request(request: Request) -> None:
        seen.requests.append(request.url)

    seen.page.on("console", on_console)
    seen.page.on("pageerror", lambda error: seen.errors.append(str(error)))
    seen.page.on("dialog", on_dialog)
    seen.page.on("request", on_request)
    try:
        seen.page.goto(path.as_uri())
        yield seen
    finally:
        context.close()


def assert_quiet(seen: Visit, *pages_loaded: Path) -> None:
    """Fail on a console error, a dialog, or any request but the page files themselves."""
    assert seen.errors == []
    assert seen.dialogs == []
    assert set(seen.requests) <= {path.as_uri() for path in pages_loaded}, seen.requests


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_comparison_page_shows_the_seed_figures(browser: Browser, site: Path) -> None:
    path = site / "compare" / "smolvlm-3b-vs-mistral-8x22b-v2.html"
    with visit(browser, path) as seen:
        text = seen.text()
        assert seen.page.title() == "SmolVLM-3B vs Mistral 8x22B v2 · AI tool comparison"
        assert text.count("Ship · 3 ship / 1 skip") == 2
        assert text.count("75%") >= 2
        for score in set(SEED_SCORES):
            assert score in text
        assert "Too close to call" in text and "No community votes yet" in text
        cards = [seen.page.locator(f".tool.side-{side}").bounding_box() for side in "ab"]
        assert cards[0] and cards[1] and cards[0]["y"] == cards[1]["y"]  # side by side
        screenshot(seen.page, "compare.png")
        assert_quiet(seen, path)


def test_comparison_page_stacks_on_a_phone(browser: Browser, site: Path) -> None:
    path = site / "compare" / "smolvlm-3b-vs-mistral-8x22b-v2.html"
    with visit(browser, path, PHONE) as seen:
        cards = [seen.page.locator(f".tool.side-{side}").bounding_box() for side in "ab"]
        assert cards[0] and cards[1]
        assert cards[0]["x"] == cards[1]["x"] and cards[1]["y"] > cards[0]["y"] + cards[0]["height"]
        width = seen.page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], "the page scrolls sideways on a phone"
        screenshot(seen.page, "compare-phone.png")
        assert_quiet(seen, path)


def test_index_lists_and_links_the_comparisons(browser: Browser, site: Path) -> None:
    index = site / "index.html"
    target = site / "compare" / "smolvlm-3b-vs-mistral-8x22b-v2.html"
    with visit(browser, index) as seen:
        text = seen.text()
        assert "Latest comparisons" in text and "75% panel ship" in text
        assert text.count("Ship · 3 ship / 1 skip") == 2
        screenshot(seen.page, "index.png")
        seen.page.click("text=SmolVLM-3B vs Mistral 8x22B v2")
        seen.page.wait_for_url(target.as_uri())
        assert seen.page.locator("h1").inner_text() == "SmolVLM-3B vs Mistral 8x22B v2"
        assert_quiet(seen, index, target)


@pytest.mark.parametrize(
    "page_path", ["compare/evil-tool-vs-smolvlm-3b.html", "tools/evil-tool.html", "index.html"]
)
def test_hostile_text_runs_nothing(browser: Browser, hostile_site: Path, page_path: str) -> None:
    path = hostile_site / page_path
    with visit(browser, path) as seen:
        assert seen.page.evaluate("typeof window.__pwned") == "undefined"
        assert "Evil <script>window.__pwned = 1; alert(1)</script>" in seen.text()
        assert seen.page.locator("script, img, [onerror]").count() == 0
        hrefs = seen.page.eval_on_selector_all("a", "links => links.map(a => a.href)")
        assert [href for href in hrefs if not href.startswith("file://")] == []
        assert_quiet(seen, path)
