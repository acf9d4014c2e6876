"""The `panel` command line, assembled: one module per command or command group, and the one
error boundary of the app.

Exit codes: 0 ok, 1 a provider failed after retries, 2 bad input (card, flag, file, setting),
3 the --max-cost ceiling stopped the run (what is done is kept), 130 interrupted. Every
PanelError a command raises becomes one line on stderr and its exit code here, at the top of the
app, and nowhere else. `panel --help` loads no SDK, model, pydantic, asyncio or rich: each
command imports what it needs when it runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from panel.cli import (
    card,
    compare,
    eval,
    golden,
    import_,
    log,
    models,
    output,
    personas,
    queue,
    rank,
    review,
    serve,
    site,
    vote,
)


class Boundary(TyperGroup):
    """The app's top group: a PanelError from any command becomes one line and its exit code,
    an interrupt exit 130; anything else is a bug and keeps its traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer.Context, or the vendored click one it derives from
        from panel.errors import PanelError

        try:
            return super().invoke(ctx)
        except PanelError as exc:
            output.say(f"panel: error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            output.say("panel: error: interrupted", err=True)
            raise typer.Exit(130) from None


app = typer.Typer(
    name="panel",
    cls=Boundary,
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
            metavar="FILE",
            help="Settings file (TOML). Env: PANEL_CONFIG. Default: ~/.config/panel/config.toml.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Take the options every command shares."""
    if config is not None:
        os.environ["PANEL_CONFIG"] = str(config)  # settings_from reads it, in every command


app.command("review")(review.review)
app.command("card")(card.card)
app.command("compare")(compare.compare)
app.command("eval")(eval.eval_command)
app.command("personas")(personas.personas)
app.command("log")(log.log)
app.command("import")(import_.import_records)
app.command("vote")(vote.vote)
app.command("rank")(rank.rank)
app.command("serve")(serve.serve)
app.add_typer(site.app, name="site")
app.add_typer(queue.app, name="queue")
app.add_typer(golden.app, name="golden")
app.add_typer(models.app, name="models")
