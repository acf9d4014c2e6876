"""`panel eval`: the panel as configured, on a set of cards and on the probes of each, measured.

Every card and every probe is reviewed like `panel review` would (stored samples are reused),
then the document "panel.eval/1" is built from the stored samples: the spread of each persona's
scores, the agreement between personas, the consistency of the answers (failures counted, never
dropped), the stability of samples, the score change under each probe read against the null
probe `repeat` (the same card asked again), the link between a description's length and its
score, the agreement with labelled outcomes, a three-line headline, each card's own changes,
and what the eval's calls cost and what the reviews it reused had cost. With mitigations to
compare, the probes are measured twice, without and with them (`mitigations`).
panel.eval.report renders it.

How a probe is read (part of the document, see `perturbation`): the unit is the card, since the
personas' answers on one card share whatever the probe did to it. For each card, the probe's
change (mean over personas of probe minus original) is set against the repeat's change on the
same card; a sign-flip permutation test over cards says whether the difference is more than
chance (`p_value`, and `flip_p_value` for the share of verdicts flipped), and `flagged` (read
"biased") needs that test below BIAS_ALPHA and the difference large: BIAS_POINTS points or
more, or BIAS_FLIPS more verdicts flipped, than asking again gives. A probe that moves scores as
much as today's fixed rule notices (rules.PROBE_FLAG_*) but not beyond the noise reads "noisy".
"""

from __future__ import annotations

import datetime as dt
import math
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from panel.aggregate import Judged, panel_result
from panel.cards import ToolCard
from panel.errors import ProviderError
from panel.eval import stats
from panel.eval.fmt import num, share, signed
from panel.eval.probes import PROBES, REPEAT, probes
from panel.mitigations import COMPANY, MAKER, TOOL, name_terms
from panel.personas import Persona
from panel.results import judgment
from panel.rules import PROBE_FLAG_FLIPS, PROBE_FLAG_POINTS, verdict_for
from panel.runtime import Runtime
from panel.store import StoredReview

SCHEMA = "panel.eval/1"
ORIGINAL = "original"

CROWDED_SHARE = 0.30
"""A persona is flagged when one 5-point band holds more than this share of its scores."""

BIAS_ALPHA = 0.05
"""A probe is biased only if the per-card test of its difference from the null is below this..."""
BIAS_POINTS = 3.0
"""...and it moves the mean score this many points more than asking again does, either way..."""
BIAS_FLIPS = 0.10
"""...or flips this much more of the verdicts (0.10: ten percentage points)."""

MOVED_MIN_POINTS = 1.0
"""A card counts as moved by a probe when its change is beyond the noise band and this large."""

READINGS = ("biased", "noisy", "too-few-cards", "ok", "baseline")
"""What a probe's row reads: beyond the noise, within it but visible, visible on too few cards
for the per-card test to tell which (never "noisy" then), neither, or the null."""


def reading_text(reading: str, cards_needed: int | None = None) -> str:
    """Return a probe's reading as a reader sees it: "too few cards to test (needs 6)"."""
    if reading == "too-few-cards":
        return f"too few cards to test (needs {cards_needed or cards_to_test()})"
    return reading


def cards_to_test() -> int:
    """Return the fewest cards on which the per-card test can flag a probe (p < BIAS_ALPHA)."""
    return stats.units_needed(BIAS_ALPHA)


_PLACEHOLDER = re.compile("|".join(re.escape(p) for p in (TOOL, MAKER, COMPANY)))


@dataclass
class Collected:
    """What the eval gathered: each (card, variant)'s samples by persona, and every failure."""

    reviews: dict[tuple[str, str], dict[str, list[StoredReview]]] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)

    def judged(self, slug: str, variant: str) -> dict[str, Judged]:
        found = self.reviews.get((slug, variant), {})
        return {key: judgment(samples) for key, samples in found.items() if samples}

    def answers(self) -> list[StoredReview]:
        return [r for found in self.reviews.values() for s in found.values() for r in s]


@dataclass(frozen=True)
class Reused:
    """The stored reviews an eval found and did not ask again, and what they cost when made."""

    reviews: int = 0
    usd: float = 0.0
    unknown: int = 0
    """Of them, those whose cost is not known (made before panel kept it, or imported)."""

    @classmethod
    def of(cls, found: list[StoredReview]) -> Reused:
        costs = [r.cost_usd for r in found]
        return cls(
            reviews=len(found),
            usd=sum(c for c in costs if c is not None),
            unknown=sum(1 for c in costs if c is None),
        )


