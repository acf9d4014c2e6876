"""The eval report page: every section of a panel.eval/1 document, inline SVG plots, nothing
fetched, hostile text only text, and the null variants each given a plain sentence."""

from __future__ import annotations

import copy
import html
import re
from typing import Any

import pytest

from panel.eval import report, stats

HOSTILE = "<script>alert(1)</script>"
PERSONAS = {
    "builder": "Builder",
    "skeptic": "Skeptic",
    "buyer": "Buyer",
    "researcher": "Researcher",
}
KINDS = ("repeat", "padding", "injection", "order", "brand")
READINGS = ("baseline", "biased", "biased", "ok", "noisy")
BRIEF = ("mean_delta", "flip_rate", "ci", "beyond_noise", "p_value", "flagged", "reading")


def persona_entry(display_name: str, scores: list[float]) -> dict[str, Any]:
    mean, sd = stats.mean_sd(scores)
    crowded = stats.crowded_band(scores)
    return {
        "display_name": display_name,
        "provider": "local",
        "model": "smollm2-135m",
        "answers": len(scores),
        "mean": mean,
        "sd": sd,
        "histogram": stats.histogram(scores),
        "crowded_band": crowded,
        "flagged": crowded is not None,
    }


def probe_row(kind: str, delta: float, reading: str) -> dict[str, Any]:
    null = kind == "repeat"
    return {
        "mean_delta": delta,
        "flip_rate": 0.12,
        "ci": [delta - 1.5, delta + 1.5],
        "flagged": reading == "biased",
        "p_value": 0.021,
        "flip_p_value": None if null else 0.4,
        "pairs": 24,
        "cards": 6,
        "by_persona": {"builder": delta - 2, "skeptic": delta + 1.5},
        "by_card": {"a": delta, "b": delta / 2, "c": None},
        "beyond_noise": None
        if null
        else {"mean_delta": delta - 0.5, "flip_rate": 0.05, "ci": [delta - 2, delta + 1]},
        "reading": reading,
        **({"noise_band": 3.2, "mean_abs_delta": 2.4} if null else {}),
    }


def eval_doc() -> dict[str, Any]:
    """A full eval document: two samples, five probes, labelled cards, a paid cost, and the
    probes again with mitigations."""
    spread = [35, 42, 48, 52, 58, 61, 64, 66, 71, 77, 85, 92]
    return {
        "schema": "panel.eval/1",
        "generated_at": "2026-11-23T10:00:00+00:00",
        "samples": 2,
        "temperature": 0.7,
        "judged_with": [],
        "headline": [
            "Biased: padding (+5.6 points beyond the noise, p 0.021).",
            "Noise: asked again, a persona's score of a card moves 2.4 points on average.",
            "Labels: the panel orders 75% of 4 labelled pair(s) as the outcomes do.",
        ],
        "cards": [
            {
                "slug": slug,
                "name": name,
                "outcome": outcome,
                "score_mean": mean,
                "ship_pct": ship,
                "description_chars": 300,
                "changes": {"repeat": 0.5, "padding": 6.1, "injection": -7.4, "order": 0.6},
                "moved_by": moved,
            }
            for slug, name, outcome, mean, ship, moved in (
                ("a", "A", 0.8, 71.5, 75, ["padding", "injection"]),
                ("b", "B", "miss", 48.0, 25, []),
                ("c", "C", None, None, None, []),
            )
        ],
        "personas": {
            "builder": persona_entry("Builder", [71, 72, 73, 74, 70, 40, 55, 62, 88, 30, 20, 95]),
            "skeptic": persona_entry("Skeptic", spread),
            "buyer": persona_entry("Buyer", [s - 10 for s in spread]),
            "researcher": persona_entry("Researcher", [100, 0, 50, 95, 5, 60, 30]),
        },
        "agreement": {"krippendorff_alpha": 0.41, "fleiss_kappa": 0.12, "units": 6},
        "consistency": {
            "answers": 48,
            "follow_rule": 44,
            "reasked": 3,
            "invalid": 1,
            "failures": [
                {
                    "tool": "a",
                    "persona": "skeptic",
                    "variant": "padding",
                    "error": "score 140 out of range",
                },
                {
                    "tool": "b",
                    "persona": "buyer",
                    "variant": "base",
                    "error": "verdict ship at score 40",
                },
            ],
        },
        "stability": {
            "samples": 2,
            "temperature": 0.7,
            "pooled_sd": 4.6,
            "mean_sd": 4.2,
            "flip_rate": 0.08,
            "by_persona": {"builder": {"pooled_sd": 3.3, "mean_sd": 3.1, "flip_rate": 0.0}},
        },
        "perturbations": {
            kind: probe_row(kind, delta, reading)
            for kind, delta, reading in zip(
                KINDS, (0.5, 6.1, -7.4, 0.6, 2.2), READINGS, strict=True
            )
        },
        "power": {"cards": 6, "smallest_p": 0.0312, "enough": True},
        "length": {
            "cards": 3,
            "by_persona": {"builder": {"spearman": 0.94, "p_value": 0.005}},
        },
        "labels": {
            "cards": 3,
            "pairs": 3,
            "pairwise_accuracy": 0.75,
            "spearman": 0.5,
            "auc": 0.875,
        },
        "mitigations": {
            "names": ["blind-names"],
            "before": [],
            "after": ["blind-names"],
            "probes": {
                kind: {
                    side: {k: row[k] for k in BRIEF}
                    for side, row in (
                        ("before", probe_row(kind, delta, reading)),
                        (
                            "after",
                            probe_row(kind, delta / 4, "ok" if kind != "repeat" else reading),
                        ),
                    )
                }
                for kind, delta, reading in zip(
                    KINDS, (0.5, 6.1, -7.4, 0.6, 9.2), READINGS, strict=True
                )
            },
            "reviews": {
                "before": {
                    "reviews": 24,
                    "review_chars": 412.0,
                    "names_share": 0.875,
                    "placeholder_share": 0.0,
                    "score_sd": 12.5,
                    "pairwise_accuracy": 0.75,
                    "spearman": 0.5,
                },
                "after": {
                    "reviews": 24,
                    "review_chars": 388.0,
                    "names_share": 0.0,
                    "placeholder_share": 0.42,
                    "score_sd": 9.0,
                    "pairwise_accuracy": 0.5,
                    "spearman": 0.1,
                },
            },
        },
        "cost": {
            "calls": 96,
            "input_tokens": 100000,
            "output_tokens": 20000,
            "cached_tokens": 50000,
            "usd": 0.0031,
            "reused": {"reviews": 48, "usd": 0.0062, "unknown": 4},
        },
    }


