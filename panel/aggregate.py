"""The aggregator: four reviews in, one panel result out ("Ship · 3 ship / 1 skip", 75%)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def panel_result(reviews: Sequence[Scored]) -> PanelResult:
    """Return the panel result of reviews (any number, none included)."""
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
    )
