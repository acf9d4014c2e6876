"""The `panel` command line. Imports stay inside commands so `panel --help` loads no SDK or model.

Exit codes: 0 ok, 1 a provider failed after retries, 2 bad input (card, flag, file, setting).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from panel.config import Settings

T = TypeVar("T")

app = typer.Typer(
    name="panel",
    help=(
        "Review an AI tool launch with a panel of four personas (Builder, Skeptic, Futurist, "
        "Founder) and turn the verdicts into comparison pages.\n\n"
        "Runs on an embedded local model by default (no key, no network); use --provider "
        "openai or anthropic for real reviews. Settings come from flags, then PANEL_* "
        "environment variables, then panel.toml."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

# --- shared options ----------------------------------------------------------------------------

ProviderOpt = Annotated[
    str | None,
    typer.Option(
        "--provider",
        "-p",
        help="local (default, embedded), openai or anthropic. Env: PANEL_PROVIDER.",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Model name (local: a GGUF path). Env: PANEL_MODEL."),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="OpenAI-compatible or Anthropic-compatible endpoint. Env: PANEL_BASE_URL, "
        "OPENAI_BASE_URL, ANTHROPIC_BASE_URL.",
    ),
]
StructuredOpt = Annotated[
    str | None,
    typer.Option(
        "--structured-output",
        help="openai provider: json_schema (OpenAI, vLLM, Ollama) or json_object "
        "(llama-cpp-python server). Env: PANEL_STRUCTURED_OUTPUT.",
    ),
]
ConcurrencyOpt = Annotated[
    int | None,
    typer.Option(
        "--concurrency", "-c", help="Model calls in flight at once (remote providers). Default 8."
    ),
]
DbOpt = Annotated[
    Path | None, typer.Option("--db", help="SQLite store. Env: PANEL_DB. Default ./panel.db.")
]
PersonasOpt = Annotated[
    Path | None,
    typer.Option("--personas", help="Folder of persona files. Default: the built-in panel."),
]
PromptsOpt = Annotated[
    Path | None, typer.Option("--prompts", help="Folder of prompt templates. Default: built-in.")
]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Output folder. Env: PANEL_OUT. Default ./outputs."),
]
RecordOpt = Annotated[
    Path | None,
    typer.Option("--record", help="Save every model call as a cassette file in this folder."),
]
CassettesOpt = Annotated[
    Path | None,
    typer.Option(
        "--cassettes", help="Cassette folder for --provider replay (answers only from recordings)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]


def _settings(**flags: Any) -> Settings:
    from panel.config import load_settings

    return load_settings(**flags)


def _run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; turn PanelError into one line and its exit code."""
    from panel.errors import PanelError

    try:
        return asyncio.run(main())
    except PanelError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)


def _note(line: str) -> None:
    typer.echo(f"panel: {line}", err=True)


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"panel: error: {message}", err=True)
    raise typer.Exit(code)


def _guard(fn: Callable[[], T]) -> T:
    """Call fn; a PanelError becomes one line on stderr and its exit code."""
    from panel.errors import PanelError

    try:
        return fn()
    except PanelError as exc:
        _fail(str(exc), exc.exit_code)


# --- commands ----------------------------------------------------------------------------------


