"""The ranking: stored tools ordered by every judged pair, as a Bradley–Terry model with intervals.

Each pair judgment (a persona shown two cards in one order) is one comparison: the tool it
prefers wins, a tie is half a win each. The strengths are choix's `ilsr_pairwise` estimate (with
a little regularisation so a tool that never lost keeps a finite strength), computed on the
sparse graph of the judged pairs (_strengths), on a log scale, 0 the mean of the ranked tools;
a 90% interval per tool comes from the fit's standard errors, clustered by pair as the percentile
bootstrap over the judged pairs they replace was (_standard_errors; tests/test_rank.py holds
them to that bootstrap). 2,000 tools and 20,000 judged pairs rank in seconds, not hours.
`rankings` ranks every category at once, for a build to compute once.
Only tools joined by judged pairs can be set against each other: the largest set of tools so
joined is ranked, and every other tool is listed apart with the reason, never ranked by guess.
A judgment whose persona flipped with the order counts as it was given: its two answers cancel.

Schema "panel.rank/1":

    {"schema": "panel.rank/1", "category": str|null, "generated_at": iso,
     "pairs": int, "judgments": int, "interval": "sandwich"|null,
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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from panel.cards import ToolCard
from panel.results import judge, judge_line
from panel.store import StoredPair

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from scipy.sparse import csc_matrix, csr_matrix

SCHEMA = "panel.rank/1"

INTERVAL = "sandwich"
"""How the intervals are made (the document's "interval"): see _standard_errors."""
LEVEL = 0.90
REGULARISATION = 0.01
"""choix's alpha: keeps a tool that never lost (or never won) at a finite strength."""

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
    return _document(tools, judgments, category, compared)


def rankings(
    tools: list[ToolCard],
    judgments: list[StoredPair],
    compared: set[frozenset[str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Return the ranking document of every category of the tools, by category as the cards
    spell it (`ranking` of each): what a build computes once, for every page that shows a
    ranking. Each judgment is read once, and each category fitted on its own pairs."""
    members: dict[str, list[ToolCard]] = {}
    for tool in tools:
        members.setdefault(tool.category.casefold(), []).append(tool)
    category_of = {tool.slug: tool.category.casefold() for tool in tools}
    among: dict[str, list[StoredPair]] = {}
    for judgment in judgments:
        found = category_of.get(judgment.first)
        if found is not None and found == category_of.get(judgment.second):
            among.setdefault(found, []).append(judgment)
    return {
        mine[0].category: _document(mine, among.get(key, []), mine[0].category, compared)
        for key, mine in sorted(members.items())
    }


def _document(
    tools: list[ToolCard],
    judgments: list[StoredPair],
    category: str | None,
    compared: set[frozenset[str]] | None,
) -> dict[str, Any]:
    """Return the ranking document of these tools from the judgments among them."""
    by_slug = {tool.slug: tool for tool in tools}
    judged = [j for j in judgments if j.first in by_slug and j.second in by_slug]
    pairs = _pairs(judged)
    counts = Counter(slug for pair in pairs for slug in pair)
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
        "interval": INTERVAL if entries else None,
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
    parent: dict[str, str] = {}

    def root(slug: str) -> str:
        parent.setdefault(slug, slug)
        while parent[slug] != slug:
            parent[slug] = parent[parent[slug]]  # halve the path: near O(1) a look
            slug = parent[slug]
        return slug

    for a, b in pairs:
        parent[root(a)] = root(b)
    groups: dict[str, set[str]] = {}
    for slug in parent:
        groups.setdefault(root(slug), set()).add(slug)
    return min(groups.values(), key=lambda g: (-len(g), min(g)), default=set())


def _fitted(
    tools: list[ToolCard], judgments: list[StoredPair], counts: Counter[str]
) -> list[dict[str, Any]]:
    """Return the ranked entries: each tool's strength, its 90% interval and its rank."""
    index = {tool.slug: n for n, tool in enumerate(tools)}
    judged = Judged.of(
        len(tools),
        [
            (index[j.first], index[j.second], j.prefers)
            for j in judgments
            if j.first in index and j.second in index
        ],
    )
    strengths, low, high = fit(judged, REGULARISATION, LEVEL)
    shown = [round(float(strength), 3) for strength in strengths]
    order = sorted(range(len(tools)), key=lambda n: (-shown[n], tools[n].name.casefold()))
    rank_of: dict[float, int] = {}
    for place, strength in enumerate(sorted(shown, reverse=True), start=1):
        rank_of.setdefault(strength, place)
    entries = [
        {
            "slug": tools[n].slug,
            "name": tools[n].name,
            "strength": shown[n],
            "low": round(float(low[n]), 3),
            "high": round(float(high[n]), 3),
            # tools of equal strength share a rank (1, 2, 2, 4)
            "rank": rank_of[shown[n]],
            "pairs": counts[tools[n].slug],
            "picked_pct": picked_pct(shown[n]),
            "picked_low": picked_pct(float(low[n])),
            "picked_high": picked_pct(float(high[n])),
        }
        for n in order
    ]
    return _with_tiers(entries)


@dataclass(frozen=True)
class Judged:
    """The judged pairs of n tools as the fit reads them: each pair once (first < second by
    index), with the wins of each side counted as choix counts them (a win 2, a tie 1 each)."""

    n: int
    first: NDArray[np.int64]
    second: NDArray[np.int64]
    wins: NDArray[np.float64]
    """Of first over second."""
    losses: NDArray[np.float64]
    """Of second over first."""

    @classmethod
    def of(cls, n: int, judgments: list[tuple[int, int, str]]) -> Judged:
        """Return the pairs of (shown first, shown second, prefers) judgments of n tools."""
        import numpy as np

        tally: dict[tuple[int, int], list[float]] = {}
        for a, b, prefers in judgments:
            won = {"first": 2.0, "second": 0.0}.get(prefers, 1.0)  # by a, in half-wins
            cell = tally.setdefault((min(a, b), max(a, b)), [0.0, 0.0])
            cell[0 if a < b else 1] += won
            cell[1 if a < b else 0] += 2.0 - won
        pairs = sorted(tally)
        return cls(
            n,
            np.array([i for i, _ in pairs], dtype=np.int64),
            np.array([j for _, j in pairs], dtype=np.int64),
            np.array([tally[p][0] for p in pairs], dtype=np.float64),
            np.array([tally[p][1] for p in pairs], dtype=np.float64),
        )


def fit(
    judged: Judged, alpha: float, level: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Return the tools' strengths (log scale, mean 0) and the low and high ends of their
    `level` intervals, from the judged pairs of one joined set of tools."""
    from statistics import NormalDist  # scipy.stats would add 1.5 s of imports to `panel rank`

    strengths = _strengths(judged, alpha)
    spread = NormalDist().inv_cdf(0.5 + level / 2) * _standard_errors(judged, strengths, alpha)
    return strengths, strengths - spread, strengths + spread


def _strengths(
    judged: Judged, alpha: float, tol: float = 1e-8, max_iter: int = 100
) -> NDArray[np.float64]:
    """Return choix's `ilsr_pairwise(alpha=alpha)` estimate, on the sparse graph of the pairs.

    Each round of ILSR takes the stationary distribution of a Markov chain whose rates are
    alpha between every two tools plus, per pair, each side's losses over the sum of the two
    weights. choix builds that chain dense and factorises it (O(n^3) a round); the uniform
    alpha part moves to the right-hand side instead (with the distribution summing to 1,
    pi^T (S - n alpha I) = -alpha 1^T), so each round is one sparse solve of the pairs' graph.
    The same stopping rule as choix (L1 change of the strengths under tol).
    """
    import numpy as np
    from scipy.sparse import csc_matrix

    n, i, j = judged.n, judged.first, judged.second
    every = np.arange(n)
    weights, params = np.ones(n), np.zeros(n)
    dist = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        total = weights[i] + weights[j]
        to_second, to_first = judged.losses / total, judged.wins / total  # the chain's rates
        out = np.bincount(i, to_second, n) + np.bincount(j, to_first, n) + alpha * n
        chain = csc_matrix(
            (
                np.concatenate([to_second, to_first, -out]),
                (np.concatenate([j, i, every]), np.concatenate([i, j, every])),
            ),
            shape=(n, n),
        )  # transposed: the system is solved for the left eigenvector
        dist = _solved(chain, np.full(n, -alpha), dist)
        found = np.log(dist)
        found -= found.mean()
        if np.abs(found - params).sum() < tol:
            return np.asarray(found, dtype=np.float64)
        params = found
        weights = np.exp(params) * n / np.exp(params).sum()
    raise RuntimeError(f"the strengths did not settle after {max_iter} rounds")


def _solved(
    chain: csc_matrix, rhs: NDArray[np.float64], start: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Return the stationary distribution solving chain x = rhs: by GMRES from the last
    round's (a few milliseconds at 2,000 tools, where a sparse LU of the same graph fills in
    and takes 0.4 s), else by the LU when GMRES does not settle or leaves a weight not above 0."""
    import numpy as np
    from scipy.sparse.linalg import gmres, spsolve

    found, info = gmres(chain, rhs, x0=start, rtol=1e-13, atol=0.0, restart=50, maxiter=200)
    if info != 0 or not np.all(found > 0):
        found = spsolve(chain, rhs)
    return np.asarray(found, dtype=np.float64)


def _standard_errors(
    judged: Judged, strengths: NDArray[np.float64], alpha: float
) -> NDArray[np.float64]:
    """Return each strength's standard error, robust to judgments of one pair agreeing with
    each other (the pairs are the clusters, as the bootstrap this replaces drew them).

    A sandwich around the equations the fit solves (wins less expected wins, less alpha's
    pull): bread B, their derivative (the Fisher information, a weighted Laplacian of the
    pairs, plus alpha's curvature); meat M, the Laplacian of each pair's squared residual
    (HC3); covariance B+ M B+ on strengths of mean 0. One dense inverse, O(n^3) for n ranked
    tools, against 1,000 refits of O(n^3) each before. Checked against that bootstrap in
    tests/test_rank.py.
    """
    import numpy as np

    n, i, j = judged.n, judged.first, judged.second
    weights = np.exp(strengths) * n / np.exp(strengths).sum()
    p = weights[i] / (weights[i] + weights[j])
    played = judged.wins + judged.losses
    information = played * p * (1 - p)
    bread = _laplacian(n, i, j, information).toarray()
    bread += alpha * n * (np.diag(weights) - np.outer(weights, weights) / n)
    inverse = _inverse(bread + 1.0 / n) - 1.0 / n  # B+, as B 1 = 0
    # HC3: each pair's residual over 1 - its leverage, as if the fit had not seen it
    leverage = information * (inverse[i, i] + inverse[j, j] - 2 * inverse[i, j])
    residual = (judged.wins - played * p) / (1 - np.minimum(leverage, 0.99))
    meat = _laplacian(n, i, j, residual**2)
    variance = np.einsum("ik,ki->i", inverse, np.asarray(meat @ inverse))
    return np.asarray(np.sqrt(np.maximum(variance, 0.0)), dtype=np.float64)


def _inverse(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return the inverse of a symmetric positive definite matrix from its Cholesky factor
    (LAPACK's potrf then potri: n^3 flops, where solving for the identity costs 2.3 n^3), in
    place of the matrix."""
    import numpy as np
    from scipy.linalg import lapack

    factor, info = lapack.dpotrf(matrix, lower=False, overwrite_a=True)
    if info == 0:
        found, info = lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"the information matrix is not positive definite ({info})")
    upper = np.triu(found)
    upper += np.triu(found, 1).T
    return np.asarray(upper, dtype=np.float64)


def _laplacian(
    n: int, i: NDArray[np.int64], j: NDArray[np.int64], weight: NDArray[np.float64]
) -> csr_matrix:
    """Return the weighted Laplacian of the pairs' graph: sum of w (e_i - e_j)(e_i - e_j)^T."""
    import numpy as np
    from scipy.sparse import csr_matrix

    degree = np.bincount(i, weight, n) + np.bincount(j, weight, n)
    every = np.arange(n)
    return csr_matrix(
        (
            np.concatenate([-weight, -weight, degree]),
            (np.concatenate([i, j, every]), np.concatenate([j, i, every])),
        ),
        shape=(n, n),
    )


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
