"""`panel compare`, `import`, `vote` and `site build`: tools side by side, records made elsewhere,
the community's votes, and the static site of every comparison."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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

ToolArg = Annotated[
    str,
    typer.Argument(help="A card file or the slug of a stored tool.", show_default=False),
]


def compare(
    a: ToolArg,
    b: ToolArg,
    provider: ProviderOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    structured_output: StructuredOpt = None,
    concurrency: ConcurrencyOpt = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Review both tools again even if reviews are stored.")
    ] = False,
    stored: Annotated[
        bool,
        typer.Option(
            "--stored",
            help="Show the reviews already stored, whichever model wrote them (imported ones "
            "too); no model call. Each page names the model of each review.",
        ),
    ] = False,
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
    """Compare two tools side by side: writes <out>/compare/<a>-vs-<b>.html, .md and .json.

    A stored review is reused when panel review would reuse it (same card, persona, prompt
    version, provider and model); the rest are reviewed first. --stored shows what is stored.
    Exit 3 if --max-cost stopped the reviews (those done are kept; no page is written).
    """
    settings = output.guard(settings_from, locals())
    output.run(_compare(settings, (a, b), fresh=fresh, stored=stored, as_json=as_json))


async def _compare(
    settings: Settings, tools: tuple[str, str], *, fresh: bool, stored: bool, as_json: bool
) -> None:
    from panel.compare import compare_tools

    total = 8 * settings.samples
    with output.ReviewProgress(total, enabled=not as_json and not stored) as advance:
        document, files = await compare_tools(
            settings,
            tools,
            fresh=fresh,
            stored=stored,
            on_done=advance,
            announce=lambda plan, seen: output.announce(plan, settings.max_cost, seen),
        )
    if as_json:
        files_json = {k: str(v) for k, v in files.items()}
        output.echo_json({"a": document["a"], "b": document["b"], "files": files_json})
        return
    for side in ("a", "b"):
        tool, result = document[side]["tool"], document[side]["panel"]
        community = document[side]["community"]["label"]
        output.say(
            f"{tool['name']}: {result['label']} · {result['ship_pct']}% panel ship · {community}"
        )
    output.say(document["head_to_head"]["summary"])
    for kind, path in files.items():
        output.say(f"wrote {path}" if kind == "html" else f"      {path}")


def import_records(
    file: Annotated[
        Path, typer.Argument(help="JSON Lines file of tool and review records.", show_default=False)
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
    output.guard(_import, output.guard(settings_from, locals()), file, as_json)


def _import(settings: Settings, file: Path, as_json: bool) -> None:
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


def vote(
    slug: Annotated[str, typer.Argument(help="The tool's slug.", show_default=False)],
    verdict: Annotated[str, typer.Argument(help="ship or skip.", show_default=False)],
    voter: Annotated[
        str | None, typer.Option("--voter", help="Voter id; default: your user name.")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Cast a community vote on a tool: one vote per voter per tool, the latest counts."""
    output.guard(_vote, output.guard(settings_from, locals()), slug, verdict, voter)


def _vote(settings: Settings, slug: str, verdict: str, voter: str | None) -> None:
    import getpass

    from panel.compare import community
    from panel.errors import InputError
    from panel.store import Store, voter_id

    if verdict not in ("ship", "skip"):
        raise InputError(f"vote must be 'ship' or 'skip', got {verdict!r}")
    who = voter_id(voter or getpass.getuser())
    if not who or len(who) > 200:
        raise InputError("--voter must be 1 to 200 characters")
    store = Store(settings.db)
    try:
        if store.get_tool(slug) is None:
            raise InputError(f"{slug}: no such tool in the store (review or import it first)")
        store.save_vote(slug, who, verdict)
        output.say(f"{slug}: {community(store, slug)['label']}")
    finally:
        store.close()


site_app = typer.Typer(
    help="The static site of every comparison and tool.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@site_app.command("build")
def site_build(
    out: OutOpt = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="Public URL of the site, for absolute links in the feed."),
    ] = None,
    db: DbOpt = None,
    personas: PersonasOpt = None,
) -> None:
    """Write index.html, tools/*.html, compare/*.html and feed.atom from the store."""
    # --base-url here is the site's public URL, not a provider's endpoint: not a setting.
    settings = output.guard(settings_from, {"out": out, "db": db, "personas": personas})
    output.guard(_site_build, settings, base_url)


def _site_build(settings: Settings, base_url: str | None) -> None:
    from panel.personas import load_personas
    from panel.site import build_site
    from panel.store import Store

    store = Store(settings.db)
    try:
        counts = build_site(store, load_personas(settings.personas_dir()), settings.out, base_url)
    finally:
        store.close()
    output.say(
        f"wrote {settings.out / 'index.html'}: {counts['comparisons']} comparison(s), "
        f"{counts['tools']} tool page(s), feed.atom"
    )