@app.command()
def review(
    cards: Annotated[
        list[Path], typer.Argument(help="Tool card files (YAML or JSON).", show_default=False)
    ],
    provider: ProviderOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    structured_output: StructuredOpt = None,
    concurrency: ConcurrencyOpt = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Ask the model again even if a review is stored.")
    ] = False,
    persona: Annotated[
        list[str] | None, typer.Option("--persona", help="Only this persona (repeatable).")
    ] = None,
    db: DbOpt = None,
    personas: PersonasOpt = None,
    prompts: PromptsOpt = None,
    out: OutOpt = None,
    record: RecordOpt = None,
    cassettes: CassettesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Review tool cards with the panel; print a scorecard and write outputs/reviews/<slug>.json.

    A card reviewed before (same content, persona, prompt and model) is answered from the store
    with no model call, unless --fresh.
    """

    async def main() -> int:
        from panel.cards import load_cards
        from panel.results import tool_document, write_atomic
        from panel.runtime import open_runtime

        settings = _settings(
            provider=provider,
            model=model,
            base_url=base_url,
            structured_output=structured_output,
            concurrency=concurrency,
            db=db,
            personas=personas,
            prompts=prompts,
            out=out,
            record=record,
            cassettes=cassettes,
        )
        loaded = load_cards(cards)  # every card is checked before any model call
        runtime = open_runtime(settings, persona)
        documents = []
        failed = False
        try:
            with _progress(len(loaded) * len(runtime.personas), enabled=not as_json) as advance:
                for card in loaded:
                    reviews, errors = await runtime.review(card, fresh=fresh, on_done=advance)
                    document = tool_document(card, reviews, runtime.personas, errors)
                    write_atomic(
                        settings.out / "reviews" / f"{card.slug}.json",
                        json.dumps(document, indent=2, ensure_ascii=False) + "\n",
                    )
                    documents.append(document)
                    failed = failed or bool(errors)
                    if not as_json:
                        _print_scorecard(document)
        finally:
            await runtime.aclose()
        if as_json:
            payload: Any = documents[0] if len(documents) == 1 else documents
            typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        for document in documents:
            slug = document["tool"]["slug"]
            for error in document["errors"]:
                message = error["error"]
                if not message.startswith(f"{slug}:") and f"{slug} / " not in message:
                    message = f"{slug}: {error['persona']}: {message}"
                typer.echo(f"panel: error: {message}", err=True)
        return 1 if failed else 0

    code = _run(main)
    raise typer.Exit(code)


@app.command("personas")
def list_personas(
    personas: PersonasOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the panel: each persona, what it judges and the fields it returns."""

    def main() -> None:
        from panel.personas import load_personas

        panel = load_personas(_settings(personas=personas).personas_dir())
        if as_json:
            typer.echo(json.dumps([p.model_dump(exclude={"source_hash"}) for p in panel], indent=2))
            return
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(title="The panel", show_lines=True)
        for column in ("Persona", "Judges", "Returns", "Model"):
            table.add_column(column)
        for p in panel:
            returns = ", ".join(["score", "verdict", "review", *p.fields])
            cells = (
                p.display_name,
                p.judges,
                returns,
                f"{p.provider or '(default)'} {p.model or ''}",
            )
            table.add_row(*map(Text, cells))  # text from files, never markup
        Console().print(table)

    _guard(main)


@app.command()
def log(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many recent calls.")] = 20,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show recent model calls with tokens, latency, cost and outcome."""

    def main() -> None:
        from dataclasses import asdict

        from panel.store import Store

        settings = _settings(db=db)
        if not settings.db.exists():
            _fail(f"{settings.db}: no store yet (run `panel review` first)", 2)
        store = Store(settings.db)
        calls = store.recent_calls(limit)
        store.close()
        if as_json:
            typer.echo(json.dumps([asdict(c) for c in calls], indent=2))
            return
        import datetime as dt

        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"Last {len(calls)} model calls")
        for column in (
            "When",
            "Provider",
            "Model",
            "Tool",
            "Persona",
            "ms",
            "In",
            "Out",
            "Cost $",
            "Outcome",
        ):
            table.add_column(
                column, justify="right" if column in ("ms", "In", "Out", "Cost $") else "left"
            )
        for c in calls:
            when = dt.datetime.fromtimestamp(c.at).strftime("%m-%d %H:%M:%S")
            cost = "" if c.cost_usd is None else f"{c.cost_usd:.5f}"
            outcome = c.outcome if not c.error else f"{c.outcome}: {c.error[:60]}"
            cells = (
                when,
                c.provider,
                c.model,
                c.tool,
                c.persona,
                str(c.latency_ms),
                str(c.input_tokens),
                str(c.output_tokens),
                cost,
                outcome,
            )
            table.add_row(*map(Text, cells))  # errors quote servers: text, never markup
        Console().print(table)

    _guard(main)


