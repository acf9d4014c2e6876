"""`panel import`: tools and reviews made elsewhere, from a JSON Lines file (panel.records)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from panel.cli import output
from panel.cli.options import DbOpt, JsonOpt, PersonasOpt, uses_settings

if TYPE_CHECKING:
    from panel.config import Settings


@uses_settings()
def import_records(
    settings: Settings,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="JSON Lines file of tool and review records.", show_default=False
        ),
    ],
    db: DbOpt = None,
    personas: PersonasOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import tools and reviews made elsewhere (one JSON object per line), all or nothing.

    Lines look like {"type": "tool", "slug", "name", "tagline", "description", ...} and
    {"type": "review", "tool": SLUG, "persona": "builder", "score", "verdict", "review", ...}.
    A bad line is reported with its number and nothing from the file is stored.
    """
    from panel.personas import load_personas
    from panel.records import import_file
    from panel.store import Store

    panel_personas = load_personas(settings.personas_dir())
    store = Store(settings.db)
    where = store.where
    try:
        tools, reviews = import_file(file, panel_personas, store)
    finally:
        store.close()
    if as_json:
        output.echo_json({"tools": tools, "reviews": reviews}, indent=None)
    else:
        output.say(f"imported {tools} tool(s) and {reviews} review(s) into {where}")
