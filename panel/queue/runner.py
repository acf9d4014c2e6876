"""`panel queue run`: workers that review every queued tool once, then write every comparison.

A job is one pair of tools; a task is one persona's review of one tool, shared by every job that
needs it, so M comparisons over N distinct tools cost at most 4·N model calls, and none for a
tool whose reviews are already stored. A job queued with --pairwise also has a pair task per
persona (its judgment of the pair in both orders), run once both tools' reviews are done.

Crash safety: a worker holds what it works on under a lease that a heartbeat renews; a unit held
by a dead worker (kill -9) comes back when its lease expires. Every state change is one
transaction, reviews are stored under a unique key, pages are written atomically. Several
`queue run` processes on one store share the work (see panel.queue.store for the claiming).

A worker never dies of one unit: a failure no check foresaw fails that unit (counted as an
attempt), and the answers other workers have paid for are stored as they come. A database that
goes away (a PostgreSQL restart) is waited for: the unit in hand when it went is put back and
taken again once the database answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from panel.cards import ToolCard
from panel.compare import write_pages
from panel.errors import (
    CostCeilingReached,
    InputError,
    PanelError,
    ProviderError,
    StoreUnavailable,
    located,
)
from panel.queue.store import QueueStore, ReviewKey, finish_pair_task_in, finish_task_in
from panel.runtime import Ask, PairAsk, Plan, Runtime
from panel.store import StoredPair, StoredReview

LEASE_SECONDS = 30.0
STORE_BACK_SECONDS = 1.0
"""How long a worker waits before asking a database that went away again."""
STORE_GIVE_UP = 10
"""A worker gives up (the run ends with the error) after this many looks in a row found the
database away, each after its statements waited sql.RECONNECT_SECONDS for it."""

log = logging.getLogger(__name__)


def worker_id() -> str:
    """Return a name for this process's claims, unique across machines and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class RunStats:
    jobs_done: int = 0
    jobs_failed: int = 0
    tasks_done: int = 0
    tasks_failed: int = 0
    pairs_done: int = 0
    pairs_failed: int = 0
    started: float = field(default_factory=time.monotonic)


