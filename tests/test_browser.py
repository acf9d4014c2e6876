"""The pages in a real browser: headless Chromium shows the seed figures and fetches nothing.

That hostile text in any field runs nothing is reliability battery 6 (tests/reliability).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from panel.eval.report import eval_html
from tests.browser import PHONE, assert_quiet, screenshot, visit, write_site
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


def test_the_judged_head_to_head_and_the_ranking_in_a_browser(
    browser: Browser, tmp_path: Path
) -> None:
    from panel.testing.fakes import judges
    from tests.cli.test_cli import panel
    from tests.judged import labelled_cards, quality
    from tests.test_pairwise import judge_all_pairs

    labels = [0.2, 0.8, 0.5]
    cards = labelled_cards(tmp_path / "cards", labels)
    better = judges.prefers_better(quality(labels))
    judge_all_pairs(
        tmp_path,
        lambda body: (
            judges.always_first(body)
            if judges.is_pair(body) and "as the Skeptic" in body["messages"][-1]["content"]
            else better(body)
        ),
        cards,
    )
    site = tmp_path / "site"
    assert panel("site", "build", "--db", tmp_path / "panel.db", "--out", site).returncode == 0
    path = site / "compare" / "tool-00-vs-tool-01.html"
    for viewport, name in ((None, "compare-pairwise.png"), (PHONE, "compare-pairwise-phone.png")):
        with visit(browser, path, *([viewport] if viewport else [])) as seen:
            text = seen.text()
            assert "The panel picks Tool 01" in text
            assert "The Builder picks Tool 01 in both orders." in text
            assert (
                "The Skeptic flipped with the order: it picks whichever tool is shown first."
                in text
            )
            assert seen.page.locator(".verdicts li.flipped").count() == 1
            assert "from the scores alone" in seen.page.locator(".verdict").inner_text().lower()
            width = seen.page.evaluate("document.documentElement.scrollWidth")
            assert width <= (viewport or {"width": 1280})["width"]
            screenshot(seen.page, name)
            assert_quiet(seen, path)
    ranking = site / "rank" / "developer-tools.html"
    with visit(browser, ranking) as seen:
        rows = seen.page.locator("table.ranking tbody tr").all_inner_texts()
        assert [row.split()[0:3] for row in rows] == [
            ["1", "Tool", "01"],
            ["2", "Tool", "02"],
            ["3", "Tool", "00"],
        ]
        assert seen.page.locator(".range-dot").count() == 3
        screenshot(seen.page, "rank.png")
        assert_quiet(seen, ranking)
