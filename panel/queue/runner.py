"""`panel queue run`: workers that review every queued tool once, then write every comparison.

A job is one pair of tools; a task is one persona's review of one tool, shared by every job that
needs it, so M comparisons over N distinct tools cost at most 4·N model calls, and none for a
tool whose reviews are already stored. A job queued with --pairwise also has a pair task per
persona (its judgment of the pair in both orders), run once both tools' reviews are done.

Crash safety: a worker holds what it works on under a lease that a heartbeat renews; a unit held
by a dead worker (kill -9) comes back when its lease expires, and one held by an interrupted
worker (Ctrl-C) at once. Every state change is one
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
import signal
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from panel.cards import ToolCard
from panel.compare import page_paths, write_pages
from panel.errors import (
    CostCeilingReached,
    InputError,
    PanelError,
    ProviderError,
    StoreUnavailable,
    located,
)
from panel.questions import Question
from panel.queue.store import TABLES, QueueStore, Unit, finish_in
from panel.runtime import Plan, Runtime
from panel.store import PAIR, REVIEW, StoredReview

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
    """What this process did: jobs done and failed, and units by kind and outcome."""

    jobs_done: int = 0
    jobs_failed: int = 0
    units: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(kind, "done" or "failed") -> how many units."""
    tools: set[str] = field(default_factory=set)
    """The tools this process stored reviews of or compared: what the site's refresh shows."""
    pairs: set[tuple[str, str]] = field(default_factory=set)
    """The pairs this process judged or compared."""
    started: float = field(default_factory=time.monotonic)

    def settled(self, kind: str, outcome: str, jobs_failed: int = 0) -> None:
        """Count a unit of a kind that ended ("done" or "failed"), and the jobs failed with it."""
        self.units[kind, outcome] += 1
        self.jobs_failed += jobs_failed


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
        self._check = dict.fromkeys(TABLES, True)
        """By kind of unit: whether one may be claimable (see _claim)."""
        self._cards: dict[str, ToolCard] = {}
        self._store_misses = 0
        self.site = False
        """Whether the output folder holds a site (the run says): the run's refresh then writes
        the comparison pages with the pages that show them, once, when the run ends."""
        self.stopped: CostCeilingReached | None = None
        """Set when --max-cost stops the run: workers take nothing new."""

    def reopen_stale(self) -> None:
        """Before a run: put back jobs whose cards changed since their pages were written, and
        the units of open jobs this run would not reuse the answers of (another model, prompt
        version, mitigations, temperature or card content than the stored ones'), so every page
        shows answers of this run."""
        self.queue.reopen_stale_jobs()
        subjects: list[tuple[str, tuple[str, ...]]]
        subjects = [(REVIEW, (slug,)) for slug in self.queue.open_job_tools()]
        subjects += [(PAIR, pair) for pair in self.queue.open_pairwise_jobs()]
        reviewer = self.runtime.reviewer
        for kind, tools in subjects:
            cards, samples = self._cards_of(tools), self.queue.samples_of(kind, tools)
            asked = {
                p: self.runtime.questions(kind, cards, p, samples.get(p, 1)) for p in self.personas
            }
            complete = {
                p: all(len(reviewer.stored(q)) == q.samples for q in questions)
                for p, questions in asked.items()
            }
            # What "complete" was decided on goes along: another process may store an answer
            # between this look and the write, and add_units looks again inside its transaction.
            keys = {p: [reviewer.key(q) for q in questions] for p, questions in asked.items()}
            self.queue.add_units(kind, tools, complete, keys=keys)

    def plan(self) -> Plan:
        """Return the plan of the units left in the queue (the runtime's, as for a live run)."""
        questions: list[Question[Any]] = []
        for unit in self.queue.open_units():
            cards = tuple(self.runtime.tool(slug) for slug in unit.tools)
            if all(card is not None for card in cards):  # else it fails when claimed, with why
                known = tuple(card for card in cards if card is not None)
                questions += self.runtime.questions(unit.kind, known, unit.persona, unit.samples)
        return self.runtime.plan(questions)

    def _card(self, slug: str) -> ToolCard:
        if slug not in self._cards:
            card = self.runtime.tool(slug)
            if card is None:
                raise InputError("queued tool not in the store", tool=slug)
            self._cards[slug] = card
        return self._cards[slug]

    def _cards_of(self, tools: tuple[str, ...]) -> tuple[ToolCard, ...]:
        return tuple(self._card(slug) for slug in tools)

    async def _do_unit(self, unit: Unit) -> None:
        """Ask every sample of a unit not stored yet (every order of a pair); the last answer
        stores the unit as done in its transaction."""
        try:
            cards = self._cards_of(unit.tools)
            questions = self.runtime.questions(unit.kind, cards, unit.persona, unit.samples)
            if not questions:
                raise InputError("not a persona on this panel", persona=unit.persona)
            reviewer = self.runtime.reviewer
            calls = [call for q in questions for call in reviewer.plan(q).calls]
            if not calls:
                self.queue.finish(unit)
            for n, call in enumerate(calls):
                last = n == len(calls) - 1
                await reviewer.ask(call, partial(finish_in, unit=unit) if last else None)
        except CostCeilingReached as exc:  # not the unit's fault: it waits for a later run
            self.queue.release(unit, self.owner, str(exc), attempt=False)
            self.stopped = exc
            return
        except StoreUnavailable:  # not the unit's fault either: it is taken again once back
            await self._until_stored(
                partial(self.queue.release, unit, self.owner, "", attempt=False)
            )
            self._check[unit.kind] = True
            return
        except (ProviderError, InputError) as exc:
            self._unit_failed(unit, exc)
            return
        except Exception as exc:  # a bug, or an answer no check foresaw: this unit only
            log.exception("queue %s %s/%s", unit.kind, unit.label, unit.persona)
            self._unit_failed(
                unit, ProviderError(f"unexpected {exc.__class__.__name__}: {exc}"[:300])
            )
            return
        self.stats.settled(unit.kind, "done")
        if unit.kind == REVIEW:
            self.stats.tools.update(unit.tools)
        else:
            self.stats.pairs.add((unit.tools[0], unit.tools[1]))
        # jobs may be ready now, and after a review, pair judgments of its tool
        self._check_jobs = True
        self._check[PAIR] = self._check[PAIR] or unit.kind == REVIEW

    def _unit_failed(self, unit: Unit, exc: PanelError) -> None:
        """Put a failed unit back for another attempt, or fail it (and its jobs) for good."""
        if unit.attempts < self.max_attempts and not isinstance(exc, InputError):
            self.queue.release(unit, self.owner, str(exc))
            self._check[unit.kind] = True
            return
        exc.about(tool=unit.label, persona=unit.persona)
        what = "failed" if unit.kind == REVIEW else "pair judgment failed"
        job_error = located(
            f"{what} after {unit.attempts} attempt(s): {exc.message}",
            tool=unit.label,
            persona=unit.persona,
        )
        self.stats.settled(unit.kind, "failed", self.queue.fail(unit, str(exc), job_error))

    def _stored(self, kind: str, cards: tuple[ToolCard, ...]) -> list[Any]:
        """Return the answers of a kind about the cards (every sample their units ask for, one
        where none asks) that a run with these settings would reuse."""
        samples = self.queue.samples_of(kind, tuple(card.slug for card in cards))
        return [
            answer
            for key in self.personas
            for question in self.runtime.questions(kind, cards, key, samples.get(key, 1))
            for answer in self.runtime.reviewer.stored(question)
        ]

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
        return self._stored(REVIEW, (card,))

    async def _do_job(self, job: int, a: str, b: str) -> None:
        try:
            pair = (self._card(a), self._card(b))
            document = self.runtime.comparison(pair, self._reviews_of, self._stored(PAIR, pair))
            out = self.runtime.settings.out
            if self.site:  # the run's refresh renders it with the pages that show it
                files = page_paths(document, out)
            else:  # in a thread, so the event loop keeps dispatching calls
                files = await asyncio.to_thread(write_pages, document, out)
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
        self.stats.tools.update((a, b))
        self.stats.pairs.add((a, b))

    async def _worker(self) -> None:
        try:
            while self.stopped is None:
                try:
                    if not await self._step():
                        return
                    self._store_misses = 0
                except StoreUnavailable:  # claiming or polling met a restart: wait, look again
                    await self._store_back()
                    self._look_again()
        finally:
            # Done, or stopped by the ceiling: every idle worker must see it now, or it would
            # wait for news that no one is left to bring.
            await self._wake(None)

    async def _step(self) -> bool:
        """Do one unit, or wait for one; return False when nothing is left to do."""
        if (job := self._claim_job()) is not None:
            await self._wake(1)  # there may be more: the next idler looks
            await self._do_job(*job)
        elif (unit := self._claim(REVIEW) or self._claim(PAIR)) is not None:
            await self._wake(1)
            await self._do_unit(unit)
            await self._wake(1)  # a finished unit may make jobs (and pair judgments) ready
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

    def _look_again(self) -> None:
        """Take the next claims to the store (news from elsewhere: a poll, a restart)."""
        self._check_jobs = True
        self._check = dict.fromkeys(TABLES, True)

    def _claim(self, kind: str) -> Unit | None:
        """Claim a unit of a kind, unless none was claimable at the last look and nothing
        changed since that this process knows of (a unit it put back or finished, a poll: see
        _idle)."""
        if not self._check[kind]:
            return None
        unit = self.queue.claim(kind, self.owner, self.lease)
        self._check[kind] = unit is not None
        return unit

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
            self._look_again()
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._news.wait(), timeout=min(0.25, self.lease / 4))
            finally:
                self._polling = False

    async def run(self) -> RunStats:
        """Drain the queue; return what this process did. Interrupted (Ctrl-C cancels the run),
        it gives back what it holds, so other workers take it at once."""
        heartbeat = asyncio.create_task(heartbeat_loop(self.queue, self.owner, self.lease))
        interrupted = _on_interrupt(asyncio.current_task())
        try:
            await asyncio.gather(*(self._worker() for _ in range(self.concurrency)))
        except (asyncio.CancelledError, KeyboardInterrupt):
            with contextlib.suppress(StoreUnavailable):  # else its leases run out as a crash's
                self.queue.give_back(self.owner)
            if interrupted.is_set():
                raise KeyboardInterrupt from None  # the app's boundary: exit 130
            raise
        finally:
            heartbeat.cancel()
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
        return self.stats


def _on_interrupt(task: asyncio.Task[Any] | None) -> asyncio.Event:
    """Cancel task at SIGINT (Ctrl-C), whatever this process inherited for it; return the event
    set when it came. Cancelling ends every call in flight at once (a call is an await)."""
    interrupted = asyncio.Event()

    def cancel() -> None:
        interrupted.set()
        if task is not None:
            task.cancel()

    with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, cancel)
    return interrupted


async def heartbeat_loop(queue: QueueStore, owner: str, lease: float) -> None:
    """Renew owner's leases every third of a lease, until cancelled (a database that went away
    is asked again at the next beat)."""
    while True:
        await asyncio.sleep(lease / 3)
        with contextlib.suppress(StoreUnavailable):
            queue.heartbeat(owner, lease)
