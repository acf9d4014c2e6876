"""The ranking's fit at catalogue size against what it replaced: the strengths equal choix's
`ilsr_pairwise`, the intervals agree with the 1,000-round pair bootstrap within a stated
tolerance, and `rankings` gives every category's document at once, as `ranking` gives each."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from panel.cards import ToolCard, parse_card
from panel.rank import LEVEL, REGULARISATION, Judged, fit, ranking, rankings
from panel.store import StoredPair

Judgment = tuple[int, int, str]

BOOTSTRAP_ROUNDS = 1000
"""As the ranking drew them before (panel.rank until issue #31), seeded alike."""
ENDS_MEDIAN = 0.15
"""Tolerance: the median distance (log-strength units) of an interval's ends from the
bootstrap's, over the tools of a set."""
WIDTH_EACH = (0.6, 1.5)
"""Tolerance: each tool's interval width against the bootstrap's (HC3 errs wide, not narrow)."""
WIDTH_MEDIAN = (0.85, 1.3)


def synthetic(tools: int, pairs: int, per_pair: int, seed: int) -> list[Judgment]:
    """Return judgments (shown first, shown second, prefers) of a joined set of tools of
    random strengths: a chain through every tool plus random pairs, each pair judged
    per_pair times in alternating order, one in ten a tie."""
    rng = np.random.default_rng(seed)
    strength = rng.normal(0.0, 1.0, tools)
    chosen = {(k, k + 1) for k in range(tools - 1)}
    while len(chosen) < pairs:
        a, b = sorted(int(x) for x in rng.choice(tools, 2, replace=False))
        chosen.add((a, b))
    judgments = []
    for a, b in sorted(chosen):
        for turn in range(per_pair):
            first, second = (a, b) if turn % 2 == 0 else (b, a)
            picked = 1 / (1 + np.exp(strength[second] - strength[first]))
            tie = rng.random() < 0.1
            prefers = "tie" if tie else ("first" if rng.random() < picked else "second")
            judgments.append((first, second, prefers))
    return judgments


def _choix_data(judgments: list[Judgment]) -> list[tuple[int, int]]:
    """choix's (winner, loser) data as the ranking gave it: a win twice, a tie once each way."""
    data: list[tuple[int, int]] = []
    for first, second, prefers in judgments:
        if prefers == "first":
            data += [(first, second)] * 2
        elif prefers == "second":
            data += [(second, first)] * 2
        else:
            data += [(first, second), (second, first)]
    return data


def _choix(tools: int, judgments: list[Judgment]) -> Any:
    import choix

    params = choix.ilsr_pairwise(tools, _choix_data(judgments), alpha=REGULARISATION)
    return params - params.mean()


def bootstrap(tools: int, judgments: list[Judgment]) -> tuple[Any, Any]:
    """Return the ends of the 90% intervals as the ranking drew them before: a percentile
    bootstrap over the judged pairs, each round refitted by choix from scratch."""
    by_pair: dict[tuple[int, int], list[Judgment]] = {}
    for judgment in judgments:
        by_pair.setdefault((min(judgment[:2]), max(judgment[:2])), []).append(judgment)
    pairs = sorted(by_pair)
    rng = np.random.default_rng(20)
    rounds = []
    for _ in range(BOOTSTRAP_ROUNDS):
        drawn = rng.integers(0, len(pairs), len(pairs))
        rounds.append(_choix(tools, [j for k in drawn for j in by_pair[pairs[k]]]))
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(np.array(rounds), [tail, 100 - tail], axis=0)
    return low, high


SETS = [(6, 10, 8, 1), (12, 30, 8, 2), (20, 60, 8, 3)]
"""(tools, pairs, judgments per pair, seed): small sets where 1,000 refits are affordable."""


@pytest.mark.parametrize(("tools", "pairs", "per_pair", "seed"), SETS)
def test_the_strengths_are_choix_and_the_intervals_agree_with_the_bootstrap_they_replace(
    tools: int, pairs: int, per_pair: int, seed: int
) -> None:
    judgments = synthetic(tools, pairs, per_pair, seed)
    strengths, low, high = fit(Judged.of(tools, judgments), REGULARISATION, LEVEL)
    assert np.abs(strengths - _choix(tools, judgments)).max() < 1e-6
    boot_low, boot_high = bootstrap(tools, judgments)
    ends = np.concatenate([np.abs(low - boot_low), np.abs(high - boot_high)])
    ratio = (high - low) / (boot_high - boot_low)
    assert np.median(ends) <= ENDS_MEDIAN, ends
    assert WIDTH_EACH[0] <= ratio.min() and ratio.max() <= WIDTH_EACH[1], ratio
    assert WIDTH_MEDIAN[0] <= np.median(ratio) <= WIDTH_MEDIAN[1], ratio


def _cards(count: int, categories: tuple[str, ...]) -> list[ToolCard]:
    return [
        parse_card(
            {
                "name": f"Tool {n:03d}",
                "tagline": f"Does thing number {n}",
                "description": f"Tool {n} does a useful thing for developers.",
                "entry": "Free",
                "category": categories[n % len(categories)],
            },
            f"tool-{n:03d}.yaml",
        )
        for n in range(count)
    ]


def _stored(cards: list[ToolCard], judgments: list[Judgment]) -> list[StoredPair]:
    one = StoredPair(
        *("first", "second", "a", "b", "builder", "1", "openai", "fake-model", "tie", "because"),
        attempts=1,
        created_at=0.0,
    )
    return [
        replace(one, first=cards[first].slug, second=cards[second].slug, prefers=prefers, sample=n)
        for n, (first, second, prefers) in enumerate(judgments)
    ]


def test_rankings_gives_every_category_at_once_as_ranking_gives_each() -> None:
    cards = _cards(40, ("Developer Tools", "Design"))
    judgments = _stored(cards, synthetic(40, 200, 4, 7))  # across categories too: left out
    every = rankings(cards, judgments)
    assert sorted(every) == ["Design", "Developer Tools"]
    for category, document in every.items():
        alone = ranking(cards, judgments, category)
        assert {**document, "generated_at": ""} == {**alone, "generated_at": ""}
        assert document["interval"] == "sandwich" and len(document["tools"]) == 20
