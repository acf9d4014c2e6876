"""`panel queue add / run / status / retry`: batch generation of comparisons from a durable queue."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from panel.cli import output
from panel.cli.options import (
    DbOpt,
    JsonOpt,
    PersonasOpt,
    SamplesOpt,
    in_range,
    uses_settings,
)

MAX_FEED_ENTRIES = 100
"""panel.feeds.MAX_ENTRIES, said in the help without importing the feed reader."""

if TYPE_CHECKING:
    from panel.config import Settings
    from panel.queue.pairs import Added, Fed
    from panel.queue.store import QueueStore
    from panel.runs.queue import Drained
    from panel.store import Store

LEASE_RANGE = (1.0, 86_400.0)
"""--lease in seconds: at least one (a heartbeat renews it every third), at most a day."""
POLL_RANGE = (0.01, 3_600.0)
"""--poll-interval in seconds."""

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
@uses_settings(run=True)
def add(
    settings: Settings,
    file: Annotated[
        Path | None,
        typer.Argument(
            metavar="FILE",
            help='CSV (a,b per line) or JSONL ({"a": ..., "b": ...}) of card paths, slugs or '
            "launch page URLs.",
            show_default=False,
        ),
    ] = None,
    feed: Annotated[
        str | None,
        typer.Option(
            "--feed",
            metavar="URL",
            help="An RSS, Atom or JSON feed of launches: each new entry's page is read into a "
            "card (as `panel card` does) and its review queued; entries seen before are "
            f"skipped, and only the first {MAX_FEED_ENTRIES} of a feed are looked at. Safe "
            "to run from cron.",
        ),
    ] = None,
    compare_with: Annotated[
        str | None,
        typer.Option(
            "--compare-with",
            metavar="SLUG|category:NAME",
            help="With --feed: also queue each new tool's comparison with this stored tool, or "
            "with every stored tool of a category.",
        ),
    ] = None,
    samples: SamplesOpt = None,
    pairwise: Annotated[
        bool,
        typer.Option(
            "--pairwise",
            help="Also have each persona judge each pair side by side, in both orders, once "
            "both tools are reviewed (8 calls a pair; with --samples N, N each); the pages "
            "lead with the judged head-to-head. A pair queued before gains its judgments.",
        ),
    ] = False,
    db: DbOpt = None,
    personas: PersonasOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue comparisons from a file of pairs, or new launches from a feed (--feed). A pair
    already queued or done adds nothing; every card is checked first.

    With --samples N each persona answers each tool N times when the queue runs. A URL (in
    the file, or a feed's entry) is read into a card now, by the run's model. In a feed, an
    entry whose page cannot be read is skipped with its reason (and tried again next time);
    the rest are queued. Exit 2 if the feed itself cannot be read.
    """
    from dataclasses import asdict

    from panel.errors import InputError
    from panel.queue.pairs import Fed

    if (file is None) == (feed is None):
        raise InputError("give a FILE of pairs or --feed URL (one of the two)")
    if compare_with is not None and feed is None:
        raise InputError("--compare-with goes with --feed")
    done = output.run(_add(settings, file, feed, compare_with, pairwise))
    added = done.added if isinstance(done, Fed) else done
    if as_json:
        feed_part = asdict(done) if isinstance(done, Fed) else {}
        feed_part.pop("added", None)  # its counts are the top level's
        output.echo_json(asdict(added) | feed_part, indent=None)
        return
    if isinstance(done, Fed):
        for reason in done.skipped:
            output.note(f"skipped: {reason}")
        output.say(
            f"feed: {done.entries} new entr(y/ies) queued, {done.seen} seen before, "
            f"{len(done.skipped)} skipped"
        )
    reviews = added.tools * _panel_size(settings)  # what `queue status` counts as reviews
    output.say(
        f"queued {added.jobs} comparison(s) ({added.already} already queued or done) "
        f"over {added.tools} tool(s): {reviews} review(s), {added.tasks} to run "
        f"({reviews - added.tasks} stored already)"
        + (f", {settings.samples} samples each" if settings.samples > 1 else "")
        + (f", then {added.pair_tasks} pair judgment(s) in both orders" if pairwise else "")
    )


def _panel_size(settings: Settings) -> int:
    from panel.personas import load_personas

    return len(load_personas(settings.personas_dir()))


async def _add(
    settings: Settings,
    file: Path | None,
    feed: str | None,
    compare_with: str | None,
    pairwise: bool,
) -> Added | Fed:
    """Queue what `queue add` names; a runtime (its model) is opened only to read pages."""
    from panel.cards import is_url
    from panel.intake import cards_at
    from panel.personas import load_personas
    from panel.queue.pairs import add_feed, add_pairs, others_named, read_pairs, read_refs
    from panel.runtime import open_runtime

    store, queue = _open_queue(settings)
    try:
        urls = [r for _, a, b in (read_refs(file) if file else []) for r in (a, b) if is_url(r)]
        if file is not None and not urls:
            pairs = read_pairs(file, store)
            panel = load_personas(settings.personas_dir())
            return add_pairs(queue, panel, pairs, settings.samples, pairwise=pairwise)
        runtime = open_runtime(settings, store=store)
        try:
            if feed is not None:
                others = others_named(store, compare_with)
                return await add_feed(queue, runtime, feed, others, pairwise=pairwise)
            assert file is not None
            pairs = read_pairs(file, store, await cards_at(runtime, urls))
            return add_pairs(queue, runtime.personas, pairs, settings.samples, pairwise=pairwise)
        finally:
            await runtime.aclose()
    finally:
        store.close()