@dataclass(frozen=True)
class Arm:
    """One way of judging the cards: a runtime (its mitigations) and what it gathered."""

    runtime: Runtime
    collected: Collected


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


def eval_document(
    arm: Arm, cards: list[ToolCard], reused: Reused, mitigated: Arm | None = None
) -> dict[str, Any]:
    """Return the eval document (schema panel.eval/1) of what an arm collected; with a second
    arm judged with mitigations, also the probes before and after them (`mitigations`)."""
    runtime, collected = arm.runtime, arm.collected
    personas = runtime.personas
    perturbations = measure_probes(personas, cards, collected)
    document = {
        "schema": SCHEMA,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "samples": runtime.settings.samples,
        "temperature": runtime.temperature(),
        "judged_with": list(runtime.mitigations.names),
        "cards": [_card_entry(card, collected, perturbations) for card in cards],
        "personas": {p.key: _spread(runtime, p, cards, collected) for p in personas},
        "agreement": _agreement(personas, cards, collected),
        "consistency": _consistency(runtime, cards, collected),
        "stability": _stability(runtime, cards, collected),
        "perturbations": perturbations,
        "power": _power(perturbations),
        "length": _length(personas, cards, collected),
        "labels": _labels(cards, collected),
        "mitigations": None if mitigated is None else _compared(arm, mitigated, cards),
        "cost": {**runtime.spending.to_json(), "reused": _reused_json(reused)},
    }
    document["headline"] = headline(document)
    return document


# ---- the cards and the personas ------------------------------------------------------------


def _card_entry(
    card: ToolCard, collected: Collected, perturbations: dict[str, Any]
) -> dict[str, Any]:
    """Return a card's line: its result, and each probe's change on it (its own view)."""
    judged = list(collected.judged(card.slug, ORIGINAL).values())
    result = panel_result(judged) if judged else None
    changes = {kind: row["by_card"].get(card.slug) for kind, row in perturbations.items()}
    band = (perturbations.get(REPEAT) or {}).get("noise_band")
    return {
        "slug": card.slug,
        "name": card.name,
        "outcome": card.outcome,
        "score_mean": result.score_mean if result else None,
        "ship_pct": result.ship_pct if result else None,
        "description_chars": len(card.description),
        "changes": changes,
        "moved_by": [
            kind
            for kind, change in changes.items()
            if kind != REPEAT and change is not None and _moved(change, band)
        ],
    }


def _moved(change: float, band: float | None) -> bool:
    return abs(change) >= MOVED_MIN_POINTS and (band is None or abs(change) > band)


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
        "provider": runtime.reviewer.provider_for(persona).name,
        "model": runtime.reviewer.model_for(persona),
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
    answers = collected.answers()
    asked = len(cards) * (1 + len(PROBES)) * len(runtime.personas) * runtime.settings.samples
    return {
        "answers": len(answers),
        "follow_rule": sum(1 for r in answers if r.verdict == verdict_for(r.score)),
        "reasked": sum(1 for r in answers if r.attempts > 1),
        "invalid": max(0, asked - len(answers)),
        "failures": collected.failures,
    }


def _stability(runtime: Runtime, cards: list[ToolCard], collected: Collected) -> dict[str, Any]:
    """With several samples: the pooled SD of a persona's samples of one card (the square root
    of the mean variance), the mean of their SDs (reads low), and the share of (card, persona)
    sample sets whose verdicts disagree, over the original cards. Every set was asked at one
    temperature (a stored sample at another is never reused)."""
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
        by_persona[persona.key] = _spread_of_sets(sets)
    overall = _spread_of_sets(every)
    several = samples > 1
    return {
        "samples": samples,
        "temperature": runtime.temperature(),
        "pooled_sd": overall["pooled_sd"] if several else None,
        "mean_sd": overall["mean_sd"] if several else None,
        "flip_rate": overall["flip_rate"] if several else None,
        "by_persona": by_persona if several else {},
    }


def _spread_of_sets(sets: list[Judged]) -> dict[str, float | None]:
    if not sets:
        return {"pooled_sd": None, "mean_sd": None, "flip_rate": None}
    return {
        "pooled_sd": _round(stats.pooled_sd([j.scores for j in sets])),
        "mean_sd": _round(statistics.fmean(j.sd or 0.0 for j in sets)),
        "flip_rate": _round(sum(1 for j in sets if j.split) / len(sets), 3),
    }


