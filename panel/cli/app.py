"""The `panel` command line, assembled: one module per command group, imports inside commands.

Exit codes: 0 ok, 1 a provider failed after retries, 2 bad input (card, flag, file, setting),
3 the --max-cost ceiling stopped the run (what is done is kept), 130 interrupted. `panel --help` loads no SDK, model, pydantic, asyncio or rich: each command
imports what it needs when it runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from panel.cli import compare, evaluate, golden, queue, review

app = typer.Typer(
    name="panel",
    help=(
        "Review an AI tool launch with a panel of four personas (Builder, Skeptic, Futurist, "
        "Founder) and turn the verdicts into comparison pages.\n\n"
        "Runs on an embedded local model by default (no key, no network); use --provider "
        "openai or anthropic for real reviews. Settings come from flags, then PANEL_* "
        "environment variables, then the config file (--config FILE, else the user's "
        "~/.config/panel/config.toml; never one in the current folder)."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,  # click's plain help: typer's rich help costs ~90 ms of imports
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@app.callback()
def main(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Settings file (TOML). Env: PANEL_CONFIG. Default: ~/.config/panel/config.toml.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Take the options every command shares."""
    if config is not None:
        os.environ["PANEL_CONFIG"] = str(config)  # settings_from reads it, in every command


app.command("review")(review.review)
app.command("personas")(review.personas)
app.command("log")(review.log)
app.command("compare")(compare.compare)
app.command("import")(compare.import_records)
app.command("vote")(compare.vote)
app.command("eval")(evaluate.evaluate)
app.add_typer(compare.site_app, name="site")
app.add_typer(golden.app, name="golden")
app.add_typer(queue.app, name="queue")
