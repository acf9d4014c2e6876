"""The ranking: stored tools ordered by every judged pair, as a Bradley–Terry model with intervals.

Each pair judgment (a persona shown two cards in one order) is one comparison: the tool it
prefers wins, a tie is half a win each. The strengths are fitted by choix (`ilsr_pairwise`, with
a little regularisation so a tool that never lost keeps a finite strength) on a log scale, 0 the
mean of the ranked tools; a 90% interval per tool comes from a percentile bootstrap over the
judged pairs (each round draws the pairs again with replacement, with all their judgments).
Only tools joined by judged pairs can be set against each other: the largest set of tools so
joined is ranked, and every other tool is listed apart with the reason, never ranked by guess.
A judgment whose persona flipped with the order counts as it was given: its two answers cancel.

Schema "panel.rank/1":

    {"schema": "panel.rank/1", "category": str|null, "generated_at": iso,
     "pairs": int, "judgments": int, "rounds": int,
     "tools": [{"slug", "name", "strength", "low", "high", "rank", "pairs", "tier",
                "picked_pct", "picked_low", "picked_high"}],
     "unranked": [{"slug", "name", "pairs", "reason"}],
     "settled": {"tiers", "top": [name], "first": name|null},
     "rests_on": {"comparisons": pairs the site shows as comparisons, "other": the rest
                  (eval --pairwise)},
     "judge": <who judged the pairs: see results.judge>}

Rank 1 is the strongest; but where intervals overlap the order is not settled: a tool starts a
new tier only when its interval lies wholly below its tier's first tool's, and "first" is
named only when one tool's tier holds it alone. "picked_pct" says a strength in plain words:
how often the tool is picked over a tool of the mean strength. A domain module: documents in, a document out; it opens nothing.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from panel.cards import ToolCard
from panel.results import judge, judge_line
from panel.store import StoredPair

SCHEMA = "panel.rank/1"

ROUNDS = 1000
"""Bootstrap rounds of the interval."""
LEVEL = 0.90
REGULARISATION = 0.01
"""choix's alpha: keeps a tool that never lost (or never won) at a finite strength."""
SEED = 20
"""The bootstrap's seed: the same store always gives the same intervals."""

NO_PAIR = "in no judged pair"
APART = "judged only against tools outside the ranked set"


def ranking(
    tools: list[ToolCard],
    judgments: list[StoredPair],
    category: str | None = None,
    compared: set[frozenset[str]] | None = None,
) -> dict[str, Any]:
    """Return the ranking document of the tools (those of `category` only, when given) from
    the judgments among them (see the module docstring); `compared` are the pairs the site
    shows as comparisons, to say how many of the judged pairs came from them."""
    if category is not None:
        tools = [t for t in tools if t.category.casefold() == category.casefold()]
        category = tools[0].category if tools else category  # as the cards spell it
    by_slug = {tool.slug: tool for tool in tools}
    judged = [j for j in judgments if j.first in by_slug and j.second in by_slug]
    pairs = _pairs(judged)
    counts = {slug: sum(1 for pair in pairs if slug in pair) for slug in by_slug}
    ranked = _largest_joined(pairs)
    entries = _fitted([by_slug[s] for s in sorted(ranked)], judged, counts) if ranked else []
    unranked = [
        {
            "slug": tool.slug,
            "name": tool.name,
            "pairs": counts[tool.slug],
            "reason": APART if counts[tool.slug] else NO_PAIR,
        }
        for tool in sorted(tools, key=lambda t: t.name.casefold())
        if tool.slug not in ranked
    ]
    from_comparisons = sum(1 for pair in pairs if frozenset(pair) in (compared or set()))
    return {
        "schema": SCHEMA,
        "category": category,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "pairs": len(pairs),
        "judgments": len(judged),
        "rounds": ROUNDS if entries else 0,
        "tools": entries,
        "unranked": unranked,
        "settled": settled(entries),
        "rests_on": {
            "comparisons": from_comparisons,
            "other": len(pairs) - from_comparisons,
        },
        "judge": judge_of_pairs(judged),
    }