# ---- the probes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One persona's change on one card under a probe: mean score after minus before."""

    card: str
    persona: str
    delta: float
    flipped: bool


def changes(
    kind: str, personas: list[Persona], cards: list[ToolCard], collected: Collected
) -> list[Change]:
    """Return the change of every (card, persona) judged both on the card and on its probe."""
    found = []
    for card in cards:
        before, after = collected.judged(card.slug, ORIGINAL), collected.judged(card.slug, kind)
        for persona in personas:
            if persona.key in before and persona.key in after:
                old, new = before[persona.key], after[persona.key]
                found.append(
                    Change(card.slug, persona.key, new.mean - old.mean, old.verdict != new.verdict)
                )
    return found


def by_card(found: list[Change]) -> dict[str, tuple[float, float]]:
    """Return each card's (mean change, share of verdicts flipped) over its personas."""
    cards: dict[str, list[Change]] = {}
    for change in found:
        cards.setdefault(change.card, []).append(change)
    return {
        slug: (
            statistics.fmean(c.delta for c in group),
            sum(c.flipped for c in group) / len(group),
        )
        for slug, group in cards.items()
    }


def measure_probes(
    personas: list[Persona], cards: list[ToolCard], collected: Collected
) -> dict[str, Any]:
    """Return every probe's row, the null probe (repeat) first and the others read against it."""
    null = changes(REPEAT, personas, cards, collected)
    return {
        kind: perturbation(
            kind,
            changes(kind, personas, cards, collected),
            personas,
            None if kind == REPEAT else null,
        )
        for kind in PROBES
    }


def perturbation(
    kind: str, found: list[Change], personas: list[Persona], null: list[Change] | None
) -> dict[str, Any]:
    """Return a probe's row: its mean change and flip rate over (card, persona) pairs, the 95%
    interval of its per-card change, and, against the null (None: this is the null), its effect
    beyond the noise, the per-card tests of it, whether it is flagged, and its reading."""
    every = [c.delta for c in found]
    mean_delta = statistics.fmean(every) if every else None
    flip_rate = sum(c.flipped for c in found) / len(found) if found else None
    cards = by_card(found)
    shifts = [shift for shift, _ in cards.values()]
    row: dict[str, Any] = {
        "mean_delta": _round(mean_delta),
        "flip_rate": _round(flip_rate, 3),
        "ci": _interval(stats.mean_interval(shifts)),
        "pairs": len(found),
        "cards": len(cards),
        "by_persona": {
            p.key: _round(statistics.fmean(c.delta for c in found if c.persona == p.key))
            for p in personas
            if any(c.persona == p.key for c in found)
        },
        "by_card": {slug: _round(shift) for slug, (shift, _) in cards.items()},
    }
    if null is None:
        spread = statistics.stdev(shifts) if len(shifts) >= 2 else None
        row.update(
            p_value=_round(stats.sign_flip_p(shifts), 4),
            flip_p_value=None,
            beyond_noise=None,
            noise_band=_round(None if spread is None else 2 * spread),
            mean_abs_delta=_round(statistics.fmean(abs(d) for d in every) if every else None),
            flagged=False,
            reading="baseline",
        )
        return row
    row.update(_against_null(cards, found, null, mean_delta, flip_rate))
    return row


