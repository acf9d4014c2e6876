"""`panel compare`: two tools' reviews (and, with --pairwise, the pair judged in both orders),
reused or made now, side by side in three files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panel.cards import ToolCard, is_url, resolve_card
from panel.compare import page_paths, write_pages
from panel.errors import CostCeilingReached, InputError, ProviderError
from panel.intake import cards_at
from panel.questions import Question
from panel.runs import Ended, Show, carrying_out, ended, refresh
from panel.runtime import Runtime
from panel.store import StoredReview


@dataclass(frozen=True)
class Compared:
    """A comparison run: its document and files ({"html", "md", "json"}; none if it did not
    finish), and how it ended."""

    document: dict[str, Any] | None
    files: dict[str, Path]
    ended: Ended


async def resolve_pair(args: tuple[str, str], runtime: Runtime) -> tuple[ToolCard, ToolCard]:
    """Return the two distinct tools the arguments name (card files, stored slugs or URLs)."""
    read = await cards_at(runtime, args)
    a, b = (resolve_card(arg, runtime.tool, read) for arg in args)
    if a.slug == b.slug:
        raise InputError(f"{args[0]} and {args[1]} are the same tool ({a.slug})")
    return a, b


async def compare_tools(
    runtime: Runtime,
    args: tuple[str, str],
    show: Show,
    *,
    fresh: bool = False,
    stored: bool = False,
    pairwise: bool = False,
) -> Compared:
    """Review what is missing of two tools, build their comparison and write its three files;
    with pairwise, also ask each persona which of the two it would ship with, in both orders.

    A stored review or judgment is reused only where a run would reuse it (same card content,
    persona, prompt version, provider and model); anything else is asked now, so a page never
    shows another model's answer under today's name. `stored` shows each persona's latest
    stored reviews and judgments instead, whoever wrote them, and calls no model. Judgments
    stored earlier that this run would reuse are shown even without pairwise.
    """
    if stored and any(is_url(arg) for arg in args):
        raise InputError("--stored calls no model, so it reads no page: give a slug or a card file")
    pair = await resolve_pair(args, runtime)
    if stored:
        judged = runtime.latest_pairs((pair[0].slug, pair[1].slug))
        if pairwise and not judged:
            show.note(
                f"no stored pair judgment of {pair[0].slug} and {pair[1].slug}: "
                "run without --stored to judge the pair"
            )
        document = runtime.comparison(pair, None, judged)
    else:
        asked: list[Question[Any]] = [*runtime.reviews(pair)]
        plan = runtime.plan(asked + (runtime.pairs([pair]) if pairwise else []), fresh=fresh)
        reviews: dict[str, list[StoredReview]] = {}
        with carrying_out(runtime, plan, show) as tick:
            for card in pair:
                found, errors = await runtime.answer(plan.about(card), on_done=tick)
                if (failed := _failed(runtime, errors, f"review(s) of {card.slug}")) is not None:
                    return failed
                reviews[card.slug] = found
            if pairwise:
                both = plan.about(*pair) + plan.about(*pair[::-1])
                judged, errors = await runtime.answer(both, on_done=tick)
                what = f"pair judgment(s) of {pair[0].slug} and {pair[1].slug}"
                if (failed := _failed(runtime, errors, what)) is not None:
                    return failed
        if not pairwise:
            judged = runtime.reusable_pairs(pair, runtime.settings.samples)
        document = runtime.comparison(pair, lambda card: reviews[card.slug], judged)
    out = runtime.settings.out
    runtime.save_comparison(pair[0].slug, pair[1].slug)
    # Where a site is built, it writes the comparison's pages with every page that shows it
    # (its tools', the listings, the feeds, the index); elsewhere the run writes its own.
    slugs = (pair[0].slug, pair[1].slug)
    refreshed = refresh(runtime, tools=slugs, pairs=[slugs])
    files = page_paths(document, out) if refreshed else write_pages(document, out)
    return Compared(document, files, ended([]))


def _failed(runtime: Runtime, errors: dict[str, ProviderError], what: str) -> Compared | None:
    """Return how the run ended if some of its asks failed (or the ceiling stopped them)."""
    if any(isinstance(e, CostCeilingReached) for e in errors.values()):
        return Compared(None, {}, ended([], runtime.spending.stop_line()))
    if errors:
        first = next(iter(errors.values()))
        failure = f"{len(errors)} {what} failed; the others are stored, run again to retry: {first}"
        return Compared(None, {}, ended([failure]))
    return None
