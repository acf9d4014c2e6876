"""`panel review`: the panel on tool cards, a scorecard each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from panel.cli import output
from panel.cli.options import JsonOpt, uses_settings

if TYPE_CHECKING:
    from panel.config import Settings
    from panel.runs import Ended


@uses_settings(run=True)
def review(
    settings: Settings,
    cards: Annotated[
        list[str],
        typer.Argument(
            metavar="CARD",
            help="Tool card files (YAML or JSON), or launch page URLs (read into cards as "
            "`panel card` does).",
            show_default=False,
        ),
    ],
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Ask the model again even if a review is stored.")
    ] = False,
    persona: Annotated[
        list[str] | None,
        typer.Option("--persona", metavar="PERSONA", help="Only this persona (repeatable)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Review tool cards with the panel; print a scorecard and write outputs/reviews/<slug>.json.

    A card reviewed before (same content, persona, prompt and model) is answered from the store
    with no model call, unless --fresh. Exit 1 if a review failed, 3 if --max-cost stopped
    the run.
    """
    output.finish(output.run(_review(settings, cards, persona, fresh=fresh, as_json=as_json)))


async def _review(
    settings: Settings, args: list[str], only: list[str] | None, *, fresh: bool, as_json: bool
) -> Ended:
    from panel.intake import named_cards
    from panel.runs.review import review_cards
    from panel.runtime import open_runtime

    runtime = open_runtime(settings, only)
    try:
        cards = await named_cards(runtime, args)  # every file checked before any call
        show = output.Terminal(settings.max_cost, quiet=as_json)
        printed = None if as_json else output.print_scorecard
        reviewed = await review_cards(
            runtime, cards, show, fresh=fresh, on_document=printed or (lambda _d: None)
        )
    finally:
        await runtime.aclose()
    if as_json and reviewed.documents:
        documents = reviewed.documents
        output.echo_json(documents[0] if len(documents) == 1 else documents)
    elif reviewed.documents:
        from panel.results import review_path

        for document in reviewed.documents:
            output.say(f"wrote {review_path(settings.out, document['tool']['slug'])}")
    return reviewed.ended
