"""Statistics of an eval run: agreement, spread, ranking against outcomes, the tests of the
probes. Pure functions.

Lists in, a number (or None when the statistic is undefined, never nan) out; nothing is
rounded here. numpy, scipy and krippendorff are imported inside the functions, so importing
this module (and `panel --help`) stays light.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

SCORE_MAX = 100


def krippendorff_alpha(ratings: Sequence[Sequence[float | None]]) -> float | None:
    """Return interval-level Krippendorff's alpha of ratings[coder][unit] (None = missing).

    None when undefined: fewer than two units rated twice or more, or every such rating equal.
    """
    pairable = _pairable_values(ratings)
    if len(pairable) < 2 or len({value for unit in pairable for value in unit}) < 2:
        return None
    import krippendorff
    import numpy as np

    data = np.array([[np.nan if v is None else v for v in coder] for coder in ratings], float)
    alpha = float(krippendorff.alpha(reliability_data=data, level_of_measurement="interval"))
    return alpha if math.isfinite(alpha) else None


def _pairable_values(ratings: Sequence[Sequence[float | None]]) -> list[list[float]]:
    """Return the values of each unit that has two or more of them."""
    units = [[v for v in unit if v is not None] for unit in zip(*ratings, strict=True)]
    return [unit for unit in units if len(unit) >= 2]


def fleiss_kappa(votes: Sequence[Sequence[str]]) -> float | None:
    """Return Fleiss' kappa of votes[unit] = the category each rater of that unit chose.

    Fleiss needs the same number of raters per unit: units with another count than the
    most common one are dropped. None with fewer than two units left or chance agreement 1.
    """
    raters = Counter(len(unit) for unit in votes if unit).most_common(1)
    n = raters[0][0] if raters else 0
    units = [Counter(unit) for unit in votes if len(unit) == n]
    if len(units) < 2 or n < 2:
        return None
    totals: Counter[str] = sum(units, Counter())
    expected = sum((count / (n * len(units))) ** 2 for count in totals.values())
    if expected >= 1:
        return None
    observed = statistics.fmean(
        (sum(c * c for c in unit.values()) - n) / (n * (n - 1)) for unit in units
    )
    return (observed - expected) / (1 - expected)


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Return Spearman's rank correlation of paired values (None: under 2 pairs, or a constant side)."""
    if len(xs) < 2 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr(xs, ys).statistic)


def sign_flip_p(differences: Sequence[float]) -> float | None:
    """Return the two-sided p-value of a paired permutation test that the differences average
    zero: each difference's sign flipped at random (scipy's permutation_test, exact up to 13
    differences, 9,999 seeded resamples beyond), how often chance alone gives a mean this far
    from zero. Its smallest value with n differences is 2 / 2**n (see `smallest_p`).

    None under two differences, or when every difference is zero (nothing to test).
    """
    if len(differences) < 2 or not any(differences):
        return None
    import numpy as np
    from scipy.stats import permutation_test

    result = permutation_test(
        (np.asarray(differences, dtype=float),),
        _mean_along,
        permutation_type="samples",
        vectorized=True,
        n_resamples=9999,
        alternative="two-sided",
        rng=0,
    )
    p = float(result.pvalue)
    return min(1.0, p) if math.isfinite(p) else None


def _mean_along(values: Any, axis: int) -> Any:
    return values.mean(axis=axis)


def smallest_p(units: int) -> float:
    """Return the smallest two-sided p a sign-flip test of `units` differences can give."""
    return 1.0 if units < 2 else min(1.0, 2.0 / 2**units)


def units_needed(alpha: float) -> int:
    """Return the fewest units a sign-flip test needs to give a p below alpha at all."""
    units = 2
    while smallest_p(units) >= alpha:
        units += 1
    return units


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float] | None:
    """Return the t-interval of the mean of values at `level` (None under two values)."""
    if len(values) < 2:
        return None
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    if sd == 0:
        return mean, mean
    from scipy.stats import t

    half = float(t.ppf(0.5 + level / 2, len(values) - 1)) * sd / math.sqrt(len(values))
    return mean - half, mean + half


