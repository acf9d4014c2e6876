"""Headless Chromium for the page tests: Debian's chromium under playwright, visits that record
requests, console errors and dialogs, and a static site written from comparison documents.

Needs playwright and Debian's chromium (`make test` installs both); screenshots land in
outputs/screenshots/. The `browser` fixture itself is in conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from panel import pages
from tests.test_pages import site_index

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


def launch_browser() -> Iterator[Browser]:
    """Yield Debian's Chromium under playwright, or fail the test saying what is missing."""
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
    (folder / pages.SCRIPT_NAME).write_text(pages.vote_script(), encoding="utf-8")
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


def site_script(page: Path) -> str:
    """Return the URL of the site's script a page of write_site loads (tool and comparison
    pages sit one folder below the site's root, where the script is; the index beside it)."""
    root = page.parent if page.name.startswith("index") else page.parent.parent
    return (root / pages.SCRIPT_NAME).as_uri()


def assert_quiet(seen: Visit, *pages_loaded: Path) -> None:
    """Fail on a console error, a dialog, or any request but the page files themselves and the
    site's own script (which, opened from disk, fetches nothing)."""
    assert seen.errors == []
    assert seen.dialogs == []
    allowed = {path.as_uri() for path in pages_loaded} | {site_script(p) for p in pages_loaded}
    assert set(seen.requests) <= allowed, seen.requests


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


_LAYOUT = """() => {
  const width = document.documentElement.clientWidth;
  const scrolls = el => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
  const inBox = el => { for (let p = el.parentElement; p; p = p.parentElement) { if (scrolls(p)) return p; } return null; };
  const name = el => el.tagName.toLowerCase() + (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ').join('.') : '');
  const wide = [], cut = [], silent = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if (!inBox(el) && (box.right > width + 1 || box.left < -1)) wide.push(name(el));
    const style = getComputedStyle(el);
    if (['hidden', 'clip'].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1 && el.innerText.trim()) cut.push(name(el));
    if (scrolls(el) && el.scrollWidth > el.clientWidth + 1) {
      const hint = el.previousElementSibling;
      if (!hint || !hint.classList.contains('scroll-hint') || hint.getBoundingClientRect().height === 0) silent.push(name(el));
    }
  }
  return {wide, cut, silent, scrollWidth: document.documentElement.scrollWidth};
}"""


def assert_fits(seen: Visit, viewport: dict[str, int]) -> None:
    """Fail if the page is wider than the viewport: an element sticks out (outside a box that
    scrolls), a text is cut off, or a table scrolls in a box that does not say so."""
    layout = seen.page.evaluate(_LAYOUT)
    assert layout["scrollWidth"] <= viewport["width"], layout
    assert layout["wide"] == [], layout
    assert layout["cut"] == [], layout
    assert layout["silent"] == [], layout