@app.command()
def compare(
    a: Annotated[
        str,
        typer.Argument(
            help="Tool A: a card file or the slug of a stored tool.", show_default=False
        ),
    ],
    b: Annotated[
        str,
        typer.Argument(
            help="Tool B: a card file or the slug of a stored tool.", show_default=False
        ),
    ],
    provider: ProviderOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    structured_output: StructuredOpt = None,
    concurrency: ConcurrencyOpt = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Review both tools again even if reviews are stored.")
    ] = False,
    db: DbOpt = None,
    personas: PersonasOpt = None,
    prompts: PromptsOpt = None,
    out: OutOpt = None,
    record: RecordOpt = None,
    cassettes: CassettesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare two tools side by side: writes <out>/compare/<a>-vs-<b>.html, .md and .json.

    Tools without stored reviews are reviewed first; stored reviews are reused.
    """

    async def main() -> None:
        from panel.compare import compare_tools

        settings = _settings(
            provider=provider,
            model=model,
            base_url=base_url,
            structured_output=structured_output,
            concurrency=concurrency,
            db=db,
            personas=personas,
            prompts=prompts,
            out=out,
            record=record,
            cassettes=cassettes,
        )
        with _progress(8, enabled=not as_json) as advance:
            document, files = await compare_tools(settings, (a, b), fresh=fresh, on_done=advance)
        if as_json:
            payload = {
                "a": document["a"],
                "b": document["b"],
                "files": {k: str(v) for k, v in files.items()},
            }
            typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
            return
        for side in ("a", "b"):
            tool, result = document[side]["tool"], document[side]["panel"]
            typer.echo(
                f"{tool['name']}: {result['label']} · {result['ship_pct']}% panel ship · {document[side]['community']['label']}"
            )
        typer.echo(document["head_to_head"]["summary"])
        for kind, path in files.items():
            typer.echo(f"wrote {path}" if kind == "html" else f"      {path}")

    _run(main)


@app.command("import")
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

    def main() -> None:
        from panel.imports import import_file
        from panel.personas import load_personas
        from panel.store import Store

        settings = _settings(db=db, personas=personas)
        panel_personas = load_personas(settings.personas_dir())
        store = Store(settings.db)
        try:
            tools, reviews = import_file(file, panel_personas, store)
        finally:
            store.close()
        if as_json:
            typer.echo(json.dumps({"tools": tools, "reviews": reviews}))
        else:
            typer.echo(f"imported {tools} tool(s) and {reviews} review(s) into {settings.db}")

    _guard(main)


@app.command()
def vote(
    slug: Annotated[str, typer.Argument(help="The tool's slug.", show_default=False)],
    verdict: Annotated[str, typer.Argument(help="ship or skip.", show_default=False)],
    voter: Annotated[
        str | None, typer.Option("--voter", help="Voter id; default: your user name.")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Cast a community vote on a tool: one vote per voter per tool, the latest counts."""

    def main() -> None:
        import getpass

        from panel.compare import community
        from panel.errors import InputError
        from panel.store import Store

        if verdict not in ("ship", "skip"):
            raise InputError(f"vote must be 'ship' or 'skip', got {verdict!r}")
        who = (voter or getpass.getuser()).strip()
        if not who or len(who) > 200:
            raise InputError("--voter must be 1 to 200 characters")
        store = Store(_settings(db=db).db)
        try:
            if store.get_tool(slug) is None:
                raise InputError(f"{slug}: no such tool in the store (review or import it first)")
            store.save_vote(slug, who, verdict)
            typer.echo(f"{slug}: {community(store, slug)['label']}")
        finally:
            store.close()

    _guard(main)


site_app = typer.Typer(help="The static site of every comparison and tool.", no_args_is_help=True)
app.add_typer(site_app, name="site")


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

    def main() -> None:
        from panel.personas import load_personas
        from panel.site import build_site
        from panel.store import Store

        settings = _settings(db=db, personas=personas, out=out)
        store = Store(settings.db)
        try:
            counts = build_site(
                store, load_personas(settings.personas_dir()), settings.out, base_url
            )
        finally:
            store.close()
        typer.echo(
            f"wrote {settings.out / 'index.html'}: {counts['comparisons']} comparison(s), "
            f"{counts['tools']} tool page(s), feed.atom"
        )

    _guard(main)


