"""`panel review`, `panel personas` and `panel log`: the panel on tool cards, who sits on it, and
what every model call cost."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from panel.cli import output
from panel.cli.options import (
    BaseUrlOpt,
    CassettesOpt,
    ConcurrencyOpt,
    DbOpt,
    JsonOpt,
    MaxCostOpt,
    ModelOpt,
    OutOpt,
    PersonaModelOpt,
    PersonasOpt,
    PromptsOpt,
    ProviderOpt,
    RecordOpt,
    SamplesOpt,
    StructuredOpt,
    settings_from,
)

if TYPE_CHECKING:
    from panel.config import Settings


def review(
    cards: Annotated[
        list[Path], typer.Argument(help="Tool card files (YAML or JSON).", show_default=False)
    ],
    provider: ProviderOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    structured_output: StructuredOpt = None,
    concurrency: ConcurrencyOpt = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Ask the model again even if a review is stored.")
    ] = False,
    persona: Annotated[
        list[str] | None, typer.Option("--persona", help="Only this persona (repeatable).")
    ] = None,
    samples: SamplesOpt = None,
    persona_model: PersonaModelOpt = None,
    max_cost: MaxCostOpt = None,
    db: DbOpt = None,
    personas: PersonasOpt = None,
    prompts: PromptsOpt = None,
    out: OutOpt = None,
    record: RecordOpt = None,
    cassettes: CassettesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Review tool cards with the panel; print a scorecard and write outputs/reviews/<slug>.json.

    A card reviewed before (same content, persona, prompt and model) is answered from the store
    with no model call, unless --fresh. Exit 1 if a review failed, 3 if --max-cost stopped
    the run.
    """
    settings = output.guard(settings_from, locals())
    raise typer.Exit(output.run(_review(settings, cards, persona, fresh=fresh, as_json=as_json)))


async def _review(
    settings: Settings, paths: list[Path], only: list[str] | None, *, fresh: bool, as_json: bool
) -> int:
    """Review every card, print and write its document; return the exit code."""
    import json

    from panel.cards import load_cards
    from panel.compare import refresh_comparisons
    from panel.errors import CostCeilingReached
    from panel.files import write_atomic
    from panel.results import tool_document
    from panel.runtime import open_runtime

    loaded = load_cards(paths)  # every card is checked before any model call
    runtime = open_runtime(settings, only)
    documents = []
    stopped: CostCeilingReached | None = None
    try:
        reviewer = runtime.reviewer
        planned = reviewer.plan(loaded, runtime.personas, fresh=fresh)
        output.announce(planned, settings.max_cost, runtime.store.output_tokens_seen)
        hashes = {c.slug: (runtime.store.get_tool(c.slug) or c).content_hash() for c in loaded}
        edited = [c.slug for c in loaded if hashes[c.slug] != c.content_hash()]
        total = len(loaded) * len(runtime.personas) * reviewer.samples
        with output.ReviewProgress(total, not as_json) as advance:
            for card in loaded:
                reviews, errors = await runtime.review(card, fresh=fresh, on_done=advance)
                if stopped := next(
                    (e for e in errors.values() if isinstance(e, CostCeilingReached)), None
                ):
                    break  # this card's reviews so far are stored; its page waits for the rest
                document = tool_document(card, reviews, runtime.personas, errors)
                write_atomic(
                    settings.out / "reviews" / f"{card.slug}.json",
                    json.dumps(document, indent=2, ensure_ascii=False) + "\n",
                )
                documents.append(document)
                if not as_json:
                    output.print_scorecard(document)
        for slug in edited:  # the comparison pages that show an edited card show it anew
            refresh_comparisons(runtime.store, runtime.personas, slug, settings.out)
    finally:
        await runtime.aclose()
    if as_json and documents:
        output.echo_json(documents[0] if len(documents) == 1 else documents)
    failures = [error["error"] for document in documents for error in document["errors"]]
    for failure in failures:
        output.say(f"panel: error: {failure}", err=True)
    if stopped is not None:
        spent = runtime.reviewer.spending.stop_line()  # the calls under way have ended now
        output.fail(f"{spent} ({len(documents)} of {len(loaded)} card(s) done)", 3)
    return 1 if failures else 0


def personas(personas: PersonasOpt = None, as_json: JsonOpt = False) -> None:
    """List the panel: each persona, what it judges and the fields it returns."""
    output.guard(_personas, output.guard(settings_from, locals()), as_json)


def _personas(settings: Settings, as_json: bool) -> None:
    from panel.personas import load_personas

    panel = load_personas(settings.personas_dir())
    if as_json:
        output.echo_json([p.model_dump(exclude={"source_hash"}) for p in panel], ensure_ascii=True)
        return
    rows = [
        (
            p.display_name,
            p.judges,
            ", ".join(["score", "verdict", "review", *p.fields]),
            f"{p.provider or '(default)'} {p.model or ''}",
        )
        for p in panel
    ]
    output.print_table(
        "The panel", ("Persona", "Judges", "Returns", "Model"), rows, show_lines=True
    )


def log(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many recent calls.")] = 20,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show recent model calls with tokens, latency, cost and outcome."""
    output.guard(_log, output.guard(settings_from, locals()), limit, as_json)


def _log(settings: Settings, limit: int, as_json: bool) -> None:
    import datetime as dt
    from dataclasses import asdict

    from panel.store import Store

    store = Store(settings.db, write=False, first="panel review")
    try:
        calls = store.recent_calls(limit)
    finally:
        store.close()
    if as_json:
        output.echo_json([asdict(c) for c in calls], ensure_ascii=True)
        return
    rows: list[Any] = [
        (
            dt.datetime.fromtimestamp(c.at).strftime("%m-%d %H:%M:%S"),
            c.provider,
            c.model,
            c.tool,
            c.persona,
            str(c.latency_ms),
            str(c.input_tokens),
            str(c.cached_tokens),
            str(c.output_tokens),
            "" if c.cost_usd is None else f"{c.cost_usd:.5f}",
            c.outcome if not c.error else f"{c.outcome}: {c.error[:60]}",
        )
        for c in calls
    ]
    columns = (
        "When",
        "Provider",
        "Model",
        "Tool",
        "Persona",
        "ms",
        "In",
        "Cached",
        "Out",
        "Cost $",
        "Outcome",
    )
    numbers = ("ms", "In", "Cached", "Out", "Cost $")
    output.print_table(f"Last {len(calls)} model calls", columns, rows, right=numbers)
