"""`panel site build`: the static site of every comparison and tool."""

from __future__ import annotations

from typing import Annotated

import typer

from panel.cli import output
from panel.cli.options import DbOpt, OutOpt, PersonasOpt, settings_from

app = typer.Typer(
    help="The static site of every comparison and tool.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("build")
def build(
    out: OutOpt = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            metavar="URL",
            help="Public URL of the site, for absolute links in the feed.",
        ),
    ] = None,
    db: DbOpt = None,
    personas: PersonasOpt = None,
) -> None:
    """Write index.html, tools/*.html, compare/*.html, rank/*.html (a ranking per category
    whose tools were judged in pairs) and feed.atom from the store."""
    from panel.personas import load_personas
    from panel.site import build_site
    from panel.store import Store

    # --base-url here is the site's public URL, not a provider's endpoint: not a setting.
    settings = settings_from({"out": out, "db": db, "personas": personas})
    store = Store(settings.db)
    try:
        counts = build_site(store, load_personas(settings.personas_dir()), settings.out, base_url)
    finally:
        store.close()
    output.say(
        f"wrote {settings.out / 'index.html'}: {counts['comparisons']} comparison(s), "
        f"{counts['tools']} tool page(s), {counts['rankings']} ranking page(s), feed.atom"
    )