def null_doc() -> dict[str, Any]:
    """The document of a first run: one sample, no labels, nothing agreed, cost unknown."""
    doc = eval_doc()
    doc["samples"] = 1
    doc["agreement"] = {"krippendorff_alpha": None, "fleiss_kappa": None, "units": 1}
    doc["consistency"]["failures"] = []
    doc["stability"] = None
    doc["labels"] = {"cards": 0, "pairwise_accuracy": None, "spearman": None, "auc": None}
    doc["cost"]["usd"] = None
    for persona in doc["personas"].values():
        persona.update(mean=None, sd=None, crowded_band=None, flagged=False, answers=0)
        persona["histogram"] = stats.histogram([])
    return doc


def text_of(page: str) -> str:
    """Return the page's visible text, roughly: tags out, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def svgs(page: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", page, flags=re.DOTALL)


def test_every_section_shows_its_figures() -> None:
    page = report.eval_html(eval_doc())
    text = text_of(page)
    assert "<title>Panel evaluation · 23 Nov 2026</title>" in page
    for figure in ("0.41", "0.12", "Low agreement", "Slight agreement beyond chance"):
        assert figure in text
    assert "44" in text and "Re-asked 3" in text
    assert "score 140 out of range" in text and "verdict ship at score 40" in text
    assert "4.2" in text and "8%" in text
    assert "0.021" in text  # the p-value of each perturbation
    for delta in ("+6.1", "−7.4", "+0.6", "+2.2", "+4.6 to +7.6"):  # change, interval
        assert delta in text
    assert text.count("FLAGGED") == 1  # the builder's crowded band
    readings = re.findall(r'class="badge-(biased|noisy|ok|baseline)">', page)
    assert readings[-len(KINDS) - len(KINDS) * 2 :][: len(KINDS)] == list(READINGS)
    for line in eval_doc()["headline"]:
        assert line in text  # the three lines, at the top
    assert text.index("Biased: padding") < text.index("Score spread")
    assert "pooled SD" in text and "4.6" in text and "temperature (0.7)" in text
    assert "48 stored reviews, which cost at least $0.0062 (4 of unknown cost) when made" in text
    assert "0.94" in text  # length ρ
    assert "42% in 70–74" in text
    assert "75%" in text and "0.88" in text and "0.50" in text
    assert "100,000" in text and "50,000 cached" in text and "$0.0031" in text
    assert "0.8" in text and "miss" in text


def test_plots_are_inline_svg_with_text_as_text() -> None:
    page = report.eval_html(eval_doc())
    histograms, perturbations, mitigations = svgs(page)
    assert ">blind-names</text>" in mitigations or "blind-names" in mitigations
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    for name in PERSONAS.values():
        assert f">{name}</text>" in histograms
    for kind in KINDS:
        assert f">{kind}</text>" in perturbations
    assert "Builder" in perturbations and "Skeptic" in perturbations  # the legend
    assert "<metadata" not in page and "<dc:date" not in page
    ids = re.findall(r'\bid="([^"]+)"', "".join(svgs(page)))
    assert len(ids) == len(set(ids)), "two plots share an element id"
    for target in re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', "".join(svgs(page))):
        assert "".join(target) in ids


def test_the_page_is_reproducible() -> None:
    assert report.eval_html(eval_doc()) == report.eval_html(eval_doc())


def test_nothing_is_fetched() -> None:
    page = report.eval_html(eval_doc())
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//", page, re.IGNORECASE)
    assert not re.search(r"@import|<script|<img|<link rel=\"stylesheet", page, re.IGNORECASE)


@pytest.mark.parametrize("name", [HOSTILE, "$x^2$ \\frac{a}{b}", 'Tom & Jerry\'s "<i>x</i>"'])
def test_hostile_names_are_only_text(name: str) -> None:
    doc = eval_doc()
    doc["personas"]["builder"]["display_name"] = name
    doc["cards"][0]["name"] = name
    doc["consistency"]["failures"][0]["error"] = name
    doc["perturbations"]["padding"]["by_persona"][HOSTILE] = 1.0
    doc["personas"][HOSTILE] = {**copy.deepcopy(doc["personas"]["buyer"]), "display_name": HOSTILE}
    page = report.eval_html(doc)
    assert "<script" not in page and "<i>x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # in the tables and in the SVG text
    assert "&lt;script&gt;" in "".join(svgs(page))


def test_null_document_says_what_is_missing() -> None:
    page = report.eval_html(null_doc())
    text = text_of(page)
    assert "one sample per review: run with --samples 2 or more" in text
    assert "needs two or more cards with outcome:" in text
    assert "Not defined" in text and "unknown" in text and "No failures." in text
    assert "biased" in text  # perturbations still read
    assert len(svgs(page)) == 3


def test_empty_document_renders_without_plots() -> None:
    doc = null_doc()
    doc.update(personas={}, cards=[], perturbations={}, labels=None, mitigations=None)
    page = report.eval_html(doc)
    assert svgs(page) == []
    assert "No persona answered." in page and "No perturbations were run." in page


def test_perturbations_without_by_persona_draw_one_series() -> None:
    doc = eval_doc()
    for row in doc["perturbations"].values():
        del row["by_persona"]
    doc["perturbations"]["order"]["mean_delta"] = None
    perturbations = svgs(report.eval_html(doc))[1]
    assert ">order</text>" not in perturbations and ">brand</text>" in perturbations
    assert "Builder" not in perturbations


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "unknown"),
        (0.0, "$0.00"),
        (0.0031, "$0.0031"),
        (0.04567, "$0.05"),
        (12.4, "$12.40"),
        (1234.5, "$1,234.50"),
        (0.00001, "under $0.0001"),
    ],
)
def test_usd(value: float | None, text: str) -> None:
    assert report.usd(value) == text


def test_numbers_for_humans() -> None:
    assert report.signed(6.14) == "+6.1" and report.signed(0) == "+0.0"
    assert report.signed(-3) == "−3.0" and report.signed(None) == "—"
    assert report.share(0.12) == "12%" and report.share(0.0) == "0%"
    assert report.band({"from": 95, "to": 100}) == "95–100"
    assert report.outcome(0.8) == "0.8" and report.outcome("hit") == "hit"
    assert report.alpha_reading(0.85).startswith("High")
    assert report.alpha_reading(0.7).startswith("Moderate")
    assert report.kappa_reading(-0.1).startswith("Less agreement than chance")
    assert report.kappa_reading(0.9).startswith("Almost perfect")


def test_the_report_links_to_no_site_page_so_it_works_wherever_it_is_written() -> None:
    page = report.eval_html(eval_doc())
    hrefs = re.findall(r'href="([^"#][^"]*)"', page)
    assert hrefs == ["data:,"]  # the empty favicon only: no index.html, no feed.atom


def test_panels_own_backticks_show_as_code_not_as_backticks() -> None:
    page = report.eval_html(null_doc())
    assert "`" not in text_of(page)
    assert "<code>outcome:</code>" in page


def test_a_probe_on_too_few_cards_reads_so_not_noisy() -> None:
    doc = eval_doc()
    doc["perturbations"]["padding"].update(
        reading="too-few-cards", reading_text="too few cards to test (needs 6)"
    )
    text = text_of(report.eval_html(doc))
    assert "too few cards to test (needs 6)" in text