def pooled_sd(sets: Sequence[Sequence[float]]) -> float | None:
    """Return the pooled standard deviation of several sample sets: the square root of their
    mean variance (ddof=1), over the sets of two or more values; None when there is none.

    The mean of the sets' SDs would read low: at two samples a set's SD averages about 0.8 of
    the true SD (E[s] = sigma * sqrt(2 / pi)), while the mean variance is unbiased.
    """
    variances = [statistics.variance(values) for values in sets if len(values) >= 2]
    return math.sqrt(statistics.fmean(variances)) if variances else None


def spearman_test(xs: Sequence[float], ys: Sequence[float]) -> tuple[float | None, float | None]:
    """Return Spearman's rho of paired values and its two-sided p-value (None, None: under 3
    pairs, or a side that never varies)."""
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None, None
    from scipy.stats import spearmanr

    result = spearmanr(xs, ys)
    rho, p = float(result.statistic), float(result.pvalue)
    return (rho if math.isfinite(rho) else None), (p if math.isfinite(p) else None)


def auc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Return ROC AUC: the chance a random positive scores above a random negative (ties 0.5).

    It is Mann-Whitney's U of the positives over n_pos * n_neg; None when a class is empty.
    """
    pos = [s for s, p in zip(scores, positives, strict=True) if p]
    neg = [s for s, p in zip(scores, positives, strict=True) if not p]
    if not pos or not neg:
        return None
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(pos, neg).statistic) / (len(pos) * len(neg))


def pairwise_accuracy(scores: Sequence[float], outcomes: Sequence[float]) -> float | None:
    """Return the share of pairs with different outcomes that the scores order the same way.

    A score tie counts half; None when no two items have different outcomes.
    """
    items = list(zip(scores, outcomes, strict=True))
    points = [
        _pair_point(a, b) for i, a in enumerate(items) for b in items[i + 1 :] if a[1] != b[1]
    ]
    return statistics.fmean(points) if points else None


def _pair_point(a: tuple[float, float], b: tuple[float, float]) -> float:
    if a[0] == b[0]:
        return 0.5
    return 1.0 if (a[0] > b[0]) == (a[1] > b[1]) else 0.0


def histogram(scores: Sequence[float], band: int = 5) -> list[dict[str, Any]]:
    """Return scores counted in bands of `band` points from 0: {"from", "to", "count"} each.

    With band 5: 0–4, 5–9, …, 95–100 (the last band holds 100 too).
    """
    starts = range(0, SCORE_MAX, band)
    counts = Counter(_band_index(score, band, len(starts)) for score in scores)
    last = len(starts) - 1
    return [
        {"from": start, "to": SCORE_MAX if i == last else start + band - 1, "count": counts[i]}
        for i, start in enumerate(starts)
    ]


def _band_index(score: float, band: int, bands: int) -> int:
    if not 0 <= score <= SCORE_MAX:
        raise ValueError(f"score {score} is outside 0–{SCORE_MAX}")
    return min(int(score // band), bands - 1)


def crowded_band(
    scores: Sequence[float], band: int = 5, share: float = 0.30
) -> dict[str, Any] | None:
    """Return the fullest band as {"from", "to", "share"} when it holds more than `share` of
    the scores (the lowest such band on a tie); None otherwise or without scores."""
    if not scores:
        return None
    fullest = max(histogram(scores, band), key=lambda b: b["count"])
    held = fullest["count"] / len(scores)
    return {"from": fullest["from"], "to": fullest["to"], "share": held} if held > share else None


def mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Return the mean and sample standard deviation (ddof=1; None with too few values)."""
    mean = statistics.fmean(values) if values else None
    sd = statistics.stdev(values) if len(values) >= 2 else None
    return mean, sd
