"""The pages in a real browser: headless Chromium shows the seed figures and fetches nothing.

That hostile text in any field runs nothing is reliability battery 6 (tests/reliability).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from panel import results
from panel.eval.report import eval_html
from tests.browser import (
    DESKTOP,
    PHONE,
    assert_fits,
    assert_quiet,
    screenshot,
    visit,
    write_site,
)
from tests.eval.test_report import eval_doc
from tests.test_pages import SEED_SCORES, seed_comparison

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site of seed 000's comparison."""
    doc = seed_comparison(tmp_path_factory.mktemp("seed"))
    return write_site(tmp_path_factory.mktemp("site"), [doc])


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


def test_eval_report_shows_its_plots_and_fetches_nothing(browser: Browser, tmp_path: Path) -> None:
    path = tmp_path / "eval.html"
    path.write_text(eval_html(eval_doc()), encoding="utf-8")
    with visit(browser, path) as seen:
        histograms = seen.page.locator("#histograms svg")
        assert histograms.is_visible()
        box = histograms.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 100
        assert seen.page.locator("#perturbation-plot svg").is_visible()
        text = seen.text()
        assert "Can the panel be trusted?" in text and "FLAGGED" in text
        assert "score 140 out of range" in text
        screenshot(seen.page, "eval.png")
        assert_quiet(seen, path)


