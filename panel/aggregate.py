"""The aggregator: four reviews in, one panel result out ("Ship · 3 ship / 1 skip", 75%).

A persona may answer several times (--samples N): its score is then the mean of its samples and
its verdict the rule on that mean, and the panel's ship % carries a 90% interval, a percentile
bootstrap over each persona's samples (see `ship_interval`).

The result also carries flags, warnings for a reader: an `injection` flag when the card's text
tried to instruct the reviewers (see panel.injection), and an `unanimous-extreme` flag when every
reviewer gave 95 or more, or 5 or less, which real products rarely earn.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from panel.injection import Finding, describe
from panel.rules import verdict_for

EXTREME_HIGH = 95
EXTREME_LOW = 5

BOOTSTRAP_ROUNDS = 2000
INTERVAL = 0.90


class Scored(Protocol):
    @property
    def score(self) -> int: ...
    @property
    def verdict(self) -> str: ...


@dataclass(frozen=True)
class Judged:
    """One persona's judgment of a card: the scores of its samples, in sample order."""

    persona: str
    scores: tuple[int, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores)

    @property
    def sd(self) -> float | None:
        """The samples' standard deviation (None for a single sample)."""
        return statistics.stdev(self.scores) if len(self.scores) > 1 else None

    @property
    def verdict(self) -> str:
        """The rule on the mean score."""
        return verdict_for(self.mean)

    @property
    def score(self) -> int:
        """The mean rounded to a whole score, never across the ship line (59.6 is 59, a skip)."""
        shown = round(self.mean)
        return shown if verdict_for(shown) == self.verdict else math.floor(self.mean)

    @property
    def split(self) -> tuple[int, int] | None:
        """(ship, skip) sample verdicts when the samples disagree, else None."""
        ships = sum(1 for score in self.scores if verdict_for(score) == "ship")
        return (ships, len(self.scores) - ships) if 0 < ships < len(self.scores) else None

    def label(self) -> str:
        """Return the score as people read it: "72", or "72 ± 6" (± the samples' sd)."""
        return f"{self.score}" if self.sd is None else f"{self.score} ± {round(self.sd)}"


def ship_interval(judged: Sequence[Judged]) -> tuple[int, int] | None:
    """Return the 90% interval of the panel's ship %, or None when no persona has two samples.

    A percentile bootstrap: each round draws every persona's samples again with replacement,
    takes the verdict of their mean and counts the ship %; the interval runs from the 5th to
    the 95th percentile of 2,000 rounds. It measures how far the panel's answer moves with its
    judges' noise, not how right the judges are. Seeded by the scores: same scores, same interval.
    """
    if not judged or all(len(j.scores) < 2 for j in judged):
        return None
    rng = random.Random(repr([j.scores for j in judged]))
    rounds = []
    for _ in range(BOOTSTRAP_ROUNDS):
        ships = sum(
            verdict_for(statistics.fmean(rng.choices(j.scores, k=len(j.scores)))) == "ship"
            for j in judged
        )
        rounds.append(round(100 * ships / len(judged)))
    rounds.sort()
    tail = (1 - INTERVAL) / 2
    low = rounds[int(tail * BOOTSTRAP_ROUNDS)]
    high = rounds[math.ceil((1 - tail) * BOOTSTRAP_ROUNDS) - 1]
    return low, high


@dataclass(frozen=True)
class PanelResult:
    """What the panel as a whole says about one tool."""

    ships: int
    skips: int
    reviews: int
    ship_pct: int
    verdict: str
    """"Ship" if ships outnumber skips, "Skip" if fewer, "Split" if equal."""
    label: str
    score_mean: float | None
    score_min: int | None
    score_max: int | None
    samples: int = 1
    """The most samples any persona gave."""
    ship_pct_interval: tuple[int, int] | None = None
    """The 90% interval of ship_pct (see ship_interval); None with one sample each."""
    flags: list[dict[str, Any]] = field(default_factory=list)
    """{"kind": "injection" | "unanimous-extreme", "message": str, "found": [findings]}."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def flags(reviews: Sequence[Scored], findings: Sequence[Finding] = ()) -> list[dict[str, Any]]:
    """Return the flags a reader should see next to the panel result."""
    raised: list[dict[str, Any]] = []
    if findings:
        raised.append(
            {
                "kind": "injection",
                "message": describe(list(findings)),
                "found": [asdict(finding) for finding in findings],
            }
        )
    scores = [r.score for r in reviews]
    if len(scores) >= 2 and (min(scores) >= EXTREME_HIGH or max(scores) <= EXTREME_LOW):
        bound = (
            f"{EXTREME_HIGH} or more" if min(scores) >= EXTREME_HIGH else f"{EXTREME_LOW} or less"
        )
        raised.append(
            {
                "kind": "unanimous-extreme",
                "message": f"All {len(scores)} reviewers scored {bound}: read the reviews "
                "before trusting the verdict.",
                "found": [],
            }
        )
    return raised


def panel_result(judged: Sequence[Judged], findings: Sequence[Finding] = ()) -> PanelResult:
    """Return the panel result of personas' judgments (any number, none included) of a card
    with findings."""
    ships = sum(1 for j in judged if j.verdict == "ship")
    skips = len(judged) - ships
    verdict = "Ship" if ships > skips else "Skip" if ships < skips else "Split"
    scores = [j.score for j in judged]
    interval = ship_interval(judged)
    return PanelResult(
        ships=ships,
        skips=skips,
        reviews=len(judged),
        ship_pct=round(100 * ships / len(judged)) if judged else 0,
        verdict=verdict,
        label=f"{verdict} · {ships} ship / {skips} skip",
        score_mean=round(statistics.fmean(j.mean for j in judged), 1) if judged else None,
        score_min=min(scores) if scores else None,
        score_max=max(scores) if scores else None,
        samples=max((len(j.scores) for j in judged), default=1),
        ship_pct_interval=interval,
        flags=flags(judged, findings),
    )
