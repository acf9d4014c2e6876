"""`panel eval --pairwise`: the labelled cards judged two by two, in both orders, against their
labels and against what the absolute scores say.

Every pair of cards whose `outcome:` labels differ is shown to each persona twice, one card
first and then the other (the judgments themselves are the comparison's: panel.compare). The
section "pairwise" of the eval document says:

    {"pairs": int, "judgments": int,
     "position_consistency": {"overall": float|null, "by_persona": {key: float|null}},
     "accuracy": float|null, "score_accuracy": float|null, "mean_score_accuracy": float|null,
     "by_pair": [{"a", "b", "better": "a"|"b", "pick", "score_pick", "consistency"}],
     "failures": [{"tool", "persona", "variant": "pairwise", "error"}]}

position_consistency is the share of persona judgments (one per persona, pair and sample) whose
two orders agree. accuracy is the share of pairs whose judged pick (the comparison page's
pairwise pick) agrees with the labels, an inconsistent or tied judgment counting as half;
score_accuracy the same for the pick the absolute reviews give on the comparison page (panel
ship %, then a mean-score gap of 3 points; "too close to call" counts as half);
mean_score_accuracy the plain mean-score order (a tie half). Pure functions: documents in, a
document out.

Where the judge's probabilities were read (panel.compare, "probabilities"), the section adds
"probabilities": {"pairs", "accuracy", "answer_accuracy", "consistency", "position_lean",
"expected_score_accuracy"}: the accuracy of the pick read from them, beside that of the
sampled answers' pick; the share of persona judgments whose lean towards A has the same sign in
both orders; the mean lean towards the card shown first; the order of the panels' expected
scores against the labels. Each by_pair entry adds "answer_pick" and "probability_pick".
"""

from __future__ import annotations

import statistics
from typing import Any

from panel.cards import ToolCard
from panel.compare import order_agreements, pairwise_head_to_head, score_pick
from panel.personas import Persona
from panel.results import tool_document
from panel.store import StoredPair, StoredReview

VARIANT = "pairwise"


def label_value(card: ToolCard) -> float | None:
    """Return a card's outcome as a number (hit 1, miss 0), None without a label."""
    outcome = card.outcome
    if outcome is None:
        return None
    if isinstance(outcome, str):
        return 1.0 if outcome == "hit" else 0.0
    return float(outcome)


def labelled_pairs(cards: list[ToolCard]) -> list[tuple[ToolCard, ToolCard]]:
    """Return every pair of cards whose labels differ, in the order the cards were given."""
    labelled = [card for card in cards if label_value(card) is not None]
    return [
        (a, b)
        for i, a in enumerate(labelled)
        for b in labelled[i + 1 :]
        if label_value(a) != label_value(b)
    ]


def pairwise_section(
    personas: list[Persona],
    pairs: list[tuple[ToolCard, ToolCard]],
    judgments: dict[tuple[str, str], list[StoredPair]],
    reviews: dict[str, list[StoredReview]],
    failures: list[dict[str, str]],
) -> dict[str, Any]:
    """Return the "pairwise" section of the eval document (see the module docstring):
    `judgments` by pair of slugs, `reviews` each card's original reviews by slug."""
    by_persona: dict[str, list[bool]] = {p.key: [] for p in personas}
    entries = []
    for a, b in pairs:
        judged = judgments.get((a.slug, b.slug), [])
        if not judged:
            continue
        docs = [tool_document(card, reviews.get(card.slug, []), personas) for card in (a, b)]
        view = pairwise_head_to_head(docs[0], docs[1], judged, personas)
        for key in by_persona:
            mine = [j for j in judged if j.persona == key]
            by_persona[key].extend(order_agreements(mine, a.slug))
        read = view["probabilities"]
        entries.append(
            {
                "a": a.slug,
                "b": b.slug,
                "better": "a" if (label_value(a) or 0) > (label_value(b) or 0) else "b",
                "pick": view["pick"],
                "answer_pick": _answer_pick(view),
                "probability_pick": None if read is None else read["pick"],
                "score_pick": score_pick(*docs) if all(d["reviews"] for d in docs) else None,
                "mean_scores": [d["panel"]["score_mean"] for d in docs],
                "expected_means": [d["panel"].get("expected_mean") for d in docs],
                "consistency": view["consistency"],
                "leans": [p["probabilities"] for p in view["personas"] if p["probabilities"]],
            }
        )
    every = [agree for found in by_persona.values() for agree in found]
    return {
        "pairs": len(entries),
        "judgments": sum(len(found) for found in judgments.values()),
        "position_consistency": {
            "overall": _share(every),
            "by_persona": {key: _share(found) for key, found in by_persona.items()},
        },
        "accuracy": _accuracy(entries, "pick"),
        "score_accuracy": _accuracy(entries, "score_pick"),
        "mean_score_accuracy": _mean_score_accuracy(entries, "mean_scores"),
        "probabilities": _probability_section(entries),
        "by_pair": [{k: v for k, v in e.items() if k != "leans"} for e in entries],
        "failures": failures,
    }


def _answer_pick(view: dict[str, Any]) -> str | None:
    """Return the pick of the sampled answers alone (the tool more personas pick in both
    orders)."""
    a, b = view["a_wins"], view["b_wins"]
    return "a" if a > b else "b" if b > a else None


def _probability_section(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Return the probability view's figures (see the module docstring), None if none was read."""
    read = [e for e in entries if e["probability_pick"] is not None or e["leans"]]
    if not read:
        return None
    leans = [lean for e in read for lean in e["leans"]]
    return {
        "pairs": len(read),
        "accuracy": _accuracy(read, "probability_pick"),
        "answer_accuracy": _accuracy(read, "answer_pick"),
        "consistency": _share([_same_sign(lean) for lean in leans]),
        "position_lean": round(statistics.fmean(lean["position_lean"] for lean in leans), 3)
        if leans
        else None,
        "expected_score_accuracy": _mean_score_accuracy(read, "expected_means"),
    }


def _same_sign(lean: dict[str, Any]) -> bool:
    """Whether a persona leans the same way in both orders: its lean towards A with A shown
    first, (a - b) + position_lean, and with B shown first, (a - b) - position_lean, are both
    above zero or both below."""
    gap, position = lean["a"] - lean["b"], lean["position_lean"]
    return bool((gap + position) * (gap - position) > 0)


def _share(found: list[bool]) -> float | None:
    return round(sum(found) / len(found), 3) if found else None


def _credit(pick: str | None, better: str) -> float:
    """A pick that agrees with the labels is 1, one that disagrees 0, no pick half."""
    return 0.5 if pick is None else 1.0 if pick == better else 0.0


def _accuracy(entries: list[dict[str, Any]], key: str) -> float | None:
    credits = [_credit(entry[key], entry["better"]) for entry in entries]
    return round(statistics.fmean(credits), 3) if credits else None


def _mean_score_accuracy(entries: list[dict[str, Any]], key: str) -> float | None:
    credits = []
    for entry in entries:
        a, b = entry[key]
        if a is not None and b is not None:
            credits.append(_credit(None if a == b else "a" if a > b else "b", entry["better"]))
    return round(statistics.fmean(credits), 3) if credits else None
