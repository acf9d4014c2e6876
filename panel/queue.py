"""The batch queue: comparisons to generate (jobs) and the persona reviews they need (tasks).

Both live in the store. A job is one pair of tools; a task is one persona's review of one tool,
shared by every job that needs it, so M comparisons over N distinct tools cost at most 4·N model
calls, and none for a tool whose reviews are already stored.

Crash safety: a worker holds what it works on under a lease that a heartbeat renews; a unit held
by a dead worker (kill -9) comes back when its lease expires. Every state change is one
transaction, reviews are stored under a unique key, pages are written atomically. Several
`queue run` processes on one store share the work: claiming is an UPDATE inside BEGIN IMMEDIATE.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panel.cards import ToolCard
from panel.compare import comparison_for, resolve_tool, write_pages
from panel.errors import CardError, InputError, ProviderError
from panel.parsing import ParseError, load_json
from panel.personas import Persona
from panel.runtime import Runtime
from panel.store import Store, upsert_tool

LEASE_SECONDS = 30.0
_OPEN_BATCH_ITEMS = """SELECT i.tool, i.persona FROM batch_items i JOIN batches b ON b.id = i.batch
                       WHERE b.state = 'submitted' AND i.outcome IS NULL"""
STATES = ("pending", "running", "done", "failed")


# --- adding ------------------------------------------------------------------------------------


def read_pairs(path: Path, store: Store) -> list[tuple[ToolCard, ToolCard]]:
    """Read a CSV (`a,b` per line) or JSONL (`{"a": ..., "b": ...}`) file of pairs; validate all."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CardError(str(path), "no such file") from None
    except UnicodeDecodeError:
        raise CardError(str(path), "is not UTF-8 text") from None
    raw: list[tuple[int, str, str]] = []
    if path.suffix.lower() in (".jsonl", ".json"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = load_json(line)
            except ParseError as exc:
                raise CardError(f"{path}:{number}", f"not valid JSON ({exc})") from None
            if (
                not isinstance(record, dict)
                or not isinstance(record.get("a"), str)
                or not isinstance(record.get("b"), str)
            ):
                raise CardError(
                    f"{path}:{number}", 'each line must be {"a": ..., "b": ...} with two strings'
                )
            raw.append((number, record["a"], record["b"]))
    else:
        for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].startswith("#") or (number == 1 and cells == ["a", "b"]):
                continue
            if len(cells) != 2 or not all(cells):
                raise CardError(f"{path}:{number}", "each line must be two tools: a,b")
            raw.append((number, cells[0], cells[1]))
    if not raw:
        raise CardError(str(path), "no pairs in file")
    cards: dict[str, ToolCard] = {}
    pairs = []
    for number, a, b in raw:
        pair = []
        for ref in (a, b):
            # A relative card path is read from the working directory, else beside the queue file.
            candidate = (
                ref
                if Path(ref).exists() or not (path.parent / ref).exists()
                else str(path.parent / ref)
            )
            try:
                card = cards.get(ref) or resolve_tool(candidate, store)
            except InputError as exc:
                raise CardError(f"{path}:{number}", str(exc)) from None
            cards[ref] = card
            pair.append(card)
        if pair[0].slug == pair[1].slug:
            raise CardError(f"{path}:{number}", f"both sides are {pair[0].slug}")
        pairs.append((pair[0], pair[1]))
    slugs: dict[str, ToolCard] = {}
    for card in cards.values():
        if card.slug in slugs and slugs[card.slug] != card:
            raise CardError(str(path), f"two different cards share the slug '{card.slug}'", "slug")
        slugs[card.slug] = card
    return pairs


@dataclass
class Added:
    jobs: int = 0
    already: int = 0
    tools: int = 0
    tasks: int = 0


def add_pairs(
    store: Store, personas: list[Persona], pairs: list[tuple[ToolCard, ToolCard]]
) -> Added:
    """Queue every pair not queued or done yet, and the review tasks they need (one transaction)."""
    added = Added()
    now = time.time()
    tools = {card.slug: card for pair in pairs for card in pair}
    with store.transaction() as db:
        for card in tools.values():
            upsert_tool(db, card)
        for a, b in pairs:
            cursor = db.execute(
                """INSERT INTO jobs (a, b, state, created_at, updated_at) VALUES (?, ?, 'pending', ?, ?)
                   ON CONFLICT (a, b) DO NOTHING""",
                (a.slug, b.slug, now, now),
            )
            if cursor.rowcount:
                added.jobs += 1
            else:
                added.already += 1
    for slug in tools:
        reviewed = set(store.latest_reviews(slug))
        with store.transaction() as db:
            for persona in personas:
                state = "done" if persona.key in reviewed else "pending"
                cursor = db.execute(
                    """INSERT INTO tasks (tool, persona, state, updated_at) VALUES (?, ?, ?, ?)
                       ON CONFLICT (tool, persona) DO UPDATE SET state = excluded.state, attempts = 0,
                           last_error = NULL, updated_at = excluded.updated_at
                       WHERE tasks.state = 'done' AND excluded.state = 'pending'""",
                    (slug, persona.key, state, now),
                )
                added.tasks += cursor.rowcount if state == "pending" else 0
    added.tools = len(tools)
    return added