golden_app = typer.Typer(
    help="Golden cases: replay recorded model answers and see exactly what a prompt change moved.",
    no_args_is_help=True,
)
app.add_typer(golden_app, name="golden")
CasesArg = Annotated[list[Path], typer.Argument(help="Golden case folders.", show_default=False)]


def _golden(action: str, cases: list[Path], **flags: Any) -> None:
    """Run a golden action on every case; print problems; exit 1 if any."""

    async def main() -> int:
        from panel import golden

        settings = _settings(**flags)
        run = {
            "record": golden.record_case,
            "check": golden.check_case,
            "update": golden.update_case,
        }[action]
        failed = 0
        for case in cases:
            problems = await run(case, settings)
            if problems:
                failed += 1
                typer.echo("\n".join(problems), err=True)
            else:
                typer.echo(
                    f"{case}: {dict(check='ok', update='updated', record='recorded')[action]}"
                )
        return 1 if failed else 0

    raise typer.Exit(_run(main))


@golden_app.command("check")
def golden_check(cases: CasesArg, personas: PersonasOpt = None, prompts: PromptsOpt = None) -> None:
    """Replay each case's cassettes and compare with its expected outputs (exit 1 if anything moved)."""
    _golden("check", cases, personas=personas, prompts=prompts)


@golden_app.command("update")
def golden_update(
    cases: CasesArg, personas: PersonasOpt = None, prompts: PromptsOpt = None
) -> None:
    """Re-render each case's expected outputs from its cassettes (accept what changed)."""
    _golden("update", cases, personas=personas, prompts=prompts)


@golden_app.command("record")
def golden_record(
    cases: CasesArg,
    provider: ProviderOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    structured_output: StructuredOpt = None,
    personas: PersonasOpt = None,
    prompts: PromptsOpt = None,
) -> None:
    """Record fresh model answers for each case's cards (default: the local model), then update."""
    _golden(
        "record",
        cases,
        provider=provider,
        model=model,
        base_url=base_url,
        structured_output=structured_output,
        personas=personas,
        prompts=prompts,
    )


queue_app = typer.Typer(
    help="Batch generation of comparisons from a durable queue in the store.", no_args_is_help=True
)
app.add_typer(queue_app, name="queue")


