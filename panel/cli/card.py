"""`panel card`: a launch page read into a tool card (panel.intake)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from panel.cli import output
from panel.cli.options import uses_settings

if TYPE_CHECKING:
    from panel.config import Settings
    from panel.intake import Intake


@uses_settings(asks=True)
def card(
    settings: Settings,
    source: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE",
            help="An http(s) URL, an .html, .md or .txt file, or - (standard input).",
            show_default=False,
        ),
    ],
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Write the card here (default: print it)."
        ),
    ] = None,
) -> None:
    """Read a launch page into a tool card (YAML) that every command accepts.

    The run's model fills the card from the page's text and metadata; a name, maker, licence
    or entry price the page does not state is left out, and so is any sentence of the
    description naming a number or proper noun the page does not hold. The card's `source:`
    keeps the URL, when it was fetched and the hash of its text: a page whose text has not
    changed is not read again. Prints one line of what was found and what is unknown (stderr).
    Exit 2 for a page that cannot be used (out of reach, refused, not a page), 1 if the model
    gave no valid card.
    """
    intake = output.run(_card(settings, source))
    from panel.intake import card_yaml

    text = card_yaml(intake.card)
    if out_file is None:
        output.say(text.rstrip("\n"))
    else:
        from panel.files import write_atomic

        write_atomic(out_file, text)
    output.note(intake.summary() + (f" · wrote {out_file}" if out_file else ""))


async def _card(settings: Settings, source: str) -> Intake:
    from panel.intake import card_from
    from panel.runtime import open_runtime

    runtime = open_runtime(settings)
    try:
        return await card_from(runtime, source)
    finally:
        await runtime.aclose()
