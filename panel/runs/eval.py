"""`panel eval`: every card and its probes reviewed like `panel review` would (stored samples
reused), then measured into the panel.eval/1 document (panel.eval.evaluate); with --pairwise,
every pair of differently labelled cards judged in both orders too (panel.eval.pairwise)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panel.cards import CARD_SUFFIXES, ToolCard, load_cards
from panel.errors import CostCeilingReached, InputError
from panel.eval.evaluate import ORIGINAL, Collected, eval_document, failure, variants
from panel.eval.pairwise import VARIANT, labelled_pairs, pairwise_section
from panel.runs import Ended, Show, Tick, carrying_out, ended
from panel.runtime import Runtime
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
    runtime: Runtime, cards: list[ToolCard], show: Show, *, pairwise: bool = False
) -> Evaluated:
    """Review every card and probe with the panel (and with pairwise, judge every pair of
    differently labelled cards in both orders), then measure what was collected."""
    pairs = labelled_pairs(cards) if pairwise else []
    if pairwise and not pairs:
        raise InputError("--pairwise needs two or more cards with different `outcome:` labels")
    reviewed = [probe for _, _, probe in variants(cards)]
    plan = runtime.plan(runtime.asks(reviewed), pairs=runtime.pair_asks(pairs))
    with carrying_out(runtime, plan, show) as tick:
        collected = await collect(runtime, cards, tick)
        judged = await collect_pairs(runtime, pairs, tick) if collected is not None else None
    if collected is None or judged is None:
        return Evaluated(None, ended([], runtime.stop_line()))  # the calls under way have ended
    document = eval_document(runtime, cards, collected)
    if pairwise:
        reviews = {
            card.slug: [
                r for found in collected.reviews[(card.slug, ORIGINAL)].values() for r in found
            ]
            for card in cards
        }
        found, failures = judged
        document["pairwise"] = pairwise_section(runtime.personas, pairs, found, reviews, failures)
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


async def collect(runtime: Runtime, cards: list[ToolCard], tick: Tick) -> Collected | None:
    """Review every card and probe with the panel (stored samples reused); None if the ceiling
    stopped it (what was done is stored)."""
    collected = Collected()
    for card, variant, reviewed in variants(cards):
        reviews, errors = await runtime.review(reviewed, on_done=tick)
        by_persona: dict[str, list[StoredReview]] = {}
        for review in reviews:
            by_persona.setdefault(review.persona, []).append(review)
        collected.reviews[(card.slug, variant)] = by_persona
        for key, error in errors.items():
            if isinstance(error, CostCeilingReached):
                return None
            collected.failures.append(failure(card, variant, key, error))
    return collected
