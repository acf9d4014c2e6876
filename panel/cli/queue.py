"""`panel queue add / run / status / retry`: batch generation of comparisons from a durable queue."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from panel.cli import output
from panel.cli.options import (
    BaseUrlOpt,
    CassettesOpt,
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
    from panel.queue.store import QueueStore
    from panel.store import Store

app = typer.Typer(
    help="Batch generation of comparisons from a durable queue in the store.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _open_queue(settings: Settings, *, must_exist: str | None = None) -> tuple[Store, QueueStore]:
    """Open the store and its queue; with must_exist, only to read: a store that is missing (or
    not at this panel's schema) is one line naming the command that makes it."""
    from panel.queue.store import QueueStore
    from panel.store import Store

    store = Store(settings.db, write=must_exist is None, first=must_exist or "")
    return store, QueueStore(store)


@app.command("add")
def add(
    file: Annotated[
        Path,
        typer.Argument(
            help='CSV (a,b per line) or JSONL ({"a": ..., "b": ...}) of card paths or slugs.',
            show_default=False,
        ),
    ],
    samples: SamplesOpt = None,
    db: DbOpt = None,
    personas: PersonasOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue comparisons. A pair already queued or done adds nothing; every card is checked first.

    With --samples N each persona answers each tool N times when the queue runs.
    """
    output.guard(_add, output.guard(settings_from, locals()), file, as_json)


def _add(settings: Settings, file: Path, as_json: bool) -> None:
    from dataclasses import asdict

    from panel.personas import load_personas
    from panel.queue.pairs import add_pairs, read_pairs

    panel_personas = load_personas(settings.personas_dir())
    store, queue = _open_queue(settings)
    try:
        added = add_pairs(queue, panel_personas, read_pairs(file, store), settings.samples)
    finally:
        store.close()
    if as_json:
        output.echo_json(asdict(added), indent=None)
    else:
        output.say(
            f"queued {added.jobs} comparison(s) ({added.already} already queued or done) "
            f"over {added.tools} tool(s): {added.tasks} review(s) to run"
            + (f", {settings.samples} samples each" if settings.samples > 1 else "")
        )


@app.command("run")
def run(
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
    job_attempts: Annotated[
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
    max_cost: MaxCostOpt = None,
    persona_model: PersonaModelOpt = None,
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

    Exit 0 when every job is done, 1 when some failed (see `panel queue status`), 3 when
    --max-cost stopped it (what is done is kept; the rest stays queued for the next run).
    """
    # job_attempts is not the max_attempts setting (retries of one call): named apart.
    settings = output.guard(settings_from, locals())
    knobs = {"max_attempts": job_attempts, "lease": lease}
    batch = {"poll_interval": poll_interval} if batch_api else None
    raise typer.Exit(output.run(_run(settings, knobs, batch, as_json)))


async def _run(
    settings: Settings, knobs: dict[str, Any], batch: dict[str, Any] | None, as_json: bool
) -> int:
    """Drain the queue (first as provider batches when batch is given); return the exit code."""
    from panel.queue.batch import Batcher
    from panel.queue.runner import QueueRunner
    from panel.runtime import open_runtime

    runtime = open_runtime(settings)
    try:
        runner = QueueRunner(runtime, concurrency=settings.concurrency, **knobs)
        runner.reopen_stale()
        output.announce(runner.planned(), settings.max_cost, runtime.store.output_tokens_seen)
        with output.QueueProgress(runner.queue, enabled=not as_json) as progress:
            runner.on_change = progress.update
            if batch is not None:
                await Batcher(
                    runtime,
                    lease=knobs["lease"],
                    stats=runner.stats,
                    on_change=progress.update,
                    notify=(lambda line: None) if as_json else output.note,
                    **batch,
                ).run()
            stats = await runner.run()
        summary = runner.queue.status()
    finally:
        await runtime.aclose()
    seconds = time.monotonic() - stats.started
    if as_json:
        run_figures = {
            "jobs_done": stats.jobs_done,
            "jobs_failed": stats.jobs_failed,
            "reviews_done": stats.tasks_done,
            "reviews_failed": stats.tasks_failed,
            "calls": progress.calls,
            "tokens": progress.tokens,
            "seconds": round(seconds, 3),
        }
        output.echo_json(
            {"run": run_figures, "jobs": summary["jobs"], "tasks": summary["tasks"]}, indent=None
        )
    else:
        jobs = summary["jobs"]
        output.say(
            f"done: {jobs['done']} · failed: {jobs['failed']} · "
            f"pending: {jobs['pending'] + jobs['running']} · "
            f"{progress.calls} model call(s), {progress.tokens} token(s) in {seconds:.1f} s"
        )
    if runner.stopped is not None:
        output.fail(runtime.reviewer.spending.stop_line(), 3)  # the calls under way have ended
    return 1 if summary["jobs"]["failed"] else 0


@app.command("status")
def status(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Counts of pending, running, done and failed jobs, and every failed job with its error."""
    output.guard(_status, output.guard(settings_from, locals()), as_json)


def _status(settings: Settings, as_json: bool) -> None:
    store, queue = _open_queue(settings, must_exist="panel queue add")
    try:
        summary = queue.status()
    finally:
        store.close()
    if as_json:
        output.echo_json(summary, ensure_ascii=True)
        return
    jobs, tasks = summary["jobs"], summary["tasks"]
    output.say("jobs:    " + " · ".join(f"{k} {v}" for k, v in jobs.items()))
    output.say("reviews: " + " · ".join(f"{k} {v}" for k, v in tasks.items()))
    if summary["in_open_batches"]:
        output.say(
            f"{summary['in_open_batches']} review(s) wait in an open provider batch: "
            "`panel queue run --batch-api` collects them"
        )
    for job in summary["failed"]:
        output.say(
            f"failed #{job['id']} {job['a']} vs {job['b']} after {job['attempts']} attempt(s): "
            f"{job['last_error']}"
        )


@app.command("retry")
def retry(
    failed: Annotated[
        bool, typer.Option("--failed", help="Requeue every failed job and review.")
    ] = False,
    db: DbOpt = None,
) -> None:
    """Requeue failed jobs (and the failed reviews they need)."""
    output.guard(_retry, output.guard(settings_from, locals()), failed)


def _retry(settings: Settings, failed: bool) -> None:
    from panel.errors import InputError

    if not failed:
        raise InputError("say what to retry: --failed")
    store, queue = _open_queue(settings)
    try:
        output.say(f"requeued {queue.retry_failed()} failed job(s)")
    finally:
        store.close()