@queue_app.command("add")
def queue_add(
    file: Annotated[
        Path,
        typer.Argument(
            help='CSV (a,b per line) or JSONL ({"a": ..., "b": ...}) of card paths or slugs.',
            show_default=False,
        ),
    ],
    db: DbOpt = None,
    personas: PersonasOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue comparisons. A pair already queued or done adds nothing; every card is checked first."""

    def main() -> None:
        from dataclasses import asdict

        from panel.personas import load_personas
        from panel.queue import add_pairs, read_pairs
        from panel.store import Store

        settings = _settings(db=db, personas=personas)
        panel_personas = load_personas(settings.personas_dir())
        store = Store(settings.db)
        try:
            added = add_pairs(store, panel_personas, read_pairs(file, store))
        finally:
            store.close()
        if as_json:
            typer.echo(json.dumps(asdict(added)))
        else:
            typer.echo(
                f"queued {added.jobs} comparison(s) ({added.already} already queued or done) "
                f"over {added.tools} tool(s): {added.tasks} review(s) to run"
            )

    _guard(main)


@queue_app.command("run")
def queue_run(
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            help="Workers (and model calls) in flight at once. Default: the concurrency setting (8).",
        ),
    ] = None,
    rpm: Annotated[
        int | None, typer.Option("--rpm", help="Requests per minute per provider. Env: PANEL_RPM.")
    ] = None,
    tpm: Annotated[
        int | None, typer.Option("--tpm", help="Tokens per minute per provider. Env: PANEL_TPM.")
    ] = None,
    max_attempts: Annotated[
        int,
        typer.Option(
            "--max-attempts", help="Attempts per review or comparison before it is marked failed."
        ),
    ] = 3,
    lease: Annotated[
        float,
        typer.Option(
            "--lease", help="Seconds a crashed worker's units stay claimed before others take them."
        ),
    ] = 30.0,
    batch_api: Annotated[
        bool,
        typer.Option(
            "--batch-api",
            help="Send the pending reviews as one provider batch (openai, anthropic) at about half "
            "the price, wait for it (up to 24 h), then write the comparisons. An invalid or "
            "failed answer is not re-asked: its jobs fail (see `panel queue retry`). Killed "
            "while waiting, a rerun resumes the same batch.",
        ),
    ] = False,
    poll_interval: Annotated[
        float,
        typer.Option("--poll-interval", help="With --batch-api: seconds between batch polls."),
    ] = 30.0,
    provider: ProviderOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    structured_output: StructuredOpt = None,
    db: DbOpt = None,
    personas: PersonasOpt = None,
    prompts: PromptsOpt = None,
    out: OutOpt = None,
    record: RecordOpt = None,
    cassettes: CassettesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Drain the queue: review every tool once, then write every comparison. Safe to kill and rerun.

    Exit 0 when every job is done, 1 when some failed (see `panel queue status`).
    """

    async def main() -> int:
        from panel.queue import QueueRunner, status
        from panel.runtime import open_runtime

        settings = _settings(
            provider=provider,
            model=model,
            base_url=base_url,
            structured_output=structured_output,
            concurrency=concurrency,
            db=db,
            personas=personas,
            prompts=prompts,
            out=out,
            record=record,
            cassettes=cassettes,
            rpm=rpm,
            tpm=tpm,
        )
        runtime = open_runtime(settings)
        try:
            runner = QueueRunner(
                runtime, concurrency=settings.concurrency, max_attempts=max_attempts, lease=lease
            )
            with _QueueProgress(runner, enabled=not as_json) as progress:
                runner.on_change = progress.update
                if batch_api:
                    from panel.batch import Batcher

                    await Batcher(
                        runtime,
                        lease=lease,
                        poll_interval=poll_interval,
                        stats=runner.stats,
                        on_change=progress.update,
                        notify=(lambda line: None) if as_json else _note,
                    ).run()
                stats = await runner.run()
            summary = status(runtime.store)
        finally:
            await runtime.aclose()
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "run": {
                            "jobs_done": stats.jobs_done,
                            "jobs_failed": stats.jobs_failed,
                            "reviews_done": stats.tasks_done,
                            "reviews_failed": stats.tasks_failed,
                            "calls": progress.calls,
                            "tokens": progress.tokens,
                            "seconds": round(time.monotonic() - stats.started, 3),
                        },
                        "jobs": summary["jobs"],
                        "tasks": summary["tasks"],
                    }
                )
            )
        else:
            typer.echo(
                f"done: {summary['jobs']['done']} · failed: {summary['jobs']['failed']} · "
                f"pending: {summary['jobs']['pending'] + summary['jobs']['running']} · "
                f"{progress.calls} model call(s), {progress.tokens} token(s) in "
                f"{time.monotonic() - stats.started:.1f} s"
            )
        return 1 if summary["jobs"]["failed"] else 0

    raise typer.Exit(_run(main))


