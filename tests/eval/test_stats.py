"""The eval statistics against known values: textbook examples, hand counts, and None when undefined."""

from __future__ import annotations

import pytest

from panel.eval import stats

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers,
# 12 units, interval alpha 0.849 (nominal 0.743).
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]

# Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories, kappa 0.210.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def fleiss_votes(table: list[list[int]]) -> list[list[str]]:
    """Return a count table (subjects x categories) as each subject's list of labels."""
    return [[f"c{j}" for j, count in enumerate(row) for _ in range(count)] for row in table]


def test_krippendorff_alpha_matches_the_textbook_example() -> None:
    assert stats.krippendorff_alpha(KRIPPENDORFF_2011) == pytest.approx(0.849, abs=0.001)


def test_krippendorff_alpha_by_hand() -> None:
    # Pairable values 1,1 | 2,2 | 3,4: D_o = 2/6, D_e = 82/30, alpha = 1 - 10/82.
    ratings: list[list[float | None]] = [[1, 2, 3, None], [1, 2, 4, 5]]
    assert stats.krippendorff_alpha(ratings) == pytest.approx(1 - 10 / 82)
    assert stats.krippendorff_alpha([[1, 2, 3], [1, 2, 3]]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "ratings",
    [
        [],
        [[1, 2, 3]],  # one coder: nothing to pair
        [[1, None], [2, None]],  # one unit rated twice
        [[3, 3, 5], [3, 3, None]],  # the pairable values never differ
        [[7, 7], [7, 7]],
    ],
)
def test_krippendorff_alpha_is_none_when_undefined(ratings: list[list[float | None]]) -> None:
    assert stats.krippendorff_alpha(ratings) is None


def test_fleiss_kappa_matches_the_wikipedia_example() -> None:
    kappa = stats.fleiss_kappa(fleiss_votes(FLEISS_TABLE))
    assert kappa == pytest.approx(0.210, abs=0.0005)


def test_fleiss_kappa_drops_units_with_another_rater_count() -> None:
    votes = [*fleiss_votes(FLEISS_TABLE), ["c0", "c1"], ["c4"] * 15]
    assert stats.fleiss_kappa(votes) == stats.fleiss_kappa(fleiss_votes(FLEISS_TABLE))


def test_fleiss_kappa_by_hand() -> None:
    # Perfect agreement on two categories: P = 1, Pe = 0.5, kappa 1.
    assert stats.fleiss_kappa([["ship", "ship"], ["skip", "skip"]]) == pytest.approx(1.0)
    # Total disagreement, two raters: P = 0, Pe = 0.5, kappa -1.
    assert stats.fleiss_kappa([["ship", "skip"], ["skip", "ship"]]) == pytest.approx(-1.0)


@pytest.mark.parametrize(
    "votes",
    [
        [],
        [["ship", "skip", "ship"]],  # one unit
        [["ship", "ship"], ["ship", "ship"]],  # one category: chance agreement is 1
        [["ship"], ["skip"]],  # one rater per unit
        [[], []],
    ],
)
def test_fleiss_kappa_is_none_when_undefined(votes: list[list[str]]) -> None:
    assert stats.fleiss_kappa(votes) is None


def test_spearman() -> None:
    assert stats.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert stats.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # Ranks 1..5 against 2,1,4,3,5: sum d^2 = 4, rho = 1 - 6*4/(5*24) = 0.8.
    assert stats.spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("xs", "ys"), [([], []), ([1.0], [2.0]), ([1, 1, 1], [1, 2, 3]), ([1, 2, 3], [5, 5, 5])]
)
def test_spearman_is_none_when_undefined(xs: list[float], ys: list[float]) -> None:
    assert stats.spearman(xs, ys) is None


def test_auc_counts_pairs_and_halves_ties() -> None:
    assert stats.auc([90, 80, 10, 20], [True, True, False, False]) == 1.0
    assert stats.auc([10, 20, 90, 80], [True, True, False, False]) == 0.0
    # Positives 3, 2 against negatives 1, 2: pairs 3>1, 3>2, 2>1, 2=2 -> 3.5 / 4.
    assert stats.auc([3, 2, 1, 2], [True, True, False, False]) == 0.875
    assert stats.auc([5, 5], [True, False]) == 0.5


def test_auc_is_none_with_one_class() -> None:
    assert stats.auc([1, 2], [True, True]) is None
    assert stats.auc([1, 2], [False, False]) is None
    assert stats.auc([], []) is None


def test_pairwise_accuracy() -> None:
    assert stats.pairwise_accuracy([80, 60, 40], [1.0, 0.5, 0.0]) == 1.0
    # a..d: (a,b) 1, (a,c) score tie 0.5, (b,c) 1, (b,d) 1, (c,d) 1; (a,d) same outcome -> 4.5 / 5.
    scores, outcomes = [70, 50, 70, 90], [1.0, 0.0, 0.5, 1.0]
    assert stats.pairwise_accuracy(scores, outcomes) == pytest.approx(0.9)
    assert stats.pairwise_accuracy([10, 90], [1.0, 0.0]) == 0.0


def test_pairwise_accuracy_is_none_without_a_pair() -> None:
    assert stats.pairwise_accuracy([], []) is None
    assert stats.pairwise_accuracy([10, 90], [1.0, 1.0]) is None


