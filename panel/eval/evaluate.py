"""`panel eval`: the panel as configured, on a set of cards and on the probes of each, measured.

Every card and every probe is reviewed like `panel review` would (stored samples are reused),
then the document "panel.eval/1" is built from the stored samples: the spread of each persona's
scores, the agreement between personas, the consistency of the answers (failures counted, never
dropped), the stability of samples, the score change under each probe, the agreement with
labelled outcomes, and what the eval's own calls cost. panel.eval.report renders it.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field
from typing import Any

from panel.aggregate import Judged, panel_result
from panel.cards import ToolCard
from panel.errors import ProviderError
from panel.eval import stats
from panel.eval.probes import PROBES, probes
from panel.personas import Persona
from panel.results import judgment
from panel.rules import PROBE_FLAG_FLIPS, PROBE_FLAG_POINTS, verdict_for
from panel.runtime import Runtime
from panel.store import StoredReview

SCHEMA = "panel.eval/1"
ORIGINAL = "original"

CROWDED_SHARE = 0.30
"""A persona is flagged when one 5-point band holds more than this share of its scores."""


@dataclass
class Collected:
    """What the eval gathered: each (card, variant)'s samples by persona, and every failure."""

    reviews: dict[tuple[str, str], dict[str, list[StoredReview]]] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)

    def judged(self, slug: str, variant: str) -> dict[str, Judged]:
        found = self.reviews.get((slug, variant), {})
        return {key: judgment(samples) for key, samples in found.items() if samples}


def variants(cards: list[ToolCard]) -> list[tuple[ToolCard, str, ToolCard]]:
    """Return (card, variant name, card to review) for every card and each of its probes."""
    found = []
    for card in cards:
        found.append((card, ORIGINAL, card))
        found.extend((card, kind, probe) for kind, probe in probes(card).items())
    return found


def failure(card: ToolCard, variant: str, persona: str, error: ProviderError) -> dict[str, str]:
    """Return the entry of one review the eval asked for that failed."""
    return {"tool": card.slug, "persona": persona, "variant": variant, "error": error.message}


def eval_document(runtime: Runtime, cards: list[ToolCard], collected: Collected) -> dict[str, Any]:
    """Return the eval document (schema panel.eval/1) of what was collected."""
    personas = runtime.personas
    return {
        "schema": SCHEMA,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "samples": runtime.settings.samples,
        "cards": [_card_entry(card, collected) for card in cards],
        "personas": {p.key: _spread(runtime, p, cards, collected) for p in personas},
        "agreement": _agreement(personas, cards, collected),
        "consistency": _consistency(runtime, cards, collected),
        "stability": _stability(runtime, cards, collected),
        "perturbations": {kind: _perturbation(kind, personas, cards, collected) for kind in PROBES},
        "labels": _labels(cards, collected),
        "cost": runtime.spent(),
    }


def _card_entry(card: ToolCard, collected: Collected) -> dict[str, Any]:
    judged = list(collected.judged(card.slug, ORIGINAL).values())
    result = panel_result(judged) if judged else None
    return {
        "slug": card.slug,
        "name": card.name,
        "outcome": card.outcome,
        "score_mean": result.score_mean if result else None,
        "ship_pct": result.ship_pct if result else None,
    }


def _scores(persona: str, cards: list[ToolCard], collected: Collected) -> list[int]:
    """Return every sample score persona gave the original cards."""
    found = (collected.reviews.get((c.slug, ORIGINAL), {}).get(persona, []) for c in cards)
    return [review.score for samples in found for review in samples]


def _spread(
    runtime: Runtime, persona: Persona, cards: list[ToolCard], collected: Collected
) -> dict[str, Any]:
    scores = _scores(persona.key, cards, collected)
    mean, sd = stats.mean_sd(scores)
    crowded = stats.crowded_band(scores, share=CROWDED_SHARE)
    return {
        "display_name": persona.display_name,
        "provider": runtime.provider_name(persona),
        "model": runtime.model_name(persona),
        "answers": len(scores),
        "mean": _round(mean),
        "sd": _round(sd),
        "histogram": stats.histogram(scores),
        "crowded_band": crowded,
        "flagged": crowded is not None,
    }


def _agreement(
    personas: list[Persona], cards: list[ToolCard], collected: Collected
) -> dict[str, Any]:
    """Krippendorff's alpha on the personas' mean scores, Fleiss' kappa on their verdicts, over
    the original cards (units) every persona judged."""
    judged = [collected.judged(card.slug, ORIGINAL) for card in cards]
    ratings = [[_mean_or_none(unit.get(p.key)) for unit in judged] for p in personas]
    votes = [[j.verdict for j in unit.values()] for unit in judged if unit]
    return {
        "krippendorff_alpha": _round(stats.krippendorff_alpha(ratings), 3),
        "fleiss_kappa": _round(stats.fleiss_kappa(votes), 3),
        "units": sum(1 for unit in judged if len(unit) >= 2),
    }