# --- status ------------------------------------------------------------------------------------


def status(store: Store) -> dict[str, Any]:
    """Return counts of jobs and tasks by state and the failed jobs with their errors."""

    def counts(table: str) -> dict[str, int]:
        rows = store.db.execute(f"SELECT state, count(*) FROM {table} GROUP BY state").fetchall()
        found = {row[0]: row[1] for row in rows}
        return {state: found.get(state, 0) for state in STATES}

    failed = store.db.execute(
        "SELECT id, a, b, attempts, last_error FROM jobs WHERE state = 'failed' ORDER BY id"
    ).fetchall()
    jobs = store.db.execute(
        "SELECT id, a, b, state, attempts, last_error, files FROM jobs ORDER BY id"
    ).fetchall()
    waiting = store.db.execute(f"SELECT count(*) FROM ({_OPEN_BATCH_ITEMS})").fetchone()[0]
    return {
        "jobs": counts("jobs"),
        "tasks": counts("tasks"),
        "in_open_batches": waiting,
        "failed": [dict(row) for row in failed],
        "all": [
            {**dict(row), "files": json.loads(row["files"]) if row["files"] else None}
            for row in jobs
        ],
    }


def retry_failed(store: Store) -> int:
    """Put failed jobs and tasks back in the queue; return how many jobs."""
    now = time.time()
    with store.transaction() as db:
        db.execute(
            "UPDATE tasks SET state = 'pending', attempts = 0, last_error = NULL, updated_at = ? WHERE state = 'failed'",
            (now,),
        )
        return db.execute(
            "UPDATE jobs SET state = 'pending', attempts = 0, last_error = NULL, updated_at = ? WHERE state = 'failed'",
            (now,),
        ).rowcount


# --- running -----------------------------------------------------------------------------------


@dataclass
class RunStats:
    jobs_done: int = 0
    jobs_failed: int = 0
    tasks_done: int = 0
    tasks_failed: int = 0
    started: float = field(default_factory=time.monotonic)


