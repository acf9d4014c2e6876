"""`panel log`: what every recent model call took and cost."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from panel.cli import output
from panel.cli.options import DbOpt, JsonOpt, in_range, uses_settings

if TYPE_CHECKING:
    from panel.config import Settings

COLUMNS = (
    "When",
    "Provider",
    "Model",
    "Tool",
    "Persona",
    "ms",
    "In",
    "Cached",
    "Out",
    "Cost $",
    "Outcome",
)
NUMBERS = ("ms", "In", "Cached", "Out", "Cost $")
MAX_LIMIT = 100_000
"""The most calls `panel log` shows at once."""


@uses_settings()
def log(
    settings: Settings,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", "-n", metavar="N", help=f"How many recent calls (1 to {MAX_LIMIT:,})."
        ),
    ] = 20,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show recent model calls with tokens, latency, cost and outcome."""
    import datetime as dt
    from dataclasses import asdict

    from panel.store import Store

    in_range("--limit", limit, 1, MAX_LIMIT, "calls")
    store = Store(settings.db, write=False, first="panel review")
    try:
        calls = store.recent_calls(limit)
    finally:
        store.close()
    if as_json:
        output.echo_json([asdict(c) for c in calls], ensure_ascii=True)
        return
    rows: list[Any] = [
        (
            dt.datetime.fromtimestamp(c.at).strftime("%m-%d %H:%M:%S"),
            c.provider,
            c.model,
            c.tool,
            c.persona,
            str(c.latency_ms),
            str(c.input_tokens),
            str(c.cached_tokens),
            str(c.output_tokens),
            "" if c.cost_usd is None else f"{c.cost_usd:.5f}",
            c.outcome if not c.error else f"{c.outcome}: {c.error[:60]}",
        )
        for c in calls
    ]
    output.print_table(f"Last {len(calls)} model calls", COLUMNS, rows, right=NUMBERS)