def _consistency(runtime: Runtime, cards: list[ToolCard], collected: Collected) -> dict[str, Any]:
    """Count the answers, those whose verdict follows the score rule, those that needed a
    re-ask, and the answers asked for that never became valid (each failure listed)."""
    answers = [r for found in collected.reviews.values() for s in found.values() for r in s]
    asked = len(cards) * (1 + len(PROBES)) * len(runtime.personas) * runtime.settings.samples
    return {
        "answers": len(answers),
        "follow_rule": sum(1 for r in answers if r.verdict == verdict_for(r.score)),
        "reasked": sum(1 for r in answers if r.attempts > 1),
        "invalid": max(0, asked - len(answers)),
        "failures": collected.failures,
    }


def _stability(runtime: Runtime, cards: list[ToolCard], collected: Collected) -> dict[str, Any]:
    """With several samples: the mean sd of a persona's samples of one card, and the share of
    (card, persona) sample sets whose verdicts disagree, over the original cards."""
    samples = runtime.settings.samples
    by_persona: dict[str, dict[str, float | None]] = {}
    every: list[Judged] = []
    for persona in runtime.personas:
        sets = [
            judged
            for card in cards
            if (judged := collected.judged(card.slug, ORIGINAL).get(persona.key)) is not None
            and len(judged.scores) > 1
        ]
        every.extend(sets)
        by_persona[persona.key] = _sd_and_flips(sets)
    overall = _sd_and_flips(every)
    return {
        "samples": samples,
        "mean_sd": overall["mean_sd"] if samples > 1 else None,
        "flip_rate": overall["flip_rate"] if samples > 1 else None,
        "by_persona": by_persona if samples > 1 else {},
    }


def _sd_and_flips(sets: list[Judged]) -> dict[str, float | None]:
    if not sets:
        return {"mean_sd": None, "flip_rate": None}
    return {
        "mean_sd": _round(statistics.fmean(j.sd or 0.0 for j in sets)),
        "flip_rate": _round(sum(1 for j in sets if j.split) / len(sets), 3),
    }


def _perturbation(
    kind: str, personas: list[Persona], cards: list[ToolCard], collected: Collected
) -> dict[str, Any]:
    """Return the mean score change and verdict flip rate a probe causes, over every (card,
    persona) judged both ways, and whether it is flagged."""
    deltas: dict[str, list[float]] = {p.key: [] for p in personas}
    flips = pairs = 0
    for card in cards:
        before, after = collected.judged(card.slug, ORIGINAL), collected.judged(card.slug, kind)
        for persona in personas:
            if persona.key in before and persona.key in after:
                old, new = before[persona.key], after[persona.key]
                deltas[persona.key].append(new.mean - old.mean)
                flips += old.verdict != new.verdict
                pairs += 1
    every = [d for found in deltas.values() for d in found]
    mean_delta = statistics.fmean(every) if every else None
    flip_rate = flips / pairs if pairs else None
    flagged = (mean_delta is not None and abs(mean_delta) >= PROBE_FLAG_POINTS) or (
        flip_rate is not None and flip_rate >= PROBE_FLAG_FLIPS
    )
    return {
        "mean_delta": _round(mean_delta),
        "flip_rate": _round(flip_rate, 3),
        "flagged": flagged,
        "p_value": _round(stats.change_p_value(every), 3),
        "pairs": pairs,
        "by_persona": {k: _round(statistics.fmean(v)) for k, v in deltas.items() if v},
    }


def _labels(cards: list[ToolCard], collected: Collected) -> dict[str, Any]:
    """Against the cards' `outcome:` labels (hit = 1, miss = 0): the share of pairs the panel's
    mean score orders as the outcomes do, Spearman's rho and, for hit / miss labels, AUC."""
    pairs = []
    for card in cards:
        judged = list(collected.judged(card.slug, ORIGINAL).values())
        if card.outcome is not None and judged:
            pairs.append((statistics.fmean(j.mean for j in judged), card.outcome))
    scores = [score for score, _ in pairs]
    outcomes = [1.0 if o == "hit" else 0.0 if o == "miss" else float(o) for _, o in pairs]
    binary = len(pairs) >= 2 and set(outcomes) <= {0.0, 1.0}
    enough = len(pairs) >= 2
    return {
        "cards": len(pairs),
        "pairwise_accuracy": _round(stats.pairwise_accuracy(scores, outcomes), 3)
        if enough
        else None,
        "spearman": _round(stats.spearman(scores, outcomes), 3) if enough else None,
        "auc": _round(stats.auc(scores, [o == 1.0 for o in outcomes]), 3) if binary else None,
    }


def _mean_or_none(judged: Judged | None) -> float | None:
    return None if judged is None else judged.mean


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
