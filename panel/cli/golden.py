"""`panel golden check / update / record`: replay recorded model answers and see exactly what a
prompt change moved."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from panel.cli import output
from panel.cli.options import (
    BaseUrlOpt,
    ModelOpt,
    PersonasOpt,
    PromptsOpt,
    ProviderOpt,
    StructuredOpt,
    uses_settings,
)

if TYPE_CHECKING:
    from panel.config import Settings

app = typer.Typer(
    help="Golden cases: replay recorded model answers and see exactly what a prompt change moved.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
CasesArg = Annotated[
    list[Path], typer.Argument(metavar="CASE", help="Golden case folders.", show_default=False)
]

DONE = {"check": "ok", "update": "updated", "record": "recorded"}


@app.command("check")
@uses_settings()
def check(
    settings: Settings, cases: CasesArg, personas: PersonasOpt = None, prompts: PromptsOpt = None
) -> None:
    """Replay each case's cassettes and compare with its expected outputs (exit 1 if anything moved)."""
    raise typer.Exit(output.run(_golden("check", cases, settings)))


@app.command("update")
@uses_settings()
def update(
    settings: Settings, cases: CasesArg, personas: PersonasOpt = None, prompts: PromptsOpt = None
) -> None:
    """Re-render each case's expected outputs from its cassettes (accept what changed)."""
    raise typer.Exit(output.run(_golden("update", cases, settings)))


@app.command("record")
@uses_settings()
def record(
    settings: Settings,
    cases: CasesArg,
    provider: ProviderOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    structured_output: StructuredOpt = None,
    personas: PersonasOpt = None,
    prompts: PromptsOpt = None,
) -> None:
    """Record fresh model answers for each case's cards (default: the local model), then update."""
    raise typer.Exit(output.run(_golden("record", cases, settings)))


async def _golden(action: str, cases: list[Path], settings: Settings) -> int:
    """Run a golden action on every case; print problems; return 1 if any case had some."""
    from panel import golden

    run = {"record": golden.record_case, "check": golden.check_case, "update": golden.update_case}
    failed = 0
    for case in cases:
        problems = await run[action](case, settings)
        if problems:
            failed += 1
            output.say("\n".join(problems), err=True)
        else:
            output.say(f"{case}: {DONE[action]}")
    return 1 if failed else 0
