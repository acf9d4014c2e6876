"""`panel compare`: two tools side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from panel.cli import output
from panel.cli.options import JsonOpt, uses_settings

if TYPE_CHECKING:
    from panel.config import Settings
    from panel.runs.compare import Compared

ToolArg = Annotated[
    str,
    typer.Argument(help="A card file or the slug of a stored tool.", show_default=False),
]


@uses_settings(run=True)
def compare(
    settings: Settings,
    a: ToolArg,
    b: ToolArg,
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
    as_json: JsonOpt = False,
) -> None:
    """Compare two tools side by side: writes <out>/compare/<a>-vs-<b>.html, .md and .json.

    A stored review is reused when panel review would reuse it (same card, persona, prompt
    version, provider and model); the rest are reviewed first. --stored shows what is stored.
    Exit 3 if --max-cost stopped the reviews (those done are kept; no page is written).
    """
    compared = output.run(_compare(settings, (a, b), fresh=fresh, stored=stored, as_json=as_json))
    output.finish(compared.ended)
    if compared.document is not None:
        _print(compared, as_json)


async def _compare(
    settings: Settings, tools: tuple[str, str], *, fresh: bool, stored: bool, as_json: bool
) -> Compared:
    from panel.runs.compare import compare_tools
    from panel.runtime import open_runtime

    runtime = open_runtime(settings, offline=stored)
    try:
        show = output.Terminal(settings.max_cost, quiet=as_json)
        return await compare_tools(runtime, tools, show, fresh=fresh, stored=stored)
    finally:
        await runtime.aclose()


def _print(compared: Compared, as_json: bool) -> None:
    document, files = compared.document, compared.files
    assert document is not None
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