class QueueRunner:
    """Workers that drain the queue of one store; see the module docstring."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        concurrency: int,
        max_attempts: int = 3,
        lease: float = LEASE_SECONDS,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.lease = lease
        self.on_change = on_change or (lambda: None)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stats = RunStats()
        self.personas = {p.key: p for p in runtime.personas}
        self._news = asyncio.Condition()
        self._cards: dict[str, ToolCard] = {}

    # claiming: one UPDATE ... RETURNING inside BEGIN IMMEDIATE, so two processes never share a unit

    def _claim_job(self) -> tuple[int, str, str] | None:
        now = time.time()
        with self.store.transaction() as db:
            row = db.execute(
                """UPDATE jobs SET state = 'running', lease_owner = ?, lease_expires = ?,
                       attempts = attempts + 1, updated_at = ?
                   WHERE id = (
                       SELECT j.id FROM jobs j
                       WHERE (j.state = 'pending' OR (j.state = 'running' AND j.lease_expires < ?))
                         AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.tool IN (j.a, j.b) AND t.state != 'done')
                       ORDER BY j.id LIMIT 1)
                   RETURNING id, a, b""",
                (self.owner, now + self.lease, now, now),
            ).fetchone()
        return (row["id"], row["a"], row["b"]) if row else None

    def _claim_task(self) -> tuple[str, str, int] | None:
        now = time.time()
        with self.store.transaction() as db:
            row = db.execute(
                f"""UPDATE tasks SET state = 'running', lease_owner = ?, lease_expires = ?,
                       attempts = attempts + 1, updated_at = ?
                   WHERE rowid = (
                       SELECT rowid FROM tasks t
                       WHERE (state = 'pending' OR (state = 'running' AND lease_expires < ?))
                         -- a review asked of a provider batch still open is answered by it
                         AND NOT EXISTS (SELECT 1 FROM ({_OPEN_BATCH_ITEMS}) o
                                         WHERE o.tool = t.tool AND o.persona = t.persona)
                       ORDER BY rowid LIMIT 1)
                   RETURNING tool, persona, attempts""",
                (self.owner, now + self.lease, now, now),
            ).fetchone()
        return (row["tool"], row["persona"], row["attempts"]) if row else None

    def _work_left(self) -> bool:
        """Return whether anything is left that this runner could do or wait for.

        Reviews waiting in an open provider batch (and the jobs that need them) are left to
        `queue run --batch-api`, which collects them.
        """
        row = self.store.db.execute(
            f"""WITH open_items AS ({_OPEN_BATCH_ITEMS})
               SELECT (SELECT count(*) FROM tasks t WHERE state IN ('pending', 'running')
                         AND NOT EXISTS (SELECT 1 FROM open_items o WHERE o.tool = t.tool AND o.persona = t.persona))
                    + (SELECT count(*) FROM jobs j WHERE state IN ('pending', 'running')
                         AND NOT EXISTS (SELECT 1 FROM open_items o WHERE o.tool IN (j.a, j.b)))"""
        ).fetchone()
        return bool(row[0])

    def _card(self, slug: str) -> ToolCard:
        if slug not in self._cards:
            card = self.store.get_tool(slug)
            if card is None:
                raise InputError(f"queued tool '{slug}' is not in the store")
            self._cards[slug] = card
        return self._cards[slug]

    async def _do_task(self, tool: str, persona_key: str, attempts: int) -> None:
        persona = self.personas.get(persona_key)
        try:
            if persona is None:
                raise InputError(f"persona '{persona_key}' is not on this panel")
            await self.runtime.reviewer.review(self._card(tool), persona)
        except (ProviderError, InputError) as exc:
            final = attempts >= self.max_attempts or isinstance(exc, InputError)
            with self.store.transaction() as db:
                db.execute(
                    """UPDATE tasks SET state = ?, last_error = ?, lease_owner = NULL, updated_at = ?
                       WHERE tool = ? AND persona = ? AND lease_owner = ?""",
                    (
                        "failed" if final else "pending",
                        str(exc),
                        time.time(),
                        tool,
                        persona_key,
                        self.owner,
                    ),
                )
                if final:
                    error = f"review of {tool} by {persona_key} failed after {attempts} attempt(s): {exc}"
                    failed = db.execute(
                        """UPDATE jobs SET state = 'failed', last_error = ?, updated_at = ?
                           WHERE state IN ('pending', 'running') AND (a = ? OR b = ?)""",
                        (error, time.time(), tool, tool),
                    ).rowcount
                    self.stats.jobs_failed += failed
            self.stats.tasks_failed += int(final)
            return
        with self.store.transaction() as db:
            db.execute(
                """UPDATE tasks SET state = 'done', last_error = NULL, lease_owner = NULL, updated_at = ?
                   WHERE tool = ? AND persona = ?""",
                (time.time(), tool, persona_key),
            )
        self.stats.tasks_done += 1

    async def _do_job(self, job: int, a: str, b: str) -> None:
        try:
            document = comparison_for(
                self.store, self.runtime.personas, (self._card(a), self._card(b))
            )
            # Rendering and writing run in a thread so the event loop keeps dispatching calls.
            files = await asyncio.to_thread(write_pages, document, self.runtime.settings.out)
            self.store.save_comparison(a, b)
        except (OSError, InputError) as exc:
            with self.store.transaction() as db:
                db.execute(
                    """UPDATE jobs SET state = CASE WHEN attempts >= ? THEN 'failed' ELSE 'pending' END,
                           last_error = ?, lease_owner = NULL, updated_at = ? WHERE id = ?""",
                    (self.max_attempts, str(exc), time.time(), job),
                )
            return
        with self.store.transaction() as db:
            db.execute(
                """UPDATE jobs SET state = 'done', last_error = NULL, lease_owner = NULL, files = ?,
                       updated_at = ? WHERE id = ?""",
                (json.dumps({k: str(v) for k, v in files.items()}), time.time(), job),
            )
        self.stats.jobs_done += 1

    async def _worker(self) -> None:
        while True:
            if (job := self._claim_job()) is not None:
                await self._do_job(*job)
            elif (task := self._claim_task()) is not None:
                await self._do_task(*task)
                async with self._news:  # a finished review may make jobs ready: wake one idler
                    self._news.notify(1)
            elif self._work_left():
                # Units are in flight here or in another process: wait for news, or poll
                # (a unit held by a dead process comes back when its lease expires).
                async with self._news:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._news.wait(), timeout=min(0.25, self.lease / 4))
                continue
            else:
                # Nothing left: let idle workers see it now rather than at their next poll.
                async with self._news:
                    self._news.notify_all()
                return
            self.on_change()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            expires = time.time() + self.lease
            with self.store.transaction() as db:
                for table in ("jobs", "tasks"):
                    db.execute(
                        f"UPDATE {table} SET lease_expires = ? WHERE lease_owner = ? AND state = 'running'",
                        (expires, self.owner),
                    )

    async def run(self) -> RunStats:
        """Drain the queue; return what this process did."""
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            await asyncio.gather(*(self._worker() for _ in range(self.concurrency)))
        finally:
            heartbeat.cancel()
        return self.stats