@app.command("run")
@uses_settings(run=True)
def run(
    settings: Settings,
    rpm: Annotated[
        int | None,
        typer.Option(
            "--rpm", metavar="N", help="Requests per minute per provider. Env: PANEL_RPM."
        ),
    ] = None,
    tpm: Annotated[
        int | None,
        typer.Option("--tpm", metavar="N", help="Tokens per minute per provider. Env: PANEL_TPM."),
    ] = None,
    job_attempts: Annotated[
        int,
        typer.Option(
            "--max-attempts",
            metavar="N",
            help="Attempts per review or comparison before it is marked failed.",
        ),
    ] = 3,
    lease: Annotated[
        float,
        typer.Option(
            "--lease",
            metavar="SECONDS",
            help="Seconds a crashed worker's units stay claimed before others take them "
            "(1 to 86400; timed on the database's clock).",
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
        typer.Option(
            "--poll-interval",
            metavar="SECONDS",
            help="With --batch-api: seconds between batch polls (0.01 to 3600).",
        ),
    ] = 30.0,
    as_json: JsonOpt = False,
) -> None:
    """Drain the queue: review every tool once, then write every comparison. Safe to kill and rerun.

    Exit 0 when every job is done, 1 when some failed (see `panel queue status`), 3 when
    --max-cost stopped it (what is done is kept; the rest stays queued for the next run).
    """
    # job_attempts is not the max_attempts setting (retries of one call): named apart.
    from panel.runs.queue import run_queue

    in_range("--lease", lease, *LEASE_RANGE, "seconds")
    in_range("--poll-interval", poll_interval, *POLL_RANGE, "seconds")
    in_range("--max-attempts", job_attempts, 1, 100, "attempts")
    show = output.Terminal(settings.max_cost, quiet=as_json)
    drained = output.run(
        run_queue(
            settings,
            show,
            max_attempts=job_attempts,
            lease=lease,
            batch_poll=poll_interval if batch_api else None,
        )
    )
    _print_run(drained, as_json)
    output.finish(drained.ended)


def _print_run(drained: Drained, as_json: bool) -> None:
    from panel.store import PAIR, REVIEW

    stats, summary = drained.stats, drained.summary
    if as_json:
        run_figures = {
            "jobs_done": stats.jobs_done,
            "jobs_failed": stats.jobs_failed,
            "reviews_done": stats.units[REVIEW, "done"],
            "reviews_failed": stats.units[REVIEW, "failed"],
            "pair_judgments_done": stats.units[PAIR, "done"],
            "pair_judgments_failed": stats.units[PAIR, "failed"],
            "calls": drained.calls,
            "tokens": drained.tokens,
            "seconds": round(drained.seconds, 3),
        }
        output.echo_json(
            {"run": run_figures, "jobs": summary["jobs"], "tasks": summary["tasks"]}, indent=None
        )
        return
    jobs = summary["jobs"]
    output.say(
        f"done: {jobs['done']} · failed: {jobs['failed']} · "
        f"pending: {jobs['pending'] + jobs['running']} · "
        f"{drained.calls} model call(s), {drained.tokens} token(s) in {drained.seconds:.1f} s"
    )


@app.command("status")
@uses_settings()
def status(settings: Settings, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Counts of pending, running, done and failed jobs, and every failed job with its error."""
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
    if any(summary["pair_tasks"].values()):
        pairs = summary["pair_tasks"]
        output.say("pairs:   " + " · ".join(f"{k} {v}" for k, v in pairs.items()))
    for pause in summary["pauses"]:
        until = time.strftime("%H:%M:%S", time.localtime(pause["until"]))
        output.say(
            f"{pause['provider']} at {pause['endpoint'] or 'its own endpoint'} is paused by a "
            f"Retry-After until {until} ({pause['seconds_left']:g} s left)"
        )
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
@uses_settings()
def retry(
    settings: Settings,
    failed: Annotated[
        bool, typer.Option("--failed", help="Requeue every failed job and review.")
    ] = False,
    db: DbOpt = None,
) -> None:
    """Requeue failed jobs (and the failed reviews they need)."""
    from panel.errors import InputError

    if not failed:
        raise InputError("say what to retry: --failed")
    store, queue = _open_queue(settings)
    try:
        output.say(f"requeued {queue.retry_failed()} failed job(s)")
    finally:
        store.close()
