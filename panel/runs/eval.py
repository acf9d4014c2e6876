"""`panel eval`: every card and its probes reviewed like `panel review` would (stored samples
reused), then measured into the panel.eval/1 document (panel.eval.evaluate); with --pairwise,
every pair of differently labelled cards judged in both orders too (panel.eval.pairwise)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panel.cards import CARD_SUFFIXES, ToolCard, load_cards
from panel.errors import CostCeilingReached, InputError
from panel.eval.evaluate import ORIGINAL, Arm, Collected, Reused, eval_document, failure, variants
from panel.eval.pairwise import VARIANT, labelled_pairs, pairwise_section
from panel.mitigations import Mitigations
from panel.providers.base import Provider, Request
from panel.runs import Ended, Show, Tick, carrying_out, ended
from panel.runtime import Plan, Runtime
from panel.store import StoredPair, StoredReview


@dataclass(frozen=True)
class Evaluated:
    """An eval run: its document (None if the ceiling stopped it), and how it ended."""

    document: dict[str, Any] | None
    ended: Ended


def card_files(paths: list[Path]) -> list[Path]:
    """Return the card files named: files as given, folders as their *.yaml, *.yml, *.json."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in CARD_SUFFIXES)
        else:
            found.append(path)
    return found


def eval_cards(paths: list[Path]) -> list[ToolCard]:
    """Return the cards an eval reads, every one checked before any call."""
    files = card_files(paths)
    if not files:
        raise InputError("no card files", path=", ".join(str(p) for p in paths))
    return load_cards(files)


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
    plans = [arm.plan(arm.asks(reviewed)) for arm in arms]
    plans.append(runtime.plan([], pairs=runtime.pair_asks(pairs)))
    # A review no mitigation shaped (strip-injection on a clean card) is the same in both arms:
    # asked once, counted once.
    calls = {_call_key(*call): call for p in plans for call in p.calls}
    plan = Plan(
        [a for p in plans for a in p.asks],
        list(calls.values()),
        [x for p in plans for x in p.pairs],
    )
    stored = {
        _review_key(review): review
        for arm, p in zip(arms, plans, strict=False)
        for ask in p.asks
        for review in arm.stored(ask)
    }
    reused = Reused.of(list(stored.values()))
    collected: list[Collected] = []
    with carrying_out(runtime, plan, show) as tick:
        for arm in arms:
            found = await collect(arm, cards, tick)
            if found is None:
                return Evaluated(None, ended([], runtime.stop_line()))  # calls under way ended
            collected.append(found)
        judged = await collect_pairs(runtime, pairs, tick)
    if judged is None:
        return Evaluated(None, ended([], runtime.stop_line()))
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


async def collect_pairs(
    runtime: Runtime, pairs: list[tuple[ToolCard, ToolCard]], tick: Tick
) -> tuple[dict[tuple[str, str], list[StoredPair]], list[dict[str, str]]] | None:
    """Judge every pair in both orders (stored judgments reused); return the judgments by pair
    and every failure, or None if the ceiling stopped it (what was done is stored)."""
    judged: dict[tuple[str, str], list[StoredPair]] = {}
    failures = []
    for a, b in pairs:
        found, errors = await runtime.judge_pair((a, b), on_done=tick)
        judged[(a.slug, b.slug)] = found
        for key, error in errors.items():
            if isinstance(error, CostCeilingReached):
                return None
            failures.append(failure(a, VARIANT, key, error) | {"tool": f"{a.slug}-vs-{b.slug}"})
    return judged, failures


def _call_key(provider: Provider, request: Request) -> tuple[object, ...]:
    return (
        provider.name,
        request.model,
        request.prompt_version,
        request.tool,
        request.persona,
        request.mitigations,
        request.temperature,
        request.sample,
    )


def _review_key(review: StoredReview) -> tuple[object, ...]:
    return (
        review.provider,
        review.model,
        review.prompt_version,
        review.card_hash,
        review.persona,
        review.mitigations,
        review.temperature,
        review.sample,
    )


async def collect(runtime: Runtime, cards: list[ToolCard], tick: Tick) -> Collected | None:
    """Review every card and probe with the panel (stored samples reused), all of them in
    flight together up to the run's --concurrency; None if the ceiling stopped it (what was
    done is stored)."""
    found = variants(cards)
    results = await runtime.review_all([reviewed for _, _, reviewed in found], on_done=tick)
    collected, stopped = Collected(), False
    for (card, variant, _), (reviews, errors) in zip(found, results, strict=True):
        by_persona: dict[str, list[StoredReview]] = {}
        for review in reviews:
            by_persona.setdefault(review.persona, []).append(review)
        collected.reviews[(card.slug, variant)] = by_persona
        for key, error in errors.items():
            if isinstance(error, CostCeilingReached):
                stopped = True
            else:
                collected.failures.append(failure(card, variant, key, error))
    return None if stopped else collected