@pytest.fixture(scope="module")
def judged_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site of three labelled tools judged in every pair by a judge whose two views disagree
    (side by side it picks the better tool, its scores favour the worse), the Skeptic picking
    whichever tool it is shown first; built by `panel site build`."""
    from panel.testing.fakes import judges
    from tests.cli.test_cli import panel
    from tests.judged import labelled_cards, quality
    from tests.test_pairwise import judge_all_pairs

    folder = tmp_path_factory.mktemp("judged")
    labels = [0.2, 0.8, 0.5]
    split = judges.split_minded(quality(labels))
    judge_all_pairs(
        folder,
        lambda body: (
            judges.always_first(body)
            if judges.is_pair(body) and "as the Skeptic" in body["messages"][-1]["content"]
            else split(body)
        ),
        labelled_cards(folder / "cards", labels),
    )
    built = panel("site", "build", "--db", folder / "panel.db", "--out", folder / "site")
    assert built.returncode == 0, built.stderr
    return folder / "site"


VIEWPORTS = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])


def _name(viewport: dict[str, int]) -> str:
    return "phone" if viewport == PHONE else "desktop"


@VIEWPORTS
def test_a_split_comparison_says_one_verdict_everywhere(
    browser: Browser, judged_site: Path, viewport: dict[str, int]
) -> None:
    page = judged_site / "compare" / "tool-00-vs-tool-01.html"
    headline = "Split: judged side by side the panel picks Tool 01; its scores lean Tool 00"
    with visit(browser, page, viewport) as seen:
        text = seen.text()
        assert seen.page.locator(".verdict-pick").inner_text() == headline
        assert "The two disagree: the judged pick leads" in text
        assert seen.page.locator("details.rule summary").inner_text() == "How the verdict is made"
        # no two statements name different winners: every "panel picks" names Tool 01
        assert set(re.findall(r"panel picks (Tool \d\d)", text, re.IGNORECASE)) == {"Tool 01"}
        assert "Tool 00 leads on the scores" in text
        assert "The Skeptic flipped with the order: it picks whichever tool is shown first." in text
        assert seen.page.locator(".verdicts li.flipped").count() == 1
        pick = seen.page.locator(".pick-row td").all_inner_texts()
        assert pick == ["The scores lean here", "Picked side by side"]
        assert_fits(seen, viewport)
        screenshot(seen.page, f"compare-split-{_name(viewport)}.png")
        assert_quiet(seen, page)
    for other in (judged_site / "index.html", judged_site / "tools" / "tool-01.html"):
        with visit(browser, other, viewport) as seen:
            matchup = seen.page.locator(".matchup", has_text="Tool 00 vs Tool 01")
            assert matchup.locator(".matchup-verdict").inner_text() == headline
            assert matchup.locator(".side-b .mark").inner_text() == "Pick"
            assert_fits(seen, viewport)
    markdown = page.with_suffix(".md").read_text(encoding="utf-8")
    assert (
        f"## {headline}" in markdown and "| The pick | The scores lean here | Picked |" in markdown
    )
    feed = (judged_site / "feed.atom").read_text(encoding="utf-8")
    assert f"<summary>{headline}. " in feed
    document = json.loads(page.with_suffix(".json").read_text(encoding="utf-8"))
    assert document["verdict"]["kind"] == "split" and document["verdict"]["pick_name"] == "Tool 01"


@VIEWPORTS
def test_the_ranking_says_what_is_settled_in_plain_words(
    browser: Browser, judged_site: Path, viewport: dict[str, int]
) -> None:
    from panel.rank import picked_pct

    ranking = judged_site / "rank" / "developer-tools.html"
    with visit(browser, ranking, viewport) as seen:
        text = seen.text()
        tiers = seen.page.locator("table.ranking tbody td:first-child").all_inner_texts()
        top = tiers.count("1")
        if top > 1:
            assert "Not settled" in text and "First:" not in text
        else:
            assert "First: Tool 01" in text
        assert "picked over the average" in text.lower() and f"{picked_pct(0)}%" in text
        assert "3 from the site's comparisons" in text
        assert "Judged by openai / fake" in text
        shown = seen.page.locator(".range-dot >> visible=true").count()
        assert shown == (3 if viewport == DESKTOP else 0)  # a phone reads the words
        assert_fits(seen, viewport)
        screenshot(seen.page, f"rank-{_name(viewport)}.png")
        assert_quiet(seen, ranking)
    tool = judged_site / "tools" / "tool-01.html"
    with visit(browser, tool, viewport) as seen:
        text = seen.text()
        assert re.search(r"Ranking 1 of 3 in Developer Tools, (not )?settled", text)
        assert "Picked over the average tool" in text and "90% interval" in text
        seen.page.click(".masthead nav >> text=Rankings")
        seen.page.wait_for_url("**/index.html#rankings")
        assert seen.page.locator("#rankings .ranking-card").count() == 1


@VIEWPORTS
def test_a_visitor_can_follow_and_keep_bookmarks(
    browser: Browser, judged_site: Path, viewport: dict[str, int]
) -> None:
    page = judged_site / "compare" / "tool-00-vs-tool-01.html"
    with visit(browser, page, viewport) as seen:
        follow = seen.page.locator(".follow")
        assert "Get the next comparison in your feed reader" in follow.inner_text()
        links = follow.locator("a").evaluate_all("links => links.map(a => a.href)")
        assert links == [
            (judged_site / "feed.atom").as_uri(),
            (judged_site / "feeds" / "developer-tools.atom").as_uri(),
        ]
        assert all(Path(link.removeprefix("file://")).exists() for link in links)
        last = seen.page.locator("main > *").last
        assert last.get_attribute("class") == "bookmarks card"  # the page ends with them
        assert "No bookmarks yet" in last.inner_text()
        button = seen.page.locator("[data-bookmark]")
        button.click()
        assert button.get_attribute("aria-pressed") == "true"
        assert last.locator("a").inner_text() == "Tool 00 vs Tool 01"
        seen.page.goto((judged_site / "index.html").as_uri())
        kept = seen.page.locator("[data-bookmarks] a")
        assert kept.inner_text() == "Tool 00 vs Tool 01"
        assert kept.get_attribute("href") == page.as_uri()
        screenshot(seen.page, f"index-bookmarks-{_name(viewport)}.png")
        seen.page.goto(page.as_uri())
        seen.page.locator("[data-bookmark]").click()  # and off again
        assert "No bookmarks yet" in seen.page.locator("[data-bookmarks]").inner_text()


@VIEWPORTS
def test_extra_fields_and_provenance_are_folded(
    browser: Browser, site: Path, judged_site: Path, viewport: dict[str, int]
) -> None:
    path = site / "compare" / "smolvlm-3b-vs-mistral-8x22b-v2.html"
    with visit(browser, path, viewport) as seen:
        text = seen.text()
        assert "Prompt versions" not in text  # no hash for a reader, unless asked
        assert not re.search(r"\b[0-9a-f]{12}\b", text)
        seen.page.locator("details.provenance summary").click()
        assert "Prompt versions" in seen.text()
    path = judged_site / "compare" / "tool-00-vs-tool-01.html"
    with visit(browser, path, viewport) as seen:
        folded = seen.page.evaluate("document.documentElement.scrollHeight")
        fields = seen.page.locator(".more .fields")
        assert fields.count() == 8 and not fields.first.is_visible()
        assert "More from the Builder" in seen.text()
        seen.page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        assert fields.first.is_visible()
        opened = seen.page.evaluate("document.documentElement.scrollHeight")
        assert folded < opened - 400, (folded, opened)
        assert_fits(seen, viewport)


def demo_site(folder: Path, doc: dict[str, Any]) -> Path:
    """Return a site of doc as the tiny embedded model would have judged it."""
    from panel.compare import comparison_document

    for side in ("a", "b"):
        for review in doc[side]["reviews"]:
            review.update(provider="local", model="SmolLM2-135M-Instruct.Q4_1.gguf")
        doc[side]["judge"] = results.judge(doc[side]["reviews"])
    assert comparison_document.__doc__  # the document's judge is made the same way:
    doc["judge"] = results.judge(doc["a"]["reviews"] + doc["b"]["reviews"])
    return write_site(folder, [doc])


@VIEWPORTS
def test_the_judge_is_named_and_a_demo_judge_cannot_be_missed(
    browser: Browser, tmp_path: Path, site: Path, viewport: dict[str, int]
) -> None:
    demo = demo_site(tmp_path / "demo", seed_comparison(tmp_path / "seed"))
    pages_of = (
        "compare/smolvlm-3b-vs-mistral-8x22b-v2.html",
        "tools/smolvlm-3b.html",
        "index.html",
    )
    for page in pages_of:
        with visit(browser, demo / page, viewport) as seen:
            notice = seen.page.locator(".demo-notice")
            assert notice.is_visible(), page
            assert "A demo judge: its verdicts are not a review." in notice.inner_text()
            box = notice.bounding_box()
            assert box and box["y"] < viewport["height"], "the notice is below the fold"
            if page != "index.html":
                assert "Judged by local / SmolLM2-135M-Instruct.Q4_1.gguf" in seen.text()
            assert_fits(seen, viewport)
            screenshot(seen.page, f"demo-{page.split('/')[0]}-{_name(viewport)}.png")
        with visit(browser, site / page, viewport) as seen:
            assert seen.page.locator(".demo-notice").count() == 0
            if page != "index.html":
                assert "Judged by import / unknown, 1 sample per persona" in seen.text()


@VIEWPORTS
def test_every_page_fits_the_screen(
    browser: Browser, judged_site: Path, site: Path, tmp_path: Path, viewport: dict[str, int]
) -> None:
    report = tmp_path / "eval.html"
    report.write_text(eval_html(eval_doc()), encoding="utf-8")
    every = [*sorted(judged_site.rglob("*.html")), *sorted(site.rglob("*.html")), report]
    for page in every:
        with visit(browser, page, viewport) as seen:
            assert_fits(seen, viewport)
    with visit(browser, report, viewport) as seen:
        hints = seen.page.locator(".scroll-hint")
        assert hints.first.is_visible() == (viewport == PHONE)
        screenshot(seen.page, f"eval-{_name(viewport)}.png")