def settled(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Return what the intervals settle: {"tiers": n, "top": [names of tier 1], "first": name
    or null}; a tool is first only when its interval clears every other tool's."""
    top = [entry["name"] for entry in entries if entry["tier"] == 1]
    tiers = max((entry["tier"] for entry in entries), default=0)
    first = top[0] if len(top) == 1 and len(entries) > 1 else None
    return {"tiers": tiers, "top": top, "first": first}


def judge_of_pairs(judgments: list[StoredPair]) -> dict[str, Any]:
    """Return who judged the pairs, as results.judge says it (the samples: most per pair,
    persona and order)."""
    samples = Counter((j.first, j.second, j.persona) for j in judgments)
    found = judge([], sorted({f"{j.provider}/{j.model}" for j in judgments}))
    most = max(samples.values(), default=1)
    return {**found, "samples": most, "line": judge_line(found["judges"], most, [])}


def categories(tools: Iterable[ToolCard]) -> list[str]:
    """Return the categories of the tools, each once (as first spelled), by name."""
    seen: dict[str, str] = {}
    for tool in tools:
        seen.setdefault(tool.category.casefold(), tool.category)
    return sorted(seen.values(), key=str.casefold)


def _pairs(judgments: list[StoredPair]) -> list[tuple[str, str]]:
    """Return every pair of tools judged, each once (its slugs sorted)."""
    return sorted({_pair(j) for j in judgments})


def _pair(judgment: StoredPair) -> tuple[str, str]:
    low, high = sorted((judgment.first, judgment.second))
    return low, high


def _largest_joined(pairs: list[tuple[str, str]]) -> set[str]:
    """Return the largest set of tools joined to each other by judged pairs (ties: the one
    whose first slug sorts first)."""
    groups: list[set[str]] = []
    for a, b in pairs:
        joined = [g for g in groups if a in g or b in g]
        merged = {a, b}.union(*joined)
        groups = [g for g in groups if g not in joined] + [merged]
    return min(groups, key=lambda g: (-len(g), min(g)), default=set())


def _comparisons(judgments: list[StoredPair], index: dict[str, int]) -> list[tuple[int, int]]:
    """Return the judgments as choix's (winner, loser) data: a win twice, a tie once each way
    (half a win to each)."""
    data = []
    for j in judgments:
        first, second = index[j.first], index[j.second]
        if j.prefers == "first":
            data += [(first, second)] * 2
        elif j.prefers == "second":
            data += [(second, first)] * 2
        else:
            data += [(first, second), (second, first)]
    return data


def _strengths(n: int, data: list[tuple[int, int]]) -> list[float]:
    import choix

    params = choix.ilsr_pairwise(n, data, alpha=REGULARISATION)
    return [float(p) for p in params - params.mean()]


def _fitted(
    tools: list[ToolCard], judgments: list[StoredPair], counts: dict[str, int]
) -> list[dict[str, Any]]:
    """Return the ranked entries: each tool's strength, its bootstrap interval and its rank."""
    import numpy as np

    index = {tool.slug: n for n, tool in enumerate(tools)}
    mine = [j for j in judgments if j.first in index and j.second in index]
    by_pair: dict[tuple[str, str], list[StoredPair]] = {}
    for judgment in mine:
        by_pair.setdefault(_pair(judgment), []).append(judgment)
    pairs = sorted(by_pair)
    strengths = _strengths(len(tools), _comparisons(mine, index))
    rng = np.random.default_rng(SEED)
    rounds = []
    for _ in range(ROUNDS):
        drawn = rng.integers(0, len(pairs), len(pairs))
        resampled = [j for k in drawn for j in by_pair[pairs[k]]]
        rounds.append(_strengths(len(tools), _comparisons(resampled, index)))
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(np.array(rounds), [tail, 100 - tail], axis=0)
    shown = [round(strength, 3) for strength in strengths]
    order = sorted(range(len(tools)), key=lambda n: (-shown[n], tools[n].name.casefold()))
    entries = [
        {
            "slug": tools[n].slug,
            "name": tools[n].name,
            "strength": shown[n],
            "low": round(float(low[n]), 3),
            "high": round(float(high[n]), 3),
            # tools of equal strength share a rank (1, 2, 2, 4)
            "rank": 1 + sum(1 for other in shown if other > shown[n]),
            "pairs": counts[tools[n].slug],
            "picked_pct": picked_pct(shown[n]),
            "picked_low": picked_pct(float(low[n])),
            "picked_high": picked_pct(float(high[n])),
        }
        for n in order
    ]
    return _with_tiers(entries)


def picked_pct(strength: float) -> int:
    """Return a strength in plain words: how often (%) the tool is picked over a tool of the
    ranked set's mean strength (0), by the Bradley–Terry model: 1 / (1 + e^-strength)."""
    return round(100 / (1 + math.exp(-strength)))


def _with_tiers(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the entries (strongest first) with their tier: a tool starts a new tier only
    when its whole interval lies below the interval of its tier's first tool; within a tier
    the order is not settled."""
    tier, floor = 0, math.inf
    for entry in entries:
        if entry["high"] < floor:
            tier, floor = tier + 1, entry["low"]
        entry["tier"] = tier
    return entries
