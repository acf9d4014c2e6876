"""`panel review`: the panel on tool cards, a review document per card, and the comparison pages
that show an edited card rewritten."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from panel.cards import ToolCard
from panel.compare import write_pages
from panel.errors import CostCeilingReached
from panel.files import json_text, write_atomic
from panel.results import review_path, tool_document
from panel.runs import Ended, Show, carrying_out, ended, refresh
from panel.runtime import Runtime


@dataclass(frozen=True)
class Reviewed:
    """What a review run made: a review document per card it finished, and how it ended."""

    documents: list[dict[str, Any]]
    ended: Ended


async def review_cards(
    runtime: Runtime,
    cards: list[ToolCard],
    show: Show,
    *,
    fresh: bool = False,
    on_document: Callable[[dict[str, Any]], None] = lambda _document: None,
) -> Reviewed:
    """Review every card (stored samples reused unless fresh), write outputs/reviews/<slug>.json
    for each, hand each document to on_document as it is done, and bring the site in the
    output folder up to date (panel.site; without a site there, rewrite the comparison pages
    of any card that changed since it was stored)."""
    out = runtime.settings.out
    edited = [
        c.slug
        for c in cards
        if (s := runtime.tool(c.slug)) and s.content_hash() != c.content_hash()
    ]
    plan = runtime.plan(runtime.reviews(cards), fresh=fresh)
    documents: list[dict[str, Any]] = []
    stopped = False
    with carrying_out(runtime, plan, show) as tick:
        for card in cards:
            reviews, errors = await runtime.answer(plan.about(card), on_done=tick)
            if any(isinstance(e, CostCeilingReached) for e in errors.values()):
                stopped = True  # this card's reviews so far are stored; its page waits
                break
            document = tool_document(card, reviews, runtime.personas, errors)
            write_atomic(review_path(out, card.slug), json_text(document))
            documents.append(document)
            on_document(document)
    if refresh(runtime, tools=[card.slug for card in cards]) is None:
        # no site in out: only the comparison pages that show an edited card
        for slug in edited:
            for comparison in runtime.comparisons_showing(slug):
                write_pages(comparison, out)
    failures = [error["error"] for document in documents for error in document["errors"]]
    if not stopped:
        return Reviewed(documents, ended(failures))
    line = f"{runtime.spending.stop_line()} ({len(documents)} of {len(cards)} card(s) done)"
    return Reviewed(documents, ended(failures, line))