class QueueRunner:
    """Workers that drain the queue of one store; see the module docstring."""

    def __init__(
        self,
        runtime: Runtime,
        queue: QueueStore,
        *,
        concurrency: int,
        max_attempts: int = 3,
        lease: float = LEASE_SECONDS,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.queue = queue
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.lease = lease
        self.on_change = on_change or (lambda: None)
        self.owner = worker_id()
        self.stats = RunStats()
        self.personas = {p.key: p for p in runtime.personas}
        self._news = asyncio.Condition()
        self._polling = False
        self._check_jobs = True
        self._check_tasks = True
        self._check_pairs = True
        self._cards: dict[str, ToolCard] = {}
        self._store_misses = 0
        self.stopped: CostCeilingReached | None = None
        """Set when --max-cost stops the run: workers take nothing new."""

    def reopen_stale(self) -> None:
        """Before a run: put back jobs whose cards changed since their pages were written, and
        the reviews of queued tools this run would not reuse (another model, prompt version or
        card content than the stored review's), so every page shows reviews of this run."""
        self.queue.reopen_stale_jobs()
        for slug in self.queue.open_job_tools():
            card, samples = self._card(slug), self.queue.task_samples(slug)
            asks = [
                ask
                for ask in (self._ask(card, key, samples.get(key, 1)) for key in self.personas)
                if ask is not None
            ]
            complete = {ask.persona.key: not self.runtime.missing(ask) for ask in asks}
            # What "complete" was decided on goes along: another process may store a review
            # between this look and the write, and add_tasks looks again inside its transaction.
            keys = {ask.persona.key: ReviewKey(*self.runtime.review_key(ask)) for ask in asks}
            self.queue.add_tasks(slug, complete, keys=keys)
        for a, b in self.queue.open_pairwise_jobs():
            pair, samples = (self._card(a), self._card(b)), self.queue.pair_task_samples((a, b))
            judged = {
                key: not any(
                    self.runtime.missing_pair(ask)
                    for ask in self.runtime.pair_ask(pair, key, samples.get(key, 1))
                )
                for key in self.personas
            }
            self.queue.add_pair_tasks((a, b), judged)

    def plan(self) -> Plan:
        """Return the plan of the reviews and pair judgments left in the queue (the runtime's,
        as for a live run)."""
        asks = []
        for tool, persona_key, samples in self.queue.open_tasks():
            card = self.runtime.tool(tool)
            ask = None if card is None else self._ask(card, persona_key, samples)
            if ask is not None:  # else it fails when claimed, with its reason
                asks.append(ask)
        pairs: list[PairAsk] = []
        for a, b, persona_key, samples in self.queue.open_pair_tasks():
            cards = self.runtime.tool(a), self.runtime.tool(b)
            if cards[0] is not None and cards[1] is not None:
                pairs += self.runtime.pair_ask((cards[0], cards[1]), persona_key, samples)
        return self.runtime.plan(asks, pairs=pairs)

    def _ask(self, card: ToolCard, persona_key: str, samples: int) -> Ask | None:
        return self.runtime.ask(card, persona_key, samples)

    def _card(self, slug: str) -> ToolCard:
        if slug not in self._cards:
            card = self.runtime.tool(slug)
            if card is None:
                raise InputError("queued tool not in the store", tool=slug)
            self._cards[slug] = card
        return self._cards[slug]

    async def _do_task(self, tool: str, persona_key: str, attempts: int, samples: int) -> None:
        try:
            ask = self._ask(self._card(tool), persona_key, samples)
            if ask is None:
                raise InputError("not a persona on this panel", persona=persona_key)
            for sample in range(samples):  # stored samples are reused, the last one ends the task
                last = sample == samples - 1
                then = partial(finish_task_in, tool=tool, persona=persona_key) if last else None
                await self.runtime.review_sample(ask, sample, then)
        except CostCeilingReached as exc:  # not the task's fault: it waits for a later run
            self.queue.release_task(tool, persona_key, self.owner, str(exc), attempt=False)
            self.stopped = exc
            return
        except StoreUnavailable:  # not the task's fault either: it is taken again once back
            await self._until_stored(
                partial(self.queue.release_task, tool, persona_key, self.owner, "", attempt=False)
            )
            self._check_tasks = True
            return
        except (ProviderError, InputError) as exc:
            self._task_failed(tool, persona_key, attempts, exc)
            return
        except Exception as exc:  # a bug, or an answer no check foresaw: this task only
            log.exception("queue task %s/%s", tool, persona_key)
            error = ProviderError(f"unexpected {exc.__class__.__name__}: {exc}"[:300])
            self._task_failed(tool, persona_key, attempts, error)
            return
        self.stats.tasks_done += 1
        # its tool may be complete now: jobs and pair judgments may be ready
        self._check_jobs = self._check_pairs = True

    async def _do_pair_task(
        self, a: str, b: str, persona_key: str, attempts: int, samples: int
    ) -> None:
        """Judge one persona's pair task: both orders, every sample (stored ones reused); the
        last answer stores the task as done in its transaction."""
        try:
            asks = self.runtime.pair_ask((self._card(a), self._card(b)), persona_key, samples)
            if not asks:
                raise InputError("not a persona on this panel", persona=persona_key)
            wanted = [(ask, sample) for ask in asks for sample in range(samples)]
            for n, (ask, sample) in enumerate(wanted):
                last = n == len(wanted) - 1
                then = partial(finish_pair_task_in, pair=(a, b), persona=persona_key)
                await self.runtime.judge_sample(ask, sample, then if last else None)
        except CostCeilingReached as exc:  # not the task's fault: it waits for a later run
            self.queue.release_pair_task((a, b), persona_key, self.owner, str(exc), attempt=False)
            self.stopped = exc
            return
        except StoreUnavailable:  # not the task's fault either: it is taken again once back
            release = self.queue.release_pair_task
            await self._until_stored(
                partial(release, (a, b), persona_key, self.owner, "", attempt=False)
            )
            self._check_pairs = True
            return
        except (ProviderError, InputError) as exc:
            self._pair_task_failed((a, b), persona_key, attempts, exc)
            return
        except Exception as exc:  # a bug, or an answer no check foresaw: this task only
            log.exception("queue pair task %s-vs-%s/%s", a, b, persona_key)
            error = ProviderError(f"unexpected {exc.__class__.__name__}: {exc}"[:300])
            self._pair_task_failed((a, b), persona_key, attempts, error)
            return
        self.stats.pairs_done += 1
        self._check_jobs = True  # its job may be ready now

    def _pair_task_failed(
        self, pair: tuple[str, str], persona_key: str, attempts: int, exc: PanelError
    ) -> None:
        """Put a failed pair judgment back for another attempt, or fail it (and its job)."""
        if attempts < self.max_attempts and not isinstance(exc, InputError):
            self.queue.release_pair_task(pair, persona_key, self.owner, str(exc))
            self._check_pairs = True
            return
        tool = f"{pair[0]}-vs-{pair[1]}"
        exc.about(tool=tool, persona=persona_key)
        job_error = located(
            f"pair judgment failed after {attempts} attempt(s): {exc.message}",
            tool=tool,
            persona=persona_key,
        )
        self.stats.jobs_failed += self.queue.fail_pair_task(pair, persona_key, str(exc), job_error)
        self.stats.pairs_failed += 1

    def _pairs_of(self, a: ToolCard, b: ToolCard) -> list[StoredPair]:
        """Return the judgments of the pair (every sample its pair tasks ask for, one for a job
        without) that a run with these settings would reuse."""
        samples = self.queue.pair_task_samples((a.slug, b.slug))
        return [
            judgment
            for p in self.runtime.personas
            for ask in self.runtime.pair_ask((a, b), p.key, samples.get(p.key, 1))
            for judgment in self.runtime.stored_pair(ask)
        ]

    def _task_failed(self, tool: str, persona_key: str, attempts: int, exc: PanelError) -> None:
        """Put a failed review back for another attempt, or fail it (and its jobs) for good."""
        if attempts < self.max_attempts and not isinstance(exc, InputError):
            self.queue.release_task(tool, persona_key, self.owner, str(exc))
            self._check_tasks = True
            return
        exc.about(tool=tool, persona=persona_key)
        job_error = located(
            f"failed after {attempts} attempt(s): {exc.message}", tool=tool, persona=persona_key
        )
        self.stats.jobs_failed += self.queue.fail_task(tool, persona_key, str(exc), job_error)
        self.stats.tasks_failed += 1

    async def _store_back(self) -> None:
        """Pause before asking a database that went away again (each statement waits for it
        too); raise StoreUnavailable once it has been away for STORE_GIVE_UP looks in a row."""
        self._store_misses += 1
        if self._store_misses > STORE_GIVE_UP:
            raise StoreUnavailable(f"the database was away for {STORE_GIVE_UP} tries in a row")
        await asyncio.sleep(STORE_BACK_SECONDS)

    async def _until_stored(self, write: Callable[[], object]) -> None:
        """Make a write to the queue go through, waiting out a database that went away (a unit
        this process holds must be put back, or its heartbeat would keep it forever)."""
        while True:
            try:
                write()
                return
            except StoreUnavailable:
                await self._store_back()

    def _reviews_of(self, card: ToolCard) -> list[StoredReview]:
        """Return the reviews of card (every sample its tasks ask for) that `panel review` would
        reuse with this run's settings."""
        samples = self.queue.task_samples(card.slug)
        asks = [self.runtime.ask(card, p.key, samples.get(p.key, 1)) for p in self.runtime.personas]
        return [review for ask in asks if ask is not None for review in self.runtime.stored(ask)]

    async def _do_job(self, job: int, a: str, b: str) -> None:
        try:
            pair = (self._card(a), self._card(b))
            document = self.runtime.comparison(pair, self._reviews_of, self._pairs_of(*pair))
            # Rendering and writing run in a thread so the event loop keeps dispatching calls.
            files = await asyncio.to_thread(write_pages, document, self.runtime.settings.out)
        except (OSError, InputError) as exc:
            await self._until_stored(
                partial(self.queue.release_job, job, str(exc), self.max_attempts)
            )
            self._check_jobs = True
            return
        except StoreUnavailable:
            await self._until_stored(partial(self.queue.release_job, job, "", self.max_attempts))
            self._check_jobs = True
            return
        await self._until_stored(partial(self.queue.finish_job, job, a, b, files))
        self.stats.jobs_done += 1

    async def _worker(self) -> None:
        try:
            while self.stopped is None:
                try:
                    if not await self._step():
                        return
                    self._store_misses = 0
                except StoreUnavailable:  # claiming or polling met a restart: wait, look again
                    await self._store_back()
                    self._check_jobs = self._check_tasks = self._check_pairs = True
        finally:
            # Done, or stopped by the ceiling: every idle worker must see it now, or it would
            # wait for news that no one is left to bring.
            await self._wake(None)

    async def _step(self) -> bool:
        """Do one unit, or wait for one; return False when nothing is left to do."""
        if (job := self._claim_job()) is not None:
            await self._wake(1)  # there may be more: the next idler looks
            await self._do_job(*job)
        elif (task := self._claim_task()) is not None:
            await self._wake(1)
            await self._do_task(*task)
            await self._wake(1)  # a finished review may make jobs ready
        elif (pair_task := self._claim_pair_task()) is not None:
            await self._wake(1)
            await self._do_pair_task(*pair_task)
            await self._wake(1)
        elif self.queue.work_left():
            await self._idle()
            return True
        else:
            return False
        self.on_change()
        return True

    def _claim_job(self) -> tuple[int, str, str] | None:
        """Claim a ready job, unless none was ready at the last look and nothing changed since
        that this process knows of (a review it finished, a poll: see _idle)."""
        if not self._check_jobs:
            return None
        job = self.queue.claim_job(self.owner, self.lease)
        self._check_jobs = job is not None
        return job

    def _claim_pair_task(self) -> tuple[str, str, str, int, int] | None:
        """Claim a pair judgment whose tools are reviewed, unless none was claimable at the last
        look and nothing changed since (as _claim_task)."""
        if not self._check_pairs:
            return None
        task = self.queue.claim_pair_task(self.owner, self.lease)
        self._check_pairs = task is not None
        return task

    def _claim_task(self) -> tuple[str, str, int, int] | None:
        """Claim a review, unless none was left at the last look and none came back since that
        this process knows of (one it put back, a poll: see _idle)."""
        if not self._check_tasks:
            return None
        task = self.queue.claim_task(self.owner, self.lease)
        self._check_tasks = task is not None
        return task

    async def _wake(self, workers: int | None) -> None:
        """Wake that many idle workers of this process (None: all of them)."""
        async with self._news:
            if workers is None:
                self._news.notify_all()
            else:
                self._news.notify(workers)

    async def _idle(self) -> None:
        """Wait while units are in flight here or in another process.

        One idle worker of the process polls (other processes finish units, and a unit held by
        a dead process comes back when its lease expires); the others wait to be woken, so a
        process with many idle workers asks the store a few times a second, not hundreds.
        """
        async with self._news:
            if self._polling:
                # Woken by news; the timeout is a backstop, so no wake-up missed can hang a worker.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._news.wait(), timeout=max(1.0, self.lease))
                return
            self._polling = True
            # Other processes finish reviews, and units of dead ones come back: look again.
            self._check_jobs = self._check_tasks = self._check_pairs = True
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._news.wait(), timeout=min(0.25, self.lease / 4))
            finally:
                self._polling = False

    async def run(self) -> RunStats:
        """Drain the queue; return what this process did."""
        heartbeat = asyncio.create_task(heartbeat_loop(self.queue, self.owner, self.lease))
        try:
            await asyncio.gather(*(self._worker() for _ in range(self.concurrency)))
        finally:
            heartbeat.cancel()
        return self.stats


async def heartbeat_loop(queue: QueueStore, owner: str, lease: float) -> None:
    """Renew owner's leases every third of a lease, until cancelled (a database that went away
    is asked again at the next beat)."""
    while True:
        await asyncio.sleep(lease / 3)
        with contextlib.suppress(StoreUnavailable):
            queue.heartbeat(owner, lease)