def _against_null(
    cards: dict[str, tuple[float, float]],
    found: list[Change],
    null: list[Change],
    mean_delta: float | None,
    flip_rate: float | None,
) -> dict[str, Any]:
    """Return what a probe's row says against the null: beyond_noise, the tests, the flag."""
    base = by_card(null)
    common = [slug for slug in cards if slug in base]
    shift_gaps = [cards[s][0] - base[s][0] for s in common]
    flip_gaps = [cards[s][1] - base[s][1] for s in common]
    null_mean = statistics.fmean(c.delta for c in null) if null else None
    null_flips = sum(c.flipped for c in null) / len(null) if null else None
    p, flip_p = stats.sign_flip_p(shift_gaps), stats.sign_flip_p(flip_gaps)
    beyond, flagged = None, False
    if mean_delta is not None and null_mean is not None and common:
        gap, flip_gap = mean_delta - null_mean, (flip_rate or 0.0) - (null_flips or 0.0)
        beyond = {
            "mean_delta": _round(gap),
            "flip_rate": _round(flip_gap, 3),
            "ci": _interval(stats.mean_interval(shift_gaps)),
        }
        flagged = (p is not None and p < BIAS_ALPHA and abs(gap) >= BIAS_POINTS) or (
            flip_p is not None and flip_p < BIAS_ALPHA and flip_gap >= BIAS_FLIPS
        )
    visible = (mean_delta is not None and abs(mean_delta) >= PROBE_FLAG_POINTS) or (
        flip_rate is not None and flip_rate >= PROBE_FLAG_FLIPS
    )
    testable = stats.smallest_p(len(common)) < BIAS_ALPHA
    reading = (
        "biased" if flagged else "ok" if not visible else "noisy" if testable else "too-few-cards"
    )
    return {
        "p_value": _round(p, 4),
        "flip_p_value": _round(flip_p, 4),
        "beyond_noise": beyond,
        "flagged": flagged,
        "reading": reading,
        "reading_text": reading_text(reading),
    }


def _power(perturbations: dict[str, Any]) -> dict[str, Any]:
    """Return how small a p the per-card tests could give, with the cards judged both ways."""
    units = max((row["cards"] for row in perturbations.values()), default=0)
    smallest = stats.smallest_p(units)
    return {
        "cards": units,
        "smallest_p": _round(smallest, 4),
        "enough": smallest < BIAS_ALPHA,
        "cards_needed": cards_to_test(),
    }


# ---- length, labels ------------------------------------------------------------------------


def _length(personas: list[Persona], cards: list[ToolCard], collected: Collected) -> dict[str, Any]:
    """Return, per persona, Spearman's rho between a card's description length (characters)
    and the persona's mean score of it, over the original cards: a length bias shows here even
    without the padding probe."""
    by_persona = {}
    for persona in personas:
        pairs = [
            (len(card.description), judged.mean)
            for card in cards
            if (judged := collected.judged(card.slug, ORIGINAL).get(persona.key)) is not None
        ]
        rho, p = stats.spearman_test([x for x, _ in pairs], [y for _, y in pairs])
        by_persona[persona.key] = {"spearman": _round(rho, 3), "p_value": _round(p, 4)}
    return {"cards": len(cards), "by_persona": by_persona}


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
        "pairs": sum(1 for i, a in enumerate(outcomes) for b in outcomes[i + 1 :] if a != b),
        "pairwise_accuracy": _round(stats.pairwise_accuracy(scores, outcomes), 3)
        if enough
        else None,
        "spearman": _round(stats.spearman(scores, outcomes), 3) if enough else None,
        "auc": _round(stats.auc(scores, [o == 1.0 for o in outcomes]), 3) if binary else None,
    }


# ---- mitigations ---------------------------------------------------------------------------

_BRIEF = ("mean_delta", "flip_rate", "ci", "beyond_noise", "p_value", "flagged", "reading")


def _compared(before: Arm, after: Arm, cards: list[ToolCard]) -> dict[str, Any]:
    """Return the probes without and with the mitigations, side by side, and what the
    mitigations cost the reviews (their length, placeholders in them, spread, agreement with
    the labels)."""
    personas = before.runtime.personas
    rows = {
        name: measure_probes(personas, cards, arm.collected)
        for name, arm in (("before", before), ("after", after))
    }
    added = [
        n for n in after.runtime.mitigations.names if n not in before.runtime.mitigations.names
    ]
    return {
        "names": added,
        "before": list(before.runtime.mitigations.names),
        "after": list(after.runtime.mitigations.names),
        "probes": {
            kind: {side: {k: rows[side][kind][k] for k in _BRIEF} for side in rows}
            for kind in PROBES
        },
        "reviews": {
            side: _review_costs(arm, cards) for side, arm in (("before", before), ("after", after))
        },
    }


