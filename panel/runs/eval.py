"""`panel eval`: every card and its probes reviewed like `panel review` would (stored samples
reused), then measured into the panel.eval/1 document (panel.eval.evaluate); with --pairwise,
every pair of differently labelled cards judged in both orders too (panel.eval.pairwise)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panel.cards import CARD_SUFFIXES, ToolCard, is_url
from panel.errors import CostCeilingReached, InputError
from panel.eval.evaluate import ORIGINAL, Arm, Collected, Reused, eval_document, failure, variants
from panel.eval.pairwise import VARIANT, labelled_pairs, pairwise_section
from panel.intake import named_cards
from panel.mitigations import Mitigations
from panel.review import answers_of
from panel.runs import Ended, Show, carrying_out, ended
from panel.runtime import Plan, Runtime
from panel.store import Key, StoredPair, StoredReview


@dataclass(frozen=True)
class Evaluated:
    """An eval run: its document (None if the ceiling stopped it), and how it ended."""

    document: dict[str, Any] | None
    ended: Ended


def card_files(args: list[str]) -> list[str]:
    """Return the cards named: files and URLs as given, folders as their *.yaml, *.yml, *.json."""
    found: list[str] = []
    for arg in args:
        path = Path(arg)
        if not is_url(arg) and path.is_dir():
            found += sorted(str(p) for p in path.iterdir() if p.suffix.lower() in CARD_SUFFIXES)
        else:
            found.append(arg)
    return found


async def eval_cards(runtime: Runtime, args: list[str]) -> list[ToolCard]:
    """Return the cards an eval reads (URLs read into cards), every file checked before any call."""
    named = card_files(args)
    if not named:
        raise InputError("no card files", path=", ".join(args))
    return await named_cards(runtime, named)


async def evaluate(
    runtime: Runtime,
    cards: list[ToolCard],
    show: Show,
    compare: Mitigations | None = None,
    *,
    pairwise: bool = False,
) -> Evaluated:
    """Review every card and probe with the panel, then measure what was collected; with
    mitigations to compare, twice: without them (the document's main sections) and with them;
    with pairwise, judge every pair of differently labelled cards in both orders too."""
    pairs = labelled_pairs(cards) if pairwise else []
    if pairwise and not pairs:
        raise InputError("--pairwise needs two or more cards with different `outcome:` labels")
    arms = [runtime]
    if compare is not None:
        arms = [
            runtime.with_mitigations(runtime.mitigations - compare),
            runtime.with_mitigations(runtime.mitigations | compare),
        ]
    reviewed = [probe for _, _, probe in variants(cards)]
    plans = [arm.plan(arm.reviews(reviewed)) for arm in arms]
    judging = runtime.plan(runtime.pairs(pairs))
    plan = Plan([planned for p in (*plans, judging) for planned in p.planned])
    # A review no mitigation shaped (strip-injection on a clean card) is the same in both arms:
    # one key, asked once (Plan.calls, make_calls), found by both.
    stored = {r.key: r for p in plans for planned in p.planned for r in planned.stored}
    reused = Reused.of(list(stored.values()))
    with carrying_out(runtime, plan, show) as tick:
        made = await runtime.make(plan, on_done=tick)
    if any(isinstance(result, CostCeilingReached) for result in made.values()):
        return Evaluated(None, ended([], runtime.spending.stop_line()))  # calls under way ended
    collected = [collect(p, cards, made) for p in plans]
    judged = collect_pairs(judging, pairs, made)
    measured = [Arm(arm, found) for arm, found in zip(arms, collected, strict=True)]
    document = eval_document(measured[0], cards, reused, measured[1] if compare else None)
    if pairwise:
        reviews = {
            card.slug: [
                r for found in collected[0].reviews[(card.slug, ORIGINAL)].values() for r in found
            ]
            for card in cards
        }
        found_pairs, failures = judged
        document["pairwise"] = pairwise_section(
            runtime.personas, pairs, found_pairs, reviews, failures
        )
    return Evaluated(document, ended([]))


def collect_pairs(
    plan: Plan, pairs: list[tuple[ToolCard, ToolCard]], made: dict[Key, object]
) -> tuple[dict[tuple[str, str], list[StoredPair]], list[dict[str, str]]]:
    """Return the judgments of every pair in both orders (stored or `made`) by pair, and every
    failure."""
    judged: dict[tuple[str, str], list[StoredPair]] = {}
    failures = []
    for a, b in pairs:
        found, errors = answers_of(plan.about(a, b) + plan.about(b, a), made)
        judged[(a.slug, b.slug)] = found
        for key, error in errors.items():
            failures.append(failure(a, VARIANT, key, error) | {"tool": f"{a.slug}-vs-{b.slug}"})
    return judged, failures


def collect(plan: Plan, cards: list[ToolCard], made: dict[Key, object]) -> Collected:
    """Return every card's and probe's reviews of one arm (stored or `made`) by persona, and
    every failure."""
    collected = Collected()
    for card, variant, reviewed in variants(cards):
        reviews, errors = answers_of(plan.about(reviewed), made)
        by_persona: dict[str, list[StoredReview]] = {}
        for review in reviews:
            by_persona.setdefault(review.persona, []).append(review)
        collected.reviews[(card.slug, variant)] = by_persona
        collected.failures += [failure(card, variant, key, e) for key, e in errors.items()]
    return collected