def test_histogram_bands_and_edges() -> None:
    bands = stats.histogram([0, 4, 4.9, 5, 59, 60, 95, 99.5, 100])
    assert len(bands) == 20
    assert bands[0] == {"from": 0, "to": 4, "count": 3}
    assert bands[1] == {"from": 5, "to": 9, "count": 1}
    assert bands[11] == {"from": 55, "to": 59, "count": 1}
    assert bands[12] == {"from": 60, "to": 64, "count": 1}
    assert bands[-1] == {"from": 95, "to": 100, "count": 3}
    assert sum(b["count"] for b in bands) == 9
    assert [b["count"] for b in stats.histogram([])] == [0] * 20
    assert [(b["from"], b["to"]) for b in stats.histogram([], band=25)] == [
        (0, 24),
        (25, 49),
        (50, 74),
        (75, 100),
    ]


def test_histogram_refuses_a_score_outside_the_range() -> None:
    with pytest.raises(ValueError, match="outside"):
        stats.histogram([101])
    with pytest.raises(ValueError, match="outside"):
        stats.histogram([-1])


def test_crowded_band() -> None:
    assert stats.crowded_band([70, 71, 72, 10, 90, 40]) == {"from": 70, "to": 74, "share": 0.5}
    # Exactly 30% is not crowded: more than `share` is.
    assert stats.crowded_band([70, 71, 72, 10, 20, 30, 40, 50, 85, 90]) is None
    assert stats.crowded_band([70, 71, 72, 10, 20, 30, 40, 50, 85, 90], share=0.25) == {
        "from": 70,
        "to": 74,
        "share": 0.3,
    }
    assert stats.crowded_band([]) is None
    assert stats.crowded_band([100]) == {"from": 95, "to": 100, "share": 1.0}


def test_mean_sd() -> None:
    mean, sd = stats.mean_sd([2, 4, 4, 4, 5, 5, 7, 9])
    assert mean == 5.0
    assert sd == pytest.approx((32 / 7) ** 0.5)  # sample sd: squares sum 32, n - 1 = 7
    assert stats.mean_sd([3.5]) == (3.5, None)
    assert stats.mean_sd([]) == (None, None)


def test_sign_flip_p() -> None:
    assert stats.sign_flip_p([]) is None and stats.sign_flip_p([4.0]) is None
    assert stats.sign_flip_p([0.0, 0.0, 0.0]) is None  # nothing changed
    # A shift with no noise: only the observed signs (and their mirror) are as extreme.
    assert stats.sign_flip_p([3.0] * 6) == pytest.approx(stats.smallest_p(6)) == 2 / 64
    assert stats.sign_flip_p([3.0, 3.0]) == pytest.approx(0.5)  # two cards can show nothing
    assert stats.sign_flip_p([5.0, -5.0, 5.0, -5.0]) == pytest.approx(1.0)
    assert stats.sign_flip_p([6.0, 7.0, 5.0, 6.5, 5.5, 6.0, 7.5, 5.0, 6.0, 6.5]) < 0.01
    assert stats.sign_flip_p([6.0, 7.0, 5.0, 6.5, 5.5] * 4) < 0.001  # 20: resampled, seeded
    assert stats.sign_flip_p([1.0, -2.0, 0.5, 3.0, -1.0] * 4) == stats.sign_flip_p(
        [1.0, -2.0, 0.5, 3.0, -1.0] * 4
    )


def test_mean_interval_and_pooled_sd() -> None:
    assert stats.mean_interval([1.0]) is None
    low, high = stats.mean_interval([1.0, 2.0, 3.0]) or (0, 0)
    assert (low, high) == pytest.approx((2 - 2.4841, 2 + 2.4841), abs=1e-3)  # t(0.975, 2) = 4.303
    assert stats.mean_interval([4.0, 4.0]) == (4.0, 4.0)
    assert stats.pooled_sd([[1.0], []]) is None
    # Variances 2 and 8: the pooled SD is sqrt(5), not the mean of the SDs (sqrt 2 + sqrt 8) / 2.
    assert stats.pooled_sd([[1.0, 3.0], [0.0, 4.0], [9.0]]) == pytest.approx(5**0.5)


def test_spearman_test() -> None:
    rho, p = stats.spearman_test([100, 200, 300, 400, 500, 600], [40, 45, 50, 60, 61, 70])
    assert rho == pytest.approx(1.0) and p is not None and p < 0.01
    assert stats.spearman_test([1, 2], [3, 4]) == (None, None)
    assert stats.spearman_test([1, 2, 3], [5, 5, 5]) == (None, None)


def test_the_mean_of_sds_reads_low_at_two_samples_and_the_pooled_sd_does_not() -> None:
    """Sets of two samples of a judge whose noise has SD 10: the mean of the sets' SDs is about
    sqrt(2 / pi) * 10 = 8.0, the pooled SD (root of the mean variance) about 10."""
    import numpy as np

    sets = np.random.default_rng(1).normal(50, 10, size=(4000, 2)).tolist()
    mean_of_sds = sum(stats.mean_sd(s)[1] or 0.0 for s in sets) / len(sets)
    assert mean_of_sds == pytest.approx(10 * (2 / np.pi) ** 0.5, rel=0.03)
    assert stats.pooled_sd(sets) == pytest.approx(10, rel=0.03)