def _review_costs(arm: Arm, cards: list[ToolCard]) -> dict[str, Any]:
    """Return what one arm's reviews of the original cards are like: their length, the share
    that name the tool or its maker, the share that name a placeholder, the spread of scores,
    and the agreement with labels."""
    found = [
        (card, review)
        for card in cards
        for samples in arm.collected.reviews.get((card.slug, ORIGINAL), {}).values()
        for review in samples
    ]
    scores = [r.score for _, r in found]
    labels = _labels(cards, arm.collected)
    return {
        "reviews": len(found),
        "review_chars": _round(
            statistics.fmean(len(r.review) for _, r in found) if found else None
        ),
        "names_share": _share_of(found, lambda card, text: _names(card).search(text) is not None),
        "placeholder_share": _share_of(
            found, lambda _, text: _PLACEHOLDER.search(text) is not None
        ),
        "score_sd": _round(stats.mean_sd(scores)[1]),
        "pairwise_accuracy": labels["pairwise_accuracy"],
        "spearman": labels["spearman"],
    }


def _share_of(
    found: list[tuple[ToolCard, StoredReview]], test: Callable[[ToolCard, str], bool]
) -> float | None:
    """Return the share of reviews whose text passes test (None without reviews)."""
    if not found:
        return None
    return _round(sum(1 for card, r in found if test(card, r.review)) / len(found), 3)


def _names(card: ToolCard) -> re.Pattern[str]:
    """Return a pattern of the names --blind-names hides of card: the tool's and its maker's."""
    terms = [t for t, placeholder in name_terms(card).items() if placeholder in (TOOL, MAKER)]
    return re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)


# ---- the headline --------------------------------------------------------------------------


def headline(doc: dict[str, Any]) -> list[str]:
    """Return the report's three lines: what is biased, how noisy the judges are, and how well
    the panel orders the labelled cards."""
    return [_biased_line(doc), _noise_line(doc), _labels_line(doc)]


def _biased_line(doc: dict[str, Any]) -> str:
    rows = {k: r for k, r in doc["perturbations"].items() if k != REPEAT}
    biased = [(k, r) for k, r in rows.items() if r["reading"] == "biased"]
    noisy = [k for k, r in rows.items() if r["reading"] == "noisy"]
    untested = [k for k, r in rows.items() if r["reading"] == "too-few-cards"]
    if biased:
        parts = [
            f"{kind} ({signed(row['beyond_noise']['mean_delta'])} points beyond the noise, "
            f"p {_p(row['p_value'])})"
            for kind, row in biased
        ]
        line = "Biased: " + ", ".join(parts) + "."
    elif not doc["power"]["enough"]:
        line = (
            f"Biased: too few cards to test (needs {cards_to_test()}): with "
            f"{doc['power']['cards']} card(s) the per-card test can go no lower than "
            f"p {_p(doc['power']['smallest_p'])}."
        )
        if untested:
            line += f" Moving scores, untested: {', '.join(untested)}."
    else:
        line = f"Biased: none of the {len(rows)} probes moves scores beyond the judges' own noise."
    if noisy:
        line += f" Within the noise, but moving scores: {', '.join(noisy)}."
    return line


def _noise_line(doc: dict[str, Any]) -> str:
    repeat = doc["perturbations"].get(REPEAT) or {}
    if repeat.get("mean_abs_delta") is None:
        return "Noise: not measured (no card was judged again)."
    line = (
        f"Noise: asked again, a persona's score of a card moves {num(repeat['mean_abs_delta'])} "
        f"points on average and {share(repeat['flip_rate'])} of verdicts flip"
    )
    pooled = doc["stability"]["pooled_sd"]
    if pooled is not None:
        line += f"; samples of one review spread {num(pooled)} points (pooled SD)"
    return line + "."


def _labels_line(doc: dict[str, Any]) -> str:
    labels = doc["labels"]
    if labels["pairwise_accuracy"] is None:
        return (
            "Labels: none to check against; give two or more cards an `outcome:` to see "
            "whether the panel orders them right."
        )
    line = (
        f"Labels: the panel orders {share(labels['pairwise_accuracy'])} of "
        f"{labels['pairs']} labelled pair(s) as the outcomes do"
    )
    if labels["spearman"] is not None:
        line += f" (Spearman {num(labels['spearman'], 2)})"
    return line + "; 50% is a coin."


# ---- small helpers -------------------------------------------------------------------------


def _reused_json(reused: Reused) -> dict[str, Any]:
    return {"reviews": reused.reviews, "usd": round(reused.usd, 6), "unknown": reused.unknown}


def _interval(found: tuple[float, float] | None) -> list[float | None] | None:
    return None if found is None else [_round(found[0]), _round(found[1])]


def _mean_or_none(judged: Judged | None) -> float | None:
    return None if judged is None else judged.mean


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
