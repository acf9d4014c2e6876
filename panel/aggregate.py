"""The aggregator: four reviews in, one panel result out ("Ship · 3 ship / 1 skip", 75%).

The result also carries flags, warnings for a reader: an `injection` flag when the card's text
tried to instruct the reviewers (see panel.injection), and an `unanimous-extreme` flag when every
reviewer gave 95 or more, or 5 or less, which real products rarely earn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from panel.injection import Finding, describe

EXTREME_HIGH = 95
EXTREME_LOW = 5


class Scored(Protocol):
    @property
    def score(self) -> int: ...
    @property
    def verdict(self) -> str: ...


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


def panel_result(reviews: Sequence[Scored], findings: Sequence[Finding] = ()) -> PanelResult:
    """Return the panel result of reviews (any number, none included) of a card with findings."""
    ships = sum(1 for r in reviews if r.verdict == "ship")
    skips = len(reviews) - ships
    verdict = "Ship" if ships > skips else "Skip" if ships < skips else "Split"
    scores = [r.score for r in reviews]
    return PanelResult(
        ships=ships,
        skips=skips,
        reviews=len(reviews),
        ship_pct=round(100 * ships / len(reviews)) if reviews else 0,
        verdict=verdict,
        label=f"{verdict} · {ships} ship / {skips} skip",
        score_mean=round(sum(scores) / len(scores), 1) if scores else None,
        score_min=min(scores) if scores else None,
        score_max=max(scores) if scores else None,
        flags=flags(reviews, findings),
    )
