"""`panel eval --pairwise` against judges whose behaviour is known: the labelled cards judged two
by two in both orders, position consistency, and accuracy against the labels next to the
absolute scores'."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from panel.testing.fakes import judges
from panel.testing.fakes.openai import FakeOpenAI
from tests.cli.test_cli import panel
from tests.judged import KEYS, judge_args, labelled_cards, quality

LABELS = [0.4, 0.8, 0.2, 0.6]
PAIRS = 6  # every two of four cards with different labels


def run_eval(tmp_path: Path, judge: Any, *extra: str) -> tuple[dict[str, Any], FakeOpenAI]:
    cards = labelled_cards(tmp_path / "cards", LABELS)
    with FakeOpenAI(content=judge) as server:
        args = ["eval", *cards, "--pairwise", "--json", *extra, *judge_args(server, tmp_path)]
        result = panel(*args, env=KEYS)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document, server


def test_a_judge_that_prefers_the_better_card_is_right_where_crowded_scores_are_not(
    tmp_path: Path,
) -> None:
    document, server = run_eval(tmp_path, judges.prefers_better(quality(LABELS)))
    pairwise = document["pairwise"]
    assert pairwise["pairs"] == PAIRS and pairwise["judgments"] == PAIRS * 2 * 4
    assert pairwise["position_consistency"]["overall"] == 1.0
    assert set(pairwise["position_consistency"]["by_persona"].values()) == {1.0}
    assert pairwise["accuracy"] == 1.0
    assert pairwise["score_accuracy"] == 0.5  # every pair too close to call on the scores
    assert all(pair["pick"] == pair["better"] for pair in pairwise["by_pair"])
    assert document["cost"]["calls"] == 4 * 6 * 4 + PAIRS * 2 * 4 == server.answered
    assert pairwise["failures"] == []


def test_a_judge_that_always_picks_the_first_has_no_position_consistency(tmp_path: Path) -> None:
    document, _ = run_eval(tmp_path, judges.always_first)
    pairwise = document["pairwise"]
    assert pairwise["position_consistency"]["overall"] == 0.0
    assert set(pairwise["position_consistency"]["by_persona"].values()) == {0.0}
    assert pairwise["accuracy"] == 0.5  # no pick in any pair: half each
    assert all(pair["pick"] is None for pair in pairwise["by_pair"])


def test_a_noisy_judge_shows_in_position_consistency(tmp_path: Path) -> None:
    document, _ = run_eval(tmp_path, judges.noisy, "--samples", "2")
    consistency = document["pairwise"]["position_consistency"]
    assert 0 < consistency["overall"] < 0.8
    assert len(consistency["by_persona"]) == 4


def test_the_report_and_the_terminal_show_the_pairwise_section(tmp_path: Path) -> None:
    cards = labelled_cards(tmp_path / "cards", LABELS)
    report = tmp_path / "report.html"
    with FakeOpenAI(content=judges.prefers_better(quality(LABELS))) as server:
        args = ["eval", *cards, "--pairwise", "--html", report, *judge_args(server, tmp_path)]
        result = panel(*args, env=KEYS)
        assert result.returncode == 0, result.stderr
        answered = server.answered
        again = panel(*args, env=KEYS)
        assert again.returncode == 0 and server.answered == answered  # all stored: no call
    text = " ".join(result.stdout.split())
    assert "Side by side: 6 labelled pair(s)" in text
    assert "Pairwise accuracy against the labels: 100% judged side by side, 50% from the " in text
    page = report.read_text()
    assert 'id="pairwise"' in page and "Same pick in both orders" in page
    assert "tool-00 vs tool-01" in page


def test_pairwise_needs_two_different_labels(tmp_path: Path) -> None:
    cards = labelled_cards(tmp_path / "cards", [0.5, 0.5])
    result = panel("eval", *cards, "--pairwise", "--db", tmp_path / "panel.db")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--pairwise needs two or more cards with different `outcome:` labels" in result.stderr


def test_the_probabilities_of_a_weak_judge_rank_the_labels_where_its_answers_cannot(
    tmp_path: Path,
) -> None:
    judge = judges.weakly_prefers_better(quality(LABELS))
    document, _ = run_eval(tmp_path, judge, "--logprobs")
    pairwise = document["pairwise"]
    read = pairwise["probabilities"]
    assert pairwise["position_consistency"]["overall"] == 0.0  # the answers: always "first"
    assert read["pairs"] == PAIRS
    assert read["accuracy"] == 1.0 and read["answer_accuracy"] == 0.5
    assert read["consistency"] == 0.0  # each order alone still leans to the card shown first
    assert read["position_lean"] == 0.3
    assert read["expected_score_accuracy"] == 1.0
    assert pairwise["mean_score_accuracy"] == 0.5  # the sampled scores are all 61
    assert all(p["probability_pick"] == p["better"] == p["pick"] for p in pairwise["by_pair"])


def test_the_probabilities_of_a_pure_position_prior_pick_nothing(tmp_path: Path) -> None:
    document, _ = run_eval(tmp_path, judges.position_prior(0.7), "--logprobs")
    read = document["pairwise"]["probabilities"]
    assert read["accuracy"] == 0.5 and read["position_lean"] == 0.45
    assert all(p["probability_pick"] is None for p in document["pairwise"]["by_pair"])