@queue_app.command("status")
def queue_status(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Counts of pending, running, done and failed jobs, and every failed job with its error."""

    def main() -> None:
        from panel.queue import status
        from panel.store import Store

        settings = _settings(db=db)
        if not settings.db.exists():
            _fail(f"{settings.db}: no store yet (run `panel queue add` first)", 2)
        store = Store(settings.db)
        try:
            summary = status(store)
        finally:
            store.close()
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
            return
        jobs, tasks = summary["jobs"], summary["tasks"]
        typer.echo("jobs:    " + " · ".join(f"{k} {v}" for k, v in jobs.items()))
        typer.echo("reviews: " + " · ".join(f"{k} {v}" for k, v in tasks.items()))
        if summary["in_open_batches"]:
            typer.echo(
                f"{summary['in_open_batches']} review(s) wait in an open provider batch: "
                "`panel queue run --batch-api` collects them"
            )
        for job in summary["failed"]:
            typer.echo(
                f"failed #{job['id']} {job['a']} vs {job['b']} after {job['attempts']} attempt(s): {job['last_error']}"
            )

    _guard(main)


@queue_app.command("retry")
def queue_retry(
    failed: Annotated[
        bool, typer.Option("--failed", help="Requeue every failed job and review.")
    ] = False,
    db: DbOpt = None,
) -> None:
    """Requeue failed jobs (and the failed reviews they need)."""

    def main() -> None:
        from panel.errors import InputError
        from panel.queue import retry_failed
        from panel.store import Store

        if not failed:
            raise InputError("say what to retry: --failed")
        store = Store(_settings(db=db).db)
        try:
            typer.echo(f"requeued {retry_failed(store)} failed job(s)")
        finally:
            store.close()

    _guard(main)


# --- output helpers ----------------------------------------------------------------------------


class _QueueProgress:
    """A live bar of jobs with done, failed, calls, tokens and ETA; plain lines off a terminal."""

    def __init__(self, runner: Any, enabled: bool) -> None:
        self.runner = runner
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.started_at = time.time()
        self.calls = 0
        self.tokens = 0
        self.total = 0
        self._bar: Any = None
        self._task: Any = None
        self._last_line = 0.0

    def _measure(self) -> tuple[int, int]:
        store = self.runner.store
        row = store.db.execute(
            "SELECT count(*), coalesce(sum(input_tokens + output_tokens), 0) FROM calls WHERE at >= ?",
            (self.started_at,),
        ).fetchone()
        done, failed, total = store.db.execute(
            """SELECT count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'failed'),
                      count(*) FROM jobs"""
        ).fetchone()
        self.calls, self.tokens, self.total = int(row[0]), int(row[1]), int(total)
        return int(done), int(failed)

    def __enter__(self) -> _QueueProgress:
        done, _ = self._measure()
        if self.enabled and self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("comparisons"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._bar.start()
            self._task = self._bar.add_task("jobs", total=self.total, completed=done, detail="")
        return self

    def update(self) -> None:
        if not self.enabled:
            return
        done, failed = self._measure()
        detail = f"failed {failed} · calls {self.calls} · tokens {self.tokens}"
        if self._bar is not None:
            self._bar.update(self._task, completed=done + failed, total=self.total, detail=detail)
        elif time.monotonic() - self._last_line >= 2 or done + failed == self.total:
            self._last_line = time.monotonic()
            typer.echo(f"queue: {done + failed}/{self.total} · done {done} · {detail}", err=True)

    def __exit__(self, *exc: object) -> None:
        self._measure()
        if self._bar is not None:
            self._bar.stop()


class _progress:
    """A progress bar on stderr while reviews run (plain silence when not on a terminal)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled and sys.stderr.isatty()
        self._bar: Any = None

    def __enter__(self) -> Callable[[str], None]:
        if not self.enabled:
            return lambda _key: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            TextColumn("reviewing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        task = self._bar.add_task("reviews", total=self.total)
        return lambda _key: self._bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self._bar:
            self._bar.stop()


def _print_scorecard(document: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # Every value is a Text, never markup: a card or a review may hold "[/]" or "[link=...]".
    tool = document["tool"]
    result = document["panel"]
    table = Table(
        title=Text(f"{tool['name']} — {tool['tagline']}"), show_lines=True, title_justify="left"
    )
    table.add_column("Persona", style="bold")
    table.add_column("Score", justify="right")
    table.add_column("Verdict")
    table.add_column("Review")
    for r in document["reviews"]:
        style = "green" if r["verdict"] == "ship" else "red"
        table.add_row(
            Text(r["display_name"]),
            f"{r['score']}/100",
            Text(r["verdict"], style=style),
            Text(r["review"]),
        )
    console = Console()
    console.print(table)
    if result["reviews"]:
        console.print(
            Text.assemble(
                "Panel: ",
                (result["label"], "bold"),
                f" · {result['ship_pct']}% panel ship · mean score {result['score_mean']} "
                f"(min {result['score_min']}, max {result['score_max']})",
            ),
            soft_wrap=True,
        )
    for flag in result["flags"]:
        console.print(Text.assemble(("Flag: ", "bold yellow"), flag["message"]), soft_wrap=True)
    console.print()


def main() -> None:
    app()
