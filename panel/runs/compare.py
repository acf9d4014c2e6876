"""`panel compare`: two tools' reviews, reused or made now, side by side in three files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panel.cards import ToolCard, resolve_card
from panel.compare import write_pages
from panel.errors import CostCeilingReached, InputError
from panel.runs import Ended, Show, carrying_out, ended
from panel.runtime import Runtime
from panel.store import StoredReview


@dataclass(frozen=True)
class Compared:
    """A comparison run: its document and files ({"html", "md", "json"}; none if it did not
    finish), and how it ended."""

    document: dict[str, Any] | None
    files: dict[str, Path]
    ended: Ended


def resolve_pair(args: tuple[str, str], runtime: Runtime) -> tuple[ToolCard, ToolCard]:
    """Return the two distinct tools the arguments name."""
    a, b = (resolve_card(arg, runtime.tool) for arg in args)
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
) -> Compared:
    """Review what is missing of two tools, build their comparison and write its three files.

    A stored review is reused only where `panel review` would reuse it (same card content,
    persona, prompt version, provider and model); anything else is reviewed now, so a page
    never shows another model's review under today's name. `stored` shows each persona's
    latest stored review instead, whoever wrote it, and calls no model.
    """
    pair = resolve_pair(args, runtime)
    if stored:
        document = runtime.comparison(pair)
    else:
        plan = runtime.plan(runtime.asks(pair), fresh=fresh)
        reviews: dict[str, list[StoredReview]] = {}
        with carrying_out(runtime, plan, show) as tick:
            for card in pair:
                found, errors = await runtime.review(card, fresh=fresh, on_done=tick)
                if any(isinstance(e, CostCeilingReached) for e in errors.values()):
                    return Compared(None, {}, ended([], runtime.stop_line()))
                if errors:
                    first = next(iter(errors.values()))
                    failure = (
                        f"{len(errors)} review(s) of {card.slug} failed; the others are stored, "
                        f"run again to retry: {first}"
                    )
                    return Compared(None, {}, ended([failure]))
                reviews[card.slug] = found
        document = runtime.comparison(pair, lambda card: reviews[card.slug])
    files = write_pages(document, runtime.settings.out)
    runtime.save_comparison(pair[0].slug, pair[1].slug)
    return Compared(document, files, ended([]))
