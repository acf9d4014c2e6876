"""`panel queue run`: drain the queue (first as provider batches, with --batch-api), then say
what this process did and how the queue stands."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from panel.config import Settings
from panel.queue.batch import Batcher
from panel.queue.runner import QueueRunner, RunStats
from panel.queue.store import BatchStore, QueueStore
from panel.runs import Ended, Show, carrying_out, ended, refresh
from panel.runtime import open_runtime
from panel.store import Store


@dataclass(frozen=True)
class Drained:
    """A queue run: what this process did, the queue's counts after it, and how it ended."""

    stats: RunStats
    summary: dict[str, Any]
    calls: int
    tokens: int
    seconds: float
    ended: Ended


async def run_queue(
    settings: Settings,
    show: Show,
    *,
    max_attempts: int,
    lease: float,
    batch_poll: float | None = None,
) -> Drained:
    """Drain the queue of the store; with batch_poll (seconds between polls), send the pending
    reviews as provider batches first."""
    store = Store(settings.db)
    try:
        runtime = open_runtime(settings, store=store)
        try:
            drained = await _drain(runtime, store, show, max_attempts, lease, batch_poll)
            stats = drained.stats
            if stats.tools or stats.pairs:  # once for the whole run: the pages of what it stored
                refresh(runtime, tools=stats.tools, pairs=stats.pairs)
            return drained
        finally:
            await runtime.aclose()
    finally:
        store.close()


async def _drain(
    runtime: Any,
    store: Store,
    show: Show,
    max_attempts: int,
    lease: float,
    batch_poll: float | None,
) -> Drained:
    from panel.site import has_site  # the pages' templates load with a run, not before

    queue = QueueStore(store)
    runner = QueueRunner(
        runtime,
        queue,
        concurrency=runtime.settings.concurrency,
        max_attempts=max_attempts,
        lease=lease,
    )
    runner.site = has_site(runtime.settings.out)
    runner.reopen_stale()
    started = time.time()
    measure = lambda: queue.progress(started)  # noqa: E731
    with carrying_out(runtime, runner.plan(), show, show.queue_progress(measure)) as update:
        runner.on_change = lambda: update("")
        if batch_poll is not None:
            batcher = Batcher(
                runtime,
                queue,
                BatchStore(store),
                lease=lease,
                poll_interval=batch_poll,
                stats=runner.stats,
                on_change=runner.on_change,
                notify=show.note,
            )
            await batcher.run()
        try:
            stats = await runner.run()
        except KeyboardInterrupt:  # the pages of the jobs it finished, before it exits
            refresh(runtime, tools=runner.stats.tools, pairs=runner.stats.pairs)
            raise
    progress = queue.progress(started)
    summary = queue.status()
    seconds = time.monotonic() - stats.started
    failures = (
        [f"{summary['jobs']['failed']} comparison(s) failed"] if summary["jobs"]["failed"] else []
    )
    stop = (
        runtime.spending.stop_line() if runner.stopped is not None else None
    )  # calls under way ended
    return Drained(stats, summary, progress.calls, progress.tokens, seconds, ended(failures, stop))
