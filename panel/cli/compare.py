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
    typer.Argument(
        help="A card file, the slug of a stored tool, or a launch page URL.", show_default=False
    ),
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
    pairwise: Annotated[
        bool,
        typer.Option(
            "--pairwise",
            help="Also show each persona both cards and ask which one it would ship with, "
            "once with A shown first and once with B first (8 calls; --samples N: N each). A "
            "pick counts only when both orders agree; a persona that flips is counted as "
            "inconsistent. The page leads with this judged head-to-head.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compare two tools side by side: writes <out>/compare/<a>-vs-<b>.html, .md and .json.

    A stored review (or pair judgment) is reused when a run would reuse it (same cards,
    persona, prompt version, provider and model); the rest are asked first. --stored shows what
    is stored. --json prints the comparison document (schema panel.compare/1) with "files".
    Exit 3 if --max-cost stopped the calls (those done are kept; no page is written).
    """
    compared = output.run(
        _compare(settings, (a, b), fresh=fresh, stored=stored, pairwise=pairwise, as_json=as_json)
    )
    output.finish(compared.ended)
    if compared.document is not None:
        _print(compared, as_json)


async def _compare(
    settings: Settings,
    tools: tuple[str, str],
    *,
    fresh: bool,
    stored: bool,
    pairwise: bool,
    as_json: bool,
) -> Compared:
    from panel.runs.compare import compare_tools
    from panel.runtime import open_runtime

    runtime = open_runtime(settings, offline=stored)
    try:
        show = output.Terminal(settings.max_cost, quiet=as_json)
        return await compare_tools(
            runtime, tools, show, fresh=fresh, stored=stored, pairwise=pairwise
        )
    finally:
        await runtime.aclose()


def _print(compared: Compared, as_json: bool) -> None:
    document, files = compared.document, compared.files
    assert document is not None
    if as_json:
        output.echo_json({**document, "files": {k: str(v) for k, v in files.items()}})
        return
    for side in ("a", "b"):
        tool, result = document[side]["tool"], document[side]["panel"]
        community = document[side]["community"]["label"]
        output.say(
            f"{tool['name']}: {result['label']} · {result['ship_pct']}% panel ship · {community}"
        )
    head_to_head = document["head_to_head"]
    output.say(f"{document['verdict']['headline']}.")
    if (pairwise := head_to_head.get("pairwise")) is not None:
        output.say(f"Side by side: {pairwise['summary']}")
        for persona in pairwise["personas"]:
            output.say(f"  {persona['line']}")
    output.say(f"Scores alone: {head_to_head['summary']}")
    output.say(document["judge"]["line"])
    if document["judge"]["notice"]:
        output.note(document["judge"]["notice"])
    for kind, path in files.items():
        output.say(f"wrote {path}" if kind == "html" else f"      {path}")
