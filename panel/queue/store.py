"""Every SQL statement of the queue, behind two small interfaces: QueueStore (jobs, review
tasks and pair tasks) and BatchStore (provider batches, for `queue run --batch-api` only).

A pair task is one persona's judgment of a queued pair (`queue add --pairwise`), both orders and
every sample: claimable once every review task of its two tools is done; a job that judges its
pair is ready once its pair tasks are done too.

The runner, the batcher and `queue add / status / retry` speak only to these; a second storage
backend implements their methods and nothing else of the queue changes.

Every statement serves both engines (SQLite and PostgreSQL, see panel.store.sql). Claiming is
one UPDATE ... RETURNING of rows picked by a SELECT that skips rows other workers hold locked
(PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite's IMMEDIATE transaction lets one writer in at a
time), so any number of processes on any number of machines never claim the same unit. A
claimed unit carries its owner and a lease; `heartbeat` renews the leases of an owner, and a
unit whose lease ran out (its worker died) is claimable again. Leases are set and compared on
the database's clock (Dialect.now), never a worker's: machines whose clocks disagree still
agree on when a lease ends.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panel.cards import ToolCard
from panel.store import (
    CallRecord,
    Store,
    StoredPair,
    StoredReview,
    insert_call,
    insert_comparison,
    insert_pair,
    insert_review,
    upsert_tool,
)
from panel.store.sql import Connection

STATES = ("pending", "running", "done", "failed")

_OPEN_BATCH_ITEMS = """SELECT i.tool, i.persona FROM batch_items i JOIN batches b ON b.id = i.batch
                       WHERE b.state = 'submitted' AND i.outcome IS NULL
                         AND i.second_tool IS NULL"""
"""The reviews an open provider batch still owes: left to `queue run --batch-api`."""

_OPEN_PAIR_ITEMS = """SELECT i.tool, i.second_tool, i.persona FROM batch_items i
                      JOIN batches b ON b.id = i.batch
                      WHERE b.state = 'submitted' AND i.outcome IS NULL
                        AND i.second_tool IS NOT NULL"""
"""The pair judgments (either order) an open provider batch still owes."""

_IN_OPEN_BATCH = f"""EXISTS (SELECT 1 FROM ({_OPEN_PAIR_ITEMS}) o WHERE o.persona = p.persona
                       AND ((o.tool = p.a AND o.second_tool = p.b)
                            OR (o.tool = p.b AND o.second_tool = p.a)))"""
"""Whether pair task `p` waits in an open provider batch."""

_READY_PAIR = """SELECT a, b, persona FROM pair_tasks p
                  WHERE (state = 'pending' OR (state = 'running' AND lease_expires < {now}))
                    AND NOT EXISTS (SELECT 1 FROM tasks t
                                    WHERE t.tool IN (p.a, p.b) AND t.state != 'done')
                    AND NOT {in_open_batch}
                  ORDER BY a, b, persona LIMIT ?"""
"""Pair tasks free to claim whose tools are reviewed ({now}: the database's clock; takes a
limit)."""

_READY_JOB = """SELECT j.id FROM jobs j
                WHERE (j.state = 'pending' OR (j.state = 'running' AND j.lease_expires < {now}))
                  AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.tool IN (j.a, j.b) AND t.state != 'done')
                  AND NOT EXISTS (SELECT 1 FROM pair_tasks p
                                  WHERE p.a = j.a AND p.b = j.b AND p.state != 'done')
                ORDER BY j.id LIMIT 1"""
"""The next job free to claim whose reviews (and pair judgments) are all done ({now}: the
database's clock)."""


@dataclass(frozen=True)
class ReviewKey:
    """What makes a stored review the one a task asks for: the card's content, and (when a run
    knows them) the prompt version, provider and model. None matches any."""

    card_hash: str
    prompt_version: str | None = None
    provider: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class BatchItem:
    """One request of a provider batch: which review it asks for, and how it was asked."""

    custom_id: str
    tool: str
    persona: str
    model: str
    prompt_version: str
    prompt_hash: str
    card_hash: str
    sample: int = 0
    """Which sample of the review it asks for (queue add --samples N: 0 to N-1)."""
    mitigations: str = ""
    """The mitigations that shaped its prompt, as the store spells them (see mitigations_key)."""
    temperature: float = 0.0
    outcome: str | None = None
    """None until ingested; then ok, invalid, refusal or error."""
    second_tool: str | None = None
    """A pair judgment's card shown second (`tool` is shown first); None for a review."""
    second_hash: str | None = None


BATCH_ITEM_COLUMNS = (
    "custom_id",
    "tool",
    "persona",
    "model",
    "prompt_version",
    "prompt_hash",
    "card_hash",
    "sample",
    "second_tool",
    "second_hash",
    "mitigations",
    "temperature",
)
"""What a submitted item records (its outcome comes at ingestion)."""


@dataclass(frozen=True)
class HeldBatch:
    """A submitted batch held under this process's lease."""

    row: int
    provider: str
    batch_id: str
    created_at: float


@dataclass(frozen=True)
class Progress:
    """What the queue's progress bar shows: jobs by outcome, and the calls made since a moment."""

    done: int
    failed: int
    total: int
    calls: int
    tokens: int


class _Tables:
    """What the queue's two interfaces share: the store, and the claiming of review tasks."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.store.db.execute(sql, params).fetchone()

    @property
    def _skip_locked(self) -> str:
        return self.store.db.dialect.skip_locked

    @property
    def _now(self) -> str:
        """The database's clock, in seconds since the epoch: what leases are timed on."""
        return self.store.db.dialect.now

    def _claim_tasks(self, owner: str, lease: float, limit: int) -> list[Any]:
        with self.store.transaction() as db:
            return db.execute(
                f"""UPDATE tasks SET state = 'running', lease_owner = ?,
                       lease_expires = {self._now} + ?, attempts = attempts + 1, updated_at = ?
                   WHERE (tool, persona) IN (
                       SELECT tool, persona FROM tasks t
                       WHERE (state = 'pending' OR (state = 'running' AND lease_expires < {self._now}))
                         -- a review asked of a provider batch still open is answered by it
                         AND NOT EXISTS (SELECT 1 FROM ({_OPEN_BATCH_ITEMS}) o
                                         WHERE o.tool = t.tool AND o.persona = t.persona)
                       ORDER BY tool, persona LIMIT ?{self._skip_locked})
                   RETURNING tool, persona, attempts, samples""",
                (owner, lease, time.time(), limit),
            ).fetchall()

    def _claim_pairs(self, owner: str, lease: float, limit: int) -> list[Any]:
        ready = _READY_PAIR.format(now=self._now, in_open_batch=_IN_OPEN_BATCH)
        with self.store.transaction() as db:
            return db.execute(
                f"""UPDATE pair_tasks SET state = 'running', lease_owner = ?,
                       lease_expires = {self._now} + ?, attempts = attempts + 1, updated_at = ?
                   WHERE (a, b, persona) IN ({ready}{self._skip_locked})
                   RETURNING a, b, persona, attempts, samples""",
                (owner, lease, time.time(), limit),
            ).fetchall()


class QueueStore(_Tables):
    """The queue's jobs (comparisons) and tasks (persona reviews) in a store."""

    # --- adding --------------------------------------------------------------------------------

    def add_jobs(
        self, pairs: list[tuple[ToolCard, ToolCard]], pairwise: bool = False
    ) -> tuple[int, int]:
        """Store the pairs' cards and queue every pair not queued yet; return (added, already).
        With pairwise, every job of the pairs judges its pair (a done job queued again so is
        pending again)."""
        now = time.time()
        added = already = 0
        with self.store.transaction() as db:
            for card in {card.slug: card for pair in pairs for card in pair}.values():
                upsert_tool(db, card)
            for a, b in pairs:
                cursor = db.execute(
                    """INSERT INTO jobs (a, b, state, pairwise, created_at, updated_at)
                       VALUES (?, ?, 'pending', ?, ?, ?) ON CONFLICT (a, b) DO NOTHING""",
                    (a.slug, b.slug, int(pairwise), now, now),
                )
                added += cursor.rowcount
                already += 1 - cursor.rowcount
                if pairwise and not cursor.rowcount:
                    db.execute(
                        """UPDATE jobs SET pairwise = 1, state = CASE WHEN state = 'done'
                               THEN 'pending' ELSE state END, updated_at = ?
                           WHERE a = ? AND b = ? AND pairwise = 0""",
                        (now, a.slug, b.slug),
                    )
        return added, already

    def add_pair_tasks(
        self, pair: tuple[str, str], personas: dict[str, bool], samples: int | None = None
    ) -> int:
        """Queue a pair task per persona (True: already judged, so done); return how many are
        new work. As add_tasks: a done task whose judgment is missing now is pending again."""
        now = time.time()
        pending = 0
        with self.store.transaction() as db:
            for persona, judged in personas.items():
                cursor = db.execute(
                    """INSERT INTO pair_tasks (a, b, persona, state, samples, updated_at)
                       VALUES (?, ?, ?, ?, ?, ?)
                       ON CONFLICT (a, b, persona) DO UPDATE SET state = excluded.state,
                           attempts = 0, last_error = NULL, updated_at = excluded.updated_at
                       WHERE pair_tasks.state = 'done' AND excluded.state = 'pending'""",
                    (*pair, persona, "done" if judged else "pending", samples or 1, now),
                )
                pending += cursor.rowcount if not judged else 0
                if samples is not None:
                    db.execute(
                        """UPDATE pair_tasks SET samples = ?
                           WHERE a = ? AND b = ? AND persona = ? AND state != 'done'""",
                        (samples, *pair, persona),
                    )
        return pending

    def pair_task_samples(self, pair: tuple[str, str]) -> dict[str, int]:
        """Return how many samples each persona's pair task of a job's pair asks for ({} for a
        job that does not judge its pair)."""
        rows = self.store.db.execute(
            "SELECT persona, samples FROM pair_tasks WHERE a = ? AND b = ?", pair
        ).fetchall()
        return {row["persona"]: int(row["samples"]) for row in rows}

    def open_pair_tasks(self) -> list[tuple[str, str, str, int]]:
        """Return (a, b, persona, samples) of every pair judgment not done or failed yet."""
        rows = self.store.db.execute(
            """SELECT a, b, persona, samples FROM pair_tasks
               WHERE state IN ('pending', 'running') ORDER BY a, b, persona"""
        ).fetchall()
        return [(row["a"], row["b"], row["persona"], int(row["samples"])) for row in rows]

    def open_pairwise_jobs(self) -> list[tuple[str, str]]:
        """Return the pair of every job not done or failed yet that judges its pair."""
        rows = self.store.db.execute(
            """SELECT a, b FROM jobs WHERE state IN ('pending', 'running') AND pairwise = 1
               ORDER BY a, b"""
        ).fetchall()
        return [(row["a"], row["b"]) for row in rows]

    def add_tasks(
        self,
        tool: str,
        personas: dict[str, bool],
        samples: int | None = None,
        keys: dict[str, ReviewKey] | None = None,
    ) -> int:
        """Queue a task per persona (True: already reviewed, so done); return how many are new work.

        A done task whose review is missing now (the card changed) is pending again, but only
        if, inside this transaction, its review (by `keys`, the review key this persona's task
        asks for) is still missing: the caller looked before, and another process may have
        stored the review and finished the task since (a check-then-act across processes). A
        task asks for `samples` answers (None: as many as it asked before, 1 for a new one).
        """
        now = time.time()
        pending = 0
        with self.store.transaction() as db:
            for persona, reviewed in personas.items():
                state = "done" if reviewed else "pending"
                cursor = db.execute(
                    """INSERT INTO tasks (tool, persona, state, samples, updated_at)
                       VALUES (?, ?, ?, ?, ?) ON CONFLICT (tool, persona) DO NOTHING""",
                    (tool, persona, state, samples or 1, now),
                )
                if cursor.rowcount:
                    pending += 0 if reviewed else 1
                elif not reviewed:
                    key = (keys or {}).get(persona)
                    pending += self._reopen_task(db, tool, persona, key, samples, now)
                if samples is not None:
                    db.execute(
                        "UPDATE tasks SET samples = ? WHERE tool = ? AND persona = ? AND state != 'done'",
                        (samples, tool, persona),
                    )
        return pending

    def _reopen_task(
        self,
        db: Connection,
        tool: str,
        persona: str,
        key: ReviewKey | None,
        samples: int | None,
        now: float,
    ) -> int:
        """Put a done task back to pending if its review is still missing; return 1 if it was.

        The task's row is locked first (PostgreSQL: FOR UPDATE; SQLite's IMMEDIATE transaction
        holds every row), so a worker storing the review waits for this transaction or has
        committed before it, and the check that follows (a statement of its own, so it sees
        that commit) decides on what is stored now.
        """
        row = db.execute(
            f"""SELECT state, samples FROM tasks WHERE tool = ? AND persona = ?
                {self.store.db.dialect.for_update}""",
            (tool, persona),
        ).fetchone()
        if row is None or row["state"] != "done":
            return 0
        wanted = samples or int(row["samples"])
        if key is not None and self._stored_samples(db, persona, key, wanted) >= wanted:
            return 0
        db.execute(
            """UPDATE tasks SET state = 'pending', attempts = 0, last_error = NULL, updated_at = ?
               WHERE tool = ? AND persona = ? AND state = 'done'""",
            (now, tool, persona),
        )
        return 1

    @staticmethod
    def _stored_samples(db: Connection, persona: str, key: ReviewKey, samples: int) -> int:
        """Return how many of the samples below `samples` of a review are stored under key."""
        known = {
            column: value
            for column, value in (
                ("prompt_version", key.prompt_version),
                ("provider", key.provider),
                ("model", key.model),
            )
            if value is not None
        }
        row = db.execute(
            f"""SELECT count(DISTINCT sample) FROM reviews
                WHERE card_hash = ? AND persona = ? AND sample < ?
                {"".join(f" AND {column} = ?" for column in known)}""",
            (key.card_hash, persona, samples, *known.values()),
        ).fetchone()
        return int(row[0])

    def task_samples(self, tool: str) -> dict[str, int]:
        """Return how many samples each persona's task of tool asks for."""
        rows = self.store.db.execute(
            "SELECT persona, samples FROM tasks WHERE tool = ?", (tool,)
        ).fetchall()
        return {row["persona"]: int(row["samples"]) for row in rows}

    def open_tasks(self) -> list[tuple[str, str, int]]:
        """Return (tool, persona, samples) of every review not done or failed yet."""
        rows = self.store.db.execute(
            """SELECT tool, persona, samples FROM tasks WHERE state IN ('pending', 'running')
               ORDER BY tool, persona"""
        ).fetchall()
        return [(row["tool"], row["persona"], int(row["samples"])) for row in rows]

    def reopen_stale_jobs(self) -> int:
        """Put back every done job a tool of which changed after the job wrote its pages (the
        card was edited and stored again); return how many."""
        with self.store.transaction() as db:
            return int(
                db.execute(
                    """UPDATE jobs SET state = 'pending', attempts = 0, last_error = NULL,
                           updated_at = ?
                       WHERE state = 'done' AND EXISTS (SELECT 1 FROM tools t
                           WHERE t.slug IN (jobs.a, jobs.b) AND t.updated_at > jobs.updated_at)""",
                    (time.time(),),
                ).rowcount
            )

    def open_job_tools(self) -> list[str]:
        """Return the tools of every job not done or failed yet."""
        rows = self.store.db.execute(
            """SELECT a FROM jobs WHERE state IN ('pending', 'running')
               UNION SELECT b FROM jobs WHERE state IN ('pending', 'running') ORDER BY 1"""
        ).fetchall()
        return [row[0] for row in rows]

    def waiting_tools(self) -> int:
        """Return how many tools have reviews or comparisons waiting in the queue (not done
        or failed yet): what `panel serve` caps card submissions by."""
        return int(
            self._one(
                """SELECT count(*) FROM (
                       SELECT tool FROM tasks WHERE state IN ('pending', 'running')
                       UNION SELECT a FROM jobs WHERE state IN ('pending', 'running')
                       UNION SELECT b FROM jobs WHERE state IN ('pending', 'running')) w"""
            )[0]
        )

    # --- claiming ------------------------------------------------------------------------------

    def claim_job(self, owner: str, lease: float) -> tuple[int, str, str] | None:
        """Claim the next job whose reviews are all done; return (id, a, b).

        A plain read looks first: most attempts find nothing ready, and a read takes no lock.
        """
        ready = _READY_JOB.format(now=self._now)
        if self._one(ready) is None:
            return None
        with self.store.transaction() as db:
            row = db.execute(
                f"""UPDATE jobs SET state = 'running', lease_owner = ?,
                       lease_expires = {self._now} + ?, attempts = attempts + 1, updated_at = ?
                   WHERE id = ({ready}{self._skip_locked})
                   RETURNING id, a, b""",
                (owner, lease, time.time()),
            ).fetchone()
        return (row["id"], row["a"], row["b"]) if row else None

    def claim_pair_task(self, owner: str, lease: float) -> tuple[str, str, str, int, int] | None:
        """Claim the next pair judgment whose tools are reviewed; return (a, b, persona,
        attempts, samples)."""
        rows = self._claim_pairs(owner, lease, 1)
        if not rows:
            return None
        row = rows[0]
        return row["a"], row["b"], row["persona"], row["attempts"], row["samples"]

    def claim_task(self, owner: str, lease: float) -> tuple[str, str, int, int] | None:
        """Claim the next review no open batch asks for; return (tool, persona, attempts,
        samples)."""
        rows = self._claim_tasks(owner, lease, 1)
        if not rows:
            return None
        return rows[0]["tool"], rows[0]["persona"], rows[0]["attempts"], rows[0]["samples"]

    def heartbeat(self, owner: str, lease: float) -> None:
        """Renew the lease of everything owner holds."""
        with self.store.transaction() as db:
            for table, state in (
                ("jobs", "running"),
                ("tasks", "running"),
                ("pair_tasks", "running"),
                ("batches", "submitted"),
            ):
                db.execute(
                    f"""UPDATE {table} SET lease_expires = {self._now} + ?
                        WHERE lease_owner = ? AND state = ?""",
                    (lease, owner, state),
                )

    def work_left(self) -> bool:
        """Return whether any job or review is pending or running outside an open provider batch.

        Reviews waiting in an open batch (and the jobs that need them) are left to
        `queue run --batch-api`, which collects them.
        """
        row = self._one(
            f"""WITH open_items AS ({_OPEN_BATCH_ITEMS})
               SELECT (SELECT count(*) FROM tasks t WHERE state IN ('pending', 'running')
                         AND NOT EXISTS (SELECT 1 FROM open_items o WHERE o.tool = t.tool AND o.persona = t.persona))
                    + (SELECT count(*) FROM jobs j WHERE state IN ('pending', 'running')
                         AND NOT EXISTS (SELECT 1 FROM open_items o WHERE o.tool IN (j.a, j.b)))
                    + (SELECT count(*) FROM pair_tasks p WHERE state IN ('pending', 'running')
                         AND NOT {_IN_OPEN_BATCH}
                         AND EXISTS (SELECT 1 FROM jobs j WHERE j.a = p.a AND j.b = p.b
                                     AND j.state IN ('pending', 'running')))"""
        )
        return bool(row[0])

    # --- settling ------------------------------------------------------------------------------

    def finish_task(self, tool: str, persona: str) -> None:
        with self.store.transaction() as db:
            finish_task_in(db, tool, persona)

    def fail_task(self, tool: str, persona: str, error: str, job_error: str) -> int:
        """Fail a review for good, and every unfinished job that needs it; return those jobs."""
        with self.store.transaction() as db:
            return _fail_task(db, tool, persona, error, job_error)

    def finish_pair_task(self, pair: tuple[str, str], persona: str) -> None:
        with self.store.transaction() as db:
            finish_pair_task_in(db, pair, persona)

    def fail_pair_task(
        self, pair: tuple[str, str], persona: str, error: str, job_error: str
    ) -> int:
        """Fail a pair judgment for good, and its unfinished job; return how many jobs."""
        with self.store.transaction() as db:
            return _fail_pair_task(db, pair, persona, error, job_error)

    def release_pair_task(
        self, pair: tuple[str, str], persona: str, owner: str, error: str, *, attempt: bool = True
    ) -> None:
        """Put a pair judgment owner holds back in the queue (as release_task does a review)."""
        with self.store.transaction() as db:
            db.execute(
                """UPDATE pair_tasks SET state = 'pending', last_error = ?, lease_owner = NULL,
                       attempts = attempts - ?, updated_at = ?
                   WHERE a = ? AND b = ? AND persona = ? AND lease_owner = ?""",
                (
                    error if attempt else None,
                    0 if attempt else 1,
                    time.time(),
                    *pair,
                    persona,
                    owner,
                ),
            )

    def release_task(
        self, tool: str, persona: str, owner: str, error: str, *, attempt: bool = True
    ) -> None:
        """Put a review owner holds back in the queue after a failure worth another attempt;
        with attempt False (a cost ceiling stopped it) the try is not counted and no error kept."""
        with self.store.transaction() as db:
            db.execute(
                """UPDATE tasks SET state = 'pending', last_error = ?, lease_owner = NULL,
                       attempts = attempts - ?, updated_at = ?
                   WHERE tool = ? AND persona = ? AND lease_owner = ?""",
                (
                    error if attempt else None,
                    0 if attempt else 1,
                    time.time(),
                    tool,
                    persona,
                    owner,
                ),
            )

    def finish_job(self, job: int, a: str, b: str, files: dict[str, Path]) -> None:
        """Mark a job done with the files written, and record its comparison, in one transaction."""
        with self.store.transaction() as db:
            insert_comparison(db, a, b)
            db.execute(
                """UPDATE jobs SET state = 'done', last_error = NULL, lease_owner = NULL, files = ?,
                       updated_at = ? WHERE id = ?""",
                (json.dumps({k: str(v) for k, v in files.items()}), time.time(), job),
            )

    def release_job(self, job: int, error: str, max_attempts: int) -> None:
        """Put a job back after a failure, or fail it once it has had max_attempts."""
        with self.store.transaction() as db:
            db.execute(
                """UPDATE jobs SET state = CASE WHEN attempts >= ? THEN 'failed' ELSE 'pending' END,
                       last_error = ?, lease_owner = NULL, updated_at = ? WHERE id = ?""",
                (max_attempts, error, time.time(), job),
            )

    # --- reporting -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Return counts of jobs and tasks by state, every job, and the failed ones with errors."""

        def counts(table: str) -> dict[str, int]:
            rows = self.store.db.execute(
                f"SELECT state, count(*) FROM {table} GROUP BY state"
            ).fetchall()
            found = {row[0]: row[1] for row in rows}
            return {state: found.get(state, 0) for state in STATES}

        jobs = self.store.db.execute(
            "SELECT id, a, b, state, attempts, last_error, files FROM jobs ORDER BY id"
        ).fetchall()
        return {
            "jobs": counts("jobs"),
            "tasks": counts("tasks"),
            "pair_tasks": counts("pair_tasks"),
            "in_open_batches": self._one(f"SELECT count(*) FROM ({_OPEN_BATCH_ITEMS}) o")[0],
            "pauses": self.store.pauses(),
            "failed": [
                {k: row[k] for k in ("id", "a", "b", "attempts", "last_error")}
                for row in jobs
                if row["state"] == "failed"
            ],
            "all": [
                {**dict(row), "files": json.loads(row["files"]) if row["files"] else None}
                for row in jobs
            ],
        }

    def progress(self, since: float) -> Progress:
        """Return the jobs by outcome and the calls logged (and their tokens) since a moment."""
        calls, tokens = self._one(
            """SELECT count(*), coalesce(sum(input_tokens + output_tokens), 0) FROM calls
               WHERE at >= ?""",
            (since,),
        )
        done, failed, total = self._one(
            """SELECT count(*) FILTER (WHERE state = 'done'),
                      count(*) FILTER (WHERE state = 'failed'), count(*) FROM jobs"""
        )
        return Progress(int(done), int(failed), int(total), int(calls), int(tokens))

    def retry_failed(self) -> int:
        """Put failed jobs and tasks back in the queue; return how many jobs."""
        now = time.time()
        with self.store.transaction() as db:
            for table in ("tasks", "pair_tasks"):
                db.execute(
                    f"""UPDATE {table} SET state = 'pending', attempts = 0, last_error = NULL,
                           updated_at = ? WHERE state = 'failed'""",
                    (now,),
                )
            return int(
                db.execute(
                    """UPDATE jobs SET state = 'pending', attempts = 0, last_error = NULL,
                           updated_at = ? WHERE state = 'failed'""",
                    (now,),
                ).rowcount
            )


class BatchStore(_Tables):
    """The provider batches of `queue run --batch-api`: what was submitted, held and ingested."""

    def claim_tasks(self, owner: str, lease: float, limit: int) -> list[tuple[str, str]]:
        """Claim up to limit reviews no open batch asks for; return (tool, persona), sorted."""
        return sorted(
            (row["tool"], row["persona"]) for row in self._claim_tasks(owner, lease, limit)
        )

    def claim_pair_tasks(self, owner: str, lease: float, limit: int) -> list[tuple[str, str, str]]:
        """Claim up to limit pair judgments whose tools are reviewed and that no open batch asks
        for; return (a, b, persona), sorted."""
        rows = self._claim_pairs(owner, lease, limit)
        return sorted((row["a"], row["b"], row["persona"]) for row in rows)

    def save_batch(
        self, provider: str, batch_id: str, owner: str, lease: float, items: list[BatchItem]
    ) -> int:
        """Record a submitted batch, held by owner for lease seconds, and its items; return its row."""
        now = time.time()
        with self.store.transaction() as db:
            row = db.execute(
                f"""INSERT INTO batches (provider, batch_id, state, status, lease_owner, lease_expires,
                       created_at, updated_at)
                   VALUES (?, ?, 'submitted', 'submitted', ?, {self._now} + ?, ?, ?)
                   RETURNING id""",
                (provider, batch_id, owner, lease, now, now),
            ).fetchone()
            db.executemany(
                f"""INSERT INTO batch_items (batch, {", ".join(BATCH_ITEM_COLUMNS)})
                    VALUES (?, {", ".join("?" for _ in BATCH_ITEM_COLUMNS)})""",
                [(row[0], *(getattr(i, name) for name in BATCH_ITEM_COLUMNS)) for i in items],
            )
        return int(row[0])

    def batch_items(self, batch: int) -> list[BatchItem]:
        """Return the items of a batch (by row id) in the order they were submitted."""
        rows = self.store.db.execute(
            "SELECT * FROM batch_items WHERE batch = ? ORDER BY custom_id", (batch,)
        ).fetchall()
        return [BatchItem(**{k: row[k] for k in row.keys() if k != "batch"}) for row in rows]

    def open_batches(self) -> int:
        return int(self._one("SELECT count(*) FROM batches WHERE state = 'submitted'")[0])

    def open_batch_providers(self) -> list[str]:
        rows = self.store.db.execute(
            "SELECT DISTINCT provider FROM batches WHERE state = 'submitted' ORDER BY provider"
        ).fetchall()
        return [row[0] for row in rows]

    def hold_open_batches(self, owner: str, lease: float) -> list[HeldBatch]:
        """Take (or keep) the lease of every open batch whose holder is gone, and its tasks."""
        now, clock = time.time(), self._now
        with self.store.transaction() as db:
            rows = db.execute(
                f"""UPDATE batches SET lease_owner = ?, lease_expires = {clock} + ?, updated_at = ?
                   WHERE state = 'submitted'
                     AND (lease_owner = ? OR lease_owner IS NULL OR lease_expires < {clock})
                   RETURNING id, provider, batch_id, created_at""",
                (owner, lease, now, owner),
            ).fetchall()
            for row in rows:
                db.execute(
                    f"""UPDATE tasks SET state = 'running', lease_owner = ?,
                           lease_expires = {clock} + ?, updated_at = ?
                       WHERE (tool, persona) IN (
                           SELECT tool, persona FROM batch_items WHERE batch = ? AND outcome IS NULL
                             AND second_tool IS NULL)
                         AND (state = 'pending'
                              OR (state = 'running' AND (lease_owner = ? OR lease_expires < {clock})))""",
                    (owner, lease, now, row["id"], owner),
                )
                db.execute(
                    f"""UPDATE pair_tasks SET state = 'running', lease_owner = ?,
                           lease_expires = {clock} + ?, updated_at = ?
                       WHERE EXISTS (SELECT 1 FROM batch_items i WHERE i.batch = ?
                             AND i.outcome IS NULL AND i.persona = pair_tasks.persona
                             AND ((i.tool = pair_tasks.a AND i.second_tool = pair_tasks.b)
                                  OR (i.tool = pair_tasks.b AND i.second_tool = pair_tasks.a)))
                         AND (state = 'pending'
                              OR (state = 'running' AND (lease_owner = ? OR lease_expires < {clock})))""",
                    (owner, lease, now, row["id"], owner),
                )
        return [HeldBatch(r["id"], r["provider"], r["batch_id"], r["created_at"]) for r in rows]

    def release_unsent(self, owner: str) -> None:
        """Put back the tasks owner claimed but did not get into a batch."""
        with self.store.transaction() as db:
            db.execute(
                f"""UPDATE tasks SET state = 'pending', lease_owner = NULL, updated_at = ?
                   WHERE lease_owner = ? AND state = 'running' AND NOT EXISTS (
                       SELECT 1 FROM ({_OPEN_BATCH_ITEMS}) o
                       WHERE o.tool = tasks.tool AND o.persona = tasks.persona)""",
                (time.time(), owner),
            )
            db.execute(
                f"""UPDATE pair_tasks SET state = 'pending', lease_owner = NULL, updated_at = ?
                   WHERE lease_owner = ? AND state = 'running' AND NOT EXISTS (
                       SELECT 1 FROM ({_OPEN_PAIR_ITEMS}) o WHERE o.persona = pair_tasks.persona
                       AND ((o.tool = pair_tasks.a AND o.second_tool = pair_tasks.b)
                            OR (o.tool = pair_tasks.b AND o.second_tool = pair_tasks.a)))""",
                (time.time(), owner),
            )

    def set_batch_status(self, row: int, status: str) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE batches SET status = ? WHERE id = ?", (status, row))

    def end_batch(self, row: int, status: str) -> None:
        with self.store.transaction() as db:
            db.execute(
                """UPDATE batches SET state = 'ended', status = ?, lease_owner = NULL, updated_at = ?
                   WHERE id = ?""",
                (status, time.time(), row),
            )

    def settle_batch_item(
        self,
        batch: int,
        item: BatchItem,
        outcome: str,
        call: CallRecord,
        owner: str,
        review: tuple[ToolCard, StoredReview] | None,
        errors: tuple[str, str],
    ) -> tuple[str, int] | None:
        """Log one batch answer and settle its task, in one transaction; an item settles once.

        The task gets the review, or fails with errors (task error, job error). Returns None
        when nothing was applied (already ingested, or the task is no longer owner's), else
        ("sample", 0) when another sample of the task is still in a batch, ("done", 0) when it
        was the last, or ("failed", jobs failed with it).
        """
        with self.store.transaction() as db:
            if not db.execute(
                """UPDATE batch_items SET outcome = ? WHERE batch = ? AND custom_id = ?
                       AND outcome IS NULL""",
                (outcome, batch, item.custom_id),
            ).rowcount:
                return None
            insert_call(db, call)
            if not db.execute(
                """SELECT 1 FROM tasks WHERE tool = ? AND persona = ? AND state = 'running'
                       AND lease_owner = ?""",
                (item.tool, item.persona, owner),
            ).fetchone():
                return None  # done meanwhile by a live run, or requeued: logged, not applied
            if review is not None:
                insert_review(db, *review)
                if db.execute(  # another sample of this review is still in a batch
                    """SELECT 1 FROM batch_items i JOIN batches b ON b.id = i.batch
                       WHERE i.tool = ? AND i.persona = ? AND i.outcome IS NULL
                         AND b.state = 'submitted'""",
                    (item.tool, item.persona),
                ).fetchone():
                    return "sample", 0
                finish_task_in(db, item.tool, item.persona)
                return "done", 0
            return "failed", _fail_task(db, item.tool, item.persona, *errors)

    def settle_pair_item(
        self,
        batch: int,
        item: BatchItem,
        outcome: str,
        call: CallRecord,
        owner: str,
        judged: tuple[tuple[ToolCard, ToolCard], StoredPair] | None,
        errors: tuple[str, str],
    ) -> tuple[str, int] | None:
        """Log one batch answer to a pair judgment and settle its pair task, in one transaction,
        as settle_batch_item does a review: None when nothing was applied, ("sample", 0) while
        another answer of the task is still in a batch, ("done", 0) at the last, or ("failed",
        jobs failed with it)."""
        shown = (item.tool, item.second_tool or "")
        with self.store.transaction() as db:
            if not db.execute(
                """UPDATE batch_items SET outcome = ? WHERE batch = ? AND custom_id = ?
                       AND outcome IS NULL""",
                (outcome, batch, item.custom_id),
            ).rowcount:
                return None
            insert_call(db, call)
            task = db.execute(
                """SELECT a, b FROM pair_tasks WHERE persona = ? AND state = 'running'
                       AND lease_owner = ? AND ((a = ? AND b = ?) OR (a = ? AND b = ?))""",
                (item.persona, owner, *shown, *reversed(shown)),
            ).fetchone()
            if task is None:
                return None  # done meanwhile by a live run, or requeued: logged, not applied
            pair = (task["a"], task["b"])
            if judged is None:
                return "failed", _fail_pair_task(db, pair, item.persona, *errors)
            insert_pair(db, *judged)
            if db.execute(  # another answer of this pair task is still in a batch
                """SELECT 1 FROM batch_items i JOIN batches b ON b.id = i.batch
                   WHERE i.persona = ? AND i.outcome IS NULL AND b.state = 'submitted'
                     AND ((i.tool = ? AND i.second_tool = ?) OR (i.tool = ? AND i.second_tool = ?))""",
                (item.persona, *pair, *reversed(pair)),
            ).fetchone():
                return "sample", 0
            finish_pair_task_in(db, pair, item.persona)
            return "done", 0


def finish_pair_task_in(db: Connection, pair: tuple[str, str], persona: str) -> None:
    """Mark a pair task done, inside the caller's transaction (the one that stores its last
    judgment)."""
    db.execute(
        """UPDATE pair_tasks SET state = 'done', last_error = NULL, lease_owner = NULL,
               updated_at = ? WHERE a = ? AND b = ? AND persona = ?""",
        (time.time(), *pair, persona),
    )


def _fail_pair_task(
    db: Connection, pair: tuple[str, str], persona: str, error: str, job_error: str
) -> int:
    now = time.time()
    db.execute(
        """UPDATE pair_tasks SET state = 'failed', last_error = ?, lease_owner = NULL,
               updated_at = ? WHERE a = ? AND b = ? AND persona = ?""",
        (error, now, *pair, persona),
    )
    return int(
        db.execute(
            """UPDATE jobs SET state = 'failed', last_error = ?, updated_at = ?
               WHERE state IN ('pending', 'running') AND a = ? AND b = ?""",
            (job_error, now, *pair),
        ).rowcount
    )


def finish_task_in(db: Connection, tool: str, persona: str) -> None:
    """Mark a review task done, inside the caller's transaction (the one that stores it)."""
    db.execute(
        """UPDATE tasks SET state = 'done', last_error = NULL, lease_owner = NULL, updated_at = ?
           WHERE tool = ? AND persona = ?""",
        (time.time(), tool, persona),
    )


def _fail_task(db: Connection, tool: str, persona: str, error: str, job_error: str) -> int:
    now = time.time()
    db.execute(
        """UPDATE tasks SET state = 'failed', last_error = ?, lease_owner = NULL, updated_at = ?
           WHERE tool = ? AND persona = ?""",
        (error, now, tool, persona),
    )
    return int(
        db.execute(
            """UPDATE jobs SET state = 'failed', last_error = ?, updated_at = ?
               WHERE state IN ('pending', 'running') AND (a = ? OR b = ?)""",
            (job_error, now, tool, tool),
        ).rowcount
    )
