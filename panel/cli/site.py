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
    full: Annotated[
        bool,
        typer.Option("--full", help="Render every page, not only those whose inputs changed."),
    ] = False,
    db: DbOpt = None,
    personas: PersonasOpt = None,
) -> None:
    """Bring the site up to date with the store: index.html, the listings (browse/,
    category/), tools/*.html, compare/*.html, rank/*.html (a ranking per category whose tools
    were judged in pairs), the feeds, the search index and, with --base-url, sitemap.xml. Only
    the pages whose inputs changed are rendered; pages whose subject is gone are removed."""
    from panel.personas import load_personas
    from panel.site import build_site
    from panel.store import Store

    # --base-url here is the site's public URL, not a provider's endpoint: not a setting.
    settings = settings_from({"out": out, "db": db, "personas": personas})
    store = Store(settings.db)
    try:
        personas_found = load_personas(settings.personas_dir())
        counts = build_site(store, personas_found, settings.out, base_url, full=full)
    finally:
        store.close()
    output.say(
        f"{settings.out / 'index.html'}: {counts['comparisons']} comparison(s), "
        f"{counts['tools']} tool page(s), {counts['rankings']} ranking page(s); "
        f"{counts['written']} page(s) written, {counts['removed']} removed"
    )
