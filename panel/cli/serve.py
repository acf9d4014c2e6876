"""`panel serve`: the built site and its API (community votes, card submissions) on a server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from panel.cli import output
from panel.cli.options import DbOpt, OutOpt, PersonasOpt, uses_settings

if TYPE_CHECKING:
    from panel.config import Settings

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


@uses_settings()
def serve(
    settings: Settings,
    host: Annotated[
        str, typer.Option("--host", metavar="HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option("--port", metavar="PORT", min=0, max=65535, help="Port (0: a free one)."),
    ] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            metavar="N",
            min=1,
            max=64,
            help="Server processes sharing the port. They share votes, vote limits and the "
            "queue through the store (on PostgreSQL, so do the processes of other machines).",
        ),
    ] = 1,
    vote_rate: Annotated[
        int | None,
        typer.Option(
            "--vote-rate",
            metavar="N",
            help="Votes a minute one client address may cast (default 60). Env: PANEL_VOTE_RATE.",
        ),
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            metavar="ADDRESS|CIDR",
            help="A reverse proxy in front of the server (repeatable): only its requests have "
            "their client address and scheme read from X-Forwarded-For / X-Forwarded-Proto. "
            "Env: PANEL_TRUSTED_PROXY.",
        ),
    ] = None,
    allowed_hosts: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            metavar="NAME",
            help="A host name the server answers to (repeatable; *.example.com for its "
            "subdomains); a request for another Host is refused (400). Needed when --host is "
            "not loopback; default: localhost, 127.0.0.1 and ::1. Env: PANEL_ALLOWED_HOSTS.",
        ),
    ] = None,
    submit_token: Annotated[
        str | None,
        typer.Option(
            "--submit-token",
            metavar="TOKEN",
            help="Bearer token of POST /api/cards (at least 16 characters); without one, card "
            "submission is off. Prefer PANEL_SUBMIT_TOKEN: a flag shows in the process list.",
        ),
    ] = None,
    signing_key: Annotated[
        str | None,
        typer.Option(
            "--signing-key",
            metavar="KEY",
            help="Key that signs voter cookies (at least 32 characters), the same on every "
            "machine of one site. Default: one generated once and kept in your data folder "
            "(mode 0600). Prefer PANEL_SIGNING_KEY: a flag shows in the process list.",
        ),
    ] = None,
    rebuild_every: Annotated[
        float,
        typer.Option(
            "--rebuild-every",
            metavar="SECONDS",
            min=0.0,
            help="How often to look for new tools, reviews and comparisons in the store and "
            "rebuild the site when there are (0: never; votes are read live, not rebuilt).",
        ),
    ] = 10.0,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            metavar="LEVEL",
            help="critical, error, warning, info (with one line per request) or debug.",
        ),
    ] = "info",
    db: DbOpt = None,
    out: OutOpt = None,
    personas: PersonasOpt = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help='First print where it listens as one JSON line ({"url", "site", "workers", '
            '"cards"}), for scripts: with --port 0, the port it took.',
        ),
    ] = False,
) -> None:
    """Serve the site in the output folder and its API: community votes from visitors
    (POST /api/votes), tool summaries (GET /api/tools/SLUG), launch cards with a token
    (POST /api/cards, reviewed by `panel queue run`) and GET /healthz.

    The site is rebuilt from the store at start and whenever the store holds tools, reviews or
    comparisons the pages do not show yet. Runs until interrupted. See docs/serving.md for
    deployment behind a reverse proxy.
    """
    import os

    from panel.errors import InputError
    from panel.personas import load_personas
    from panel.serve.app import Serving, describe, is_loopback, listening_socket, run
    from panel.serve.keys import signing_key as key_of
    from panel.store import Store
    from panel.store.sql import is_url

    if log_level not in LOG_LEVELS:
        raise InputError(f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    if not settings.allowed_hosts and not is_loopback(host):
        raise InputError(
            f"--host {host} listens beyond this machine: name the host names the site is "
            "served under (--allowed-host verdicts.example.com, or PANEL_ALLOWED_HOSTS)"
        )
    load_personas(settings.personas_dir())  # a broken persona folder: one line, before anything
    try:
        settings.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot make the site folder: {exc.strerror}", path=str(settings.out)
        ) from None
    if not os.access(settings.out, os.W_OK):
        raise InputError("the site folder is not writable", path=str(settings.out))
    Store(settings.db).close()  # made or upgraded once here, not by each worker at once
    _, key_file = key_of(settings)
    sock = listening_socket(host, port)
    serving = Serving(settings, rebuild_every)
    shown = describe(serving, sock, workers)
    if as_json:
        output.echo_json(shown, indent=None)
    output.note(
        f"serving {shown['site']} and its API on {shown['url']} ({workers} worker(s)); "
        f"card submission {'on' if shown['cards'] else 'off (no submit token)'}"
    )
    if key_file is not None and is_url(settings.db):
        output.note(
            f"voter cookies are signed with the key in {key_file}: give every machine that "
            "serves this site the same key (PANEL_SIGNING_KEY)"
        )
    try:
        run(serving, sock, workers=workers, log_level=log_level)
    except KeyboardInterrupt:  # Ctrl-C (or SIGINT) is how a server is stopped: not an error
        pass
    finally:
        sock.close()
    output.note("stopped")
