"""`panel vote`: a community vote on a tool, from the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from panel.cli import output
from panel.cli.options import DbOpt, uses_settings

if TYPE_CHECKING:
    from panel.config import Settings


@uses_settings()
def vote(
    settings: Settings,
    slug: Annotated[
        str, typer.Argument(metavar="SLUG", help="The tool's slug.", show_default=False)
    ],
    verdict: Annotated[
        str, typer.Argument(metavar="ship|skip", help="ship or skip.", show_default=False)
    ],
    voter: Annotated[
        str | None, typer.Option("--voter", metavar="ID", help="Voter id; default: your user name.")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Cast a community vote on a tool: one vote per voter per tool, the latest counts."""
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
            raise InputError("no such tool in the store (review or import it first)", tool=slug)
        store.save_vote(slug, who, verdict)
        output.say(f"{slug}: {community(store, slug)['label']}")
    finally:
        store.close()
