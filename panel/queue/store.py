"""Every SQL statement of the queue, behind two small interfaces: QueueStore (jobs and units)
and BatchStore (provider batches, for `queue run --batch-api` only).

A unit is one persona's question of one kind, every sample: a review task (one tool) or a pair
task (a queued pair judged in both orders, `queue add --pairwise`: claimable once every review
task of its two tools is done; a job that judges its pair is ready once its pair tasks are done
too). Claim, lease, settle, fail, release and reopen are written once for every kind (TABLES
says where each kind is kept).

The runner, the batcher and `queue add / status / retry` speak only to these; a second storage
backend implements their methods and nothing else of the queue changes.

Every statement serves both engines (SQLite and PostgreSQL, see panel.store.sql). Claiming is
one UPDATE ... RETURNING of rows picked by a SELECT that skips rows other workers hold locked
(PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite's IMMEDIATE transaction lets one writer in at a
time), so any number of processes on any number of machines never claim the same unit. It
costs O(log n) however much is queued (claim_statement): it reads an index of leases that ran
out and one of the pending rows hinted ready, each stopping at its first free row. A job or a
pair task waiting for reviews loses its hint when a claim passes it over (_prune) and gets it
back when a unit it waits for is done (_hint), so waiting rows are not read again and again. A
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
from panel.questions import label_of
from panel.store import (
    PAIR,
    REVIEW,
    CallRecord,
    Key,
    Store,
    Stored,
    count_stored,
    insert_answer,
    insert_call,
    insert_comparison,
    upsert_tool,
)
from panel.store.sql import Connection, Dialect, dialect_of

STATES = ("pending", "running", "done", "failed")


@dataclass(frozen=True)
class Unit:
    """One unit of the queue's work: one persona's question of one kind about its tools, every
    sample (a review task: one tool; a pair task: two tools, judged in both orders)."""

    kind: str
    """panel.store.REVIEW or PAIR."""
    tools: tuple[str, ...]
    persona: str
    attempts: int = 0
    samples: int = 1

    @property
    def label(self) -> str:
        return label_of(self.tools)


@dataclass(frozen=True)
class _Claimable:
    """What a claim of one kind of row needs: its table, its key, what it waits for."""

    table: str
    key: tuple[str, ...]
    waits: str = ""
    """Whether row `{t}` is ready: every unit it waits for done ("" for a row that waits for
    nothing). Checked on each row a claim takes; `ready` is only a hint (see _hint)."""
    passes: str = ""
    """What else a claim passes row `{t}` over for ("": nothing)."""

    def free(self) -> str:
        """Return the condition (on alias t) that a row the indexes offer may be claimed."""
        return " AND ".join(c.format(t="t") for c in (self.waits, self.passes) if c) or "1 = 1"


@dataclass(frozen=True)
class _Table:
    """Where the queue keeps the units of one kind, and how a unit is matched."""

    name: str
    columns: tuple[str, ...]
    """The columns of the unit's tools."""
    item: str
    """Whether batch item `i` asks for a sample of the unit row `{t}`."""
    jobs: str
    """The jobs that need the unit (its tools as parameters, twice for a review's one)."""
    waits: str = ""
    """Whether unit row `{t}` is ready (see _Claimable.waits)."""

    def where(self, alias: str = "") -> str:
        """Return the condition matching one unit (its tools, then its persona, as parameters)."""
        prefix = f"{alias}." if alias else ""
        return " AND ".join(f"{prefix}{c} = ?" for c in (*self.columns, "persona"))

    def in_open_batch(self, alias: str) -> str:
        """Return whether unit row `alias` waits in a provider batch still open."""
        return f"""EXISTS (SELECT 1 FROM batch_items i JOIN batches b ON b.id = i.batch
                    WHERE b.state = 'submitted' AND i.outcome IS NULL
                      AND {self.item.format(t=alias)})"""

    @property
    def claims(self) -> _Claimable:
        return _Claimable(
            self.name,
            (*self.columns, "persona"),
            self.waits,
            "NOT " + self.in_open_batch("{t}"),
        )


_REVIEWED = """NOT EXISTS (SELECT 1 FROM tasks r
                           WHERE r.tool IN ({t}.a, {t}.b) AND r.state != 'done')"""
"""Whether both tools of row `{t}` (a pair task, a job) are reviewed."""

TABLES = {
    REVIEW: _Table(
        "tasks",
        ("tool",),
        "i.second_tool IS NULL AND i.tool = {t}.tool AND i.persona = {t}.persona",
        "(a = ? OR b = ?)",
    ),
    PAIR: _Table(
        "pair_tasks",
        ("a", "b"),
        """i.second_tool IS NOT NULL AND i.persona = {t}.persona
           AND ((i.tool = {t}.a AND i.second_tool = {t}.b)
                OR (i.tool = {t}.b AND i.second_tool = {t}.a))""",
        "a = ? AND b = ?",
        _REVIEWED,
    ),
}

_JOBS = _Claimable(
    "jobs",
    ("id",),
    _REVIEWED
    + """ AND NOT EXISTS (SELECT 1 FROM pair_tasks p
                          WHERE p.a = {t}.a AND p.b = {t}.b AND p.state != 'done')""",
)
"""A job is ready once its reviews (and pair judgments) are all done."""

CLAIMS = {"job": _JOBS, **{kind: table.claims for kind, table in TABLES.items()}}
"""What is claimed, by name: a job, or a unit of a kind."""


def _params(unit: Unit) -> tuple[str, ...]:
    return (*unit.tools, unit.persona)


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

    def _claim(self, kind: str, owner: str, lease: float, limit: int) -> list[Unit]:
        """Claim up to limit units of a kind free to claim (see _claim_rows; not waiting in an
        open provider batch; a pair task's tools reviewed)."""
        table = TABLES[kind]
        returning = ", ".join((*table.columns, "persona", "attempts", "samples"))
        rows = self._claim_rows(table.claims, owner, lease, limit, returning)
        units = [
            Unit(
                kind,
                tuple(row[c] for c in table.columns),
                row["persona"],
                row["attempts"],
                row["samples"],
            )
            for row in rows
        ]
        return sorted(units, key=lambda unit: (unit.tools, unit.persona))

    def _claim_rows(
        self, spec: _Claimable, owner: str, lease: float, limit: int, returning: str
    ) -> list[Any]:
        """Claim up to limit rows free to claim, in one statement; return them (`returning`).

        Free: held by a worker whose lease ran out (oldest lease first), else pending and
        hinted ready (in key order), and ready indeed. Each look is a range of an index (m018)
        that stops at its first free row, so a claim costs O(log n) however much is queued; the
        rows it passed over as not ready lose their hint (see _prune), so no claim passes them
        over again until a unit they wait for is done. (When the first row claimed was one whose
        lease ran out, the prune may look at more rows than the claim passed over: a rare case,
        and each row is checked again before its hint is taken off.)
        """
        with self.store.transaction() as db:
            rows = db.execute(
                claim_statement(spec, self.store.db.dialect, returning),
                (owner, lease, time.time(), limit, limit, limit),
            ).fetchall()
            if spec.waits:
                claimed = [tuple(row[c] for c in spec.key) for row in rows]
                self._prune(db, spec, min(claimed) if len(claimed) == limit else None)
        return list(rows)

    def _prune(self, db: Connection, spec: _Claimable, before: tuple[Any, ...] | None) -> None:
        """Take the ready hint off the hinted rows before `before` in key order (None: every
        hinted row) that wait for a unit still: the rows a claim just passed over.

        The rows are locked first (skipping those another worker holds), and whether each waits
        is asked in a statement of its own, so it sees every unit finished before: a worker
        that finishes a unit meanwhile sets the hint again after this transaction (see _hint).
        """
        key = ", ".join(spec.key)
        marks = ", ".join("?" for _ in spec.key)
        bound = "" if before is None else f"AND ({key}) < ({marks})"
        stale = db.execute(
            f"""SELECT {key} FROM {spec.table} t WHERE state = 'pending' AND ready = 1 {bound}
                ORDER BY {key}{self._skip_locked}""",
            before or (),
        ).fetchall()
        if stale:
            db.executemany(
                f"""UPDATE {spec.table} SET ready = 0 WHERE ({key}) = ({marks})
                       AND NOT ({spec.waits.format(t=spec.table)})""",
                [tuple(row) for row in stale],
            )


def claim_statement(spec: _Claimable, dialect: Dialect, returning: str) -> str:
    """Return the one statement that claims rows of a kind (parameters: owner, lease, now, and
    the limit three times): the rows whose lease ran out, oldest first, then the pending ones
    hinted ready, in key order, each a range of its index that stops at its first row. (The
    compound is wrapped in one more SELECT: SQLite then finds the rows to update by their
    key's index, not by a scan of the table.)"""
    key, now, skip = ", ".join(spec.key), dialect.now, dialect.skip_locked
    free = spec.free()
    return f"""UPDATE {spec.table} SET state = 'running', lease_owner = ?,
                   lease_expires = {now} + ?, attempts = attempts + 1, updated_at = ?
               WHERE ({key}) IN (SELECT {key} FROM (
                   SELECT {key} FROM (SELECT {key} FROM {spec.table} t
                       WHERE state = 'running' AND lease_expires < {now} AND {free}
                       ORDER BY lease_expires LIMIT ?{skip}) leased
                   UNION ALL
                   SELECT {key} FROM (SELECT {key} FROM {spec.table} t
                       WHERE state = 'pending' AND ready = 1 AND {free}
                       ORDER BY {key} LIMIT ?{skip}) fresh
                   LIMIT ?) claimed)
               RETURNING {returning}"""


def hint_statement(spec: _Claimable, dialect: Dialect) -> str:
    """Return the statement that hints ready the rows of a kind (jobs, pair tasks) of one
    reviewed tool (parameters: the tool twice).

    Every row of the tool, whatever its state (the hint counts only while pending), so each
    side is read by its own index (an OR beside the state would read the index by state: every
    pending row); locked in key order, so two workers hinting the rows of a pair queued in both
    orders cannot deadlock."""
    key = ", ".join(spec.key)
    return f"""UPDATE {spec.table} SET ready = 1 WHERE ({key}) IN (
                   SELECT {key} FROM (SELECT {key} FROM {spec.table} WHERE a = ? OR b = ?
                       ORDER BY {key}{dialect.for_update}) mine)"""


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
                               THEN 'pending' ELSE state END, ready = 1, updated_at = ?
                           WHERE a = ? AND b = ? AND pairwise = 0""",
                        (now, a.slug, b.slug),
                    )
        return added, already

    def open_pairwise_jobs(self) -> list[tuple[str, str]]:
        """Return the pair of every job not done or failed yet that judges its pair."""
        rows = self.store.db.execute(
            """SELECT a, b FROM jobs WHERE state IN ('pending', 'running') AND pairwise = 1
               ORDER BY a, b"""
        ).fetchall()
        return [(row["a"], row["b"]) for row in rows]

    def add_units(
        self,
        kind: str,
        tools: tuple[str, ...],
        personas: dict[str, bool],
        samples: int | None = None,
        keys: dict[str, list[Key]] | None = None,
    ) -> int:
        """Queue a unit of a kind per persona (True: already answered, so done); return how
        many are new work.

        A done unit whose answers are missing now (a card changed) is pending again, but only
        if, inside this transaction, its answers (by `keys`, the keys of the questions this
        persona's unit asks) are still missing: the caller looked before, and another process
        may have stored them and finished the unit since (a check-then-act across processes).
        A unit asks for `samples` answers (None: as many as it asked before, 1 for a new one).
        """
        table, now = TABLES[kind], time.time()
        columns = ", ".join(table.columns)
        marks = ", ".join("?" for _ in table.columns)
        pending = 0
        with self.store.transaction() as db:
            for persona, answered in personas.items():
                unit = Unit(kind, tools, persona)
                cursor = db.execute(
                    f"""INSERT INTO {table.name} ({columns}, persona, state, samples, updated_at)
                       VALUES ({marks}, ?, ?, ?, ?) ON CONFLICT ({columns}, persona) DO NOTHING""",
                    (*_params(unit), "done" if answered else "pending", samples or 1, now),
                )
                if cursor.rowcount:
                    pending += 0 if answered else 1
                elif not answered:
                    found = (keys or {}).get(persona)
                    pending += self._reopen(db, unit, found, samples, now)
                if samples is not None:
                    db.execute(
                        f"""UPDATE {table.name} SET samples = ?
                            WHERE {table.where()} AND state != 'done'""",
                        (samples, *_params(unit)),
                    )
            _hint(db, kind, tools)  # some may have been queued as done
        return pending

    def _reopen(
        self,
        db: Connection,
        unit: Unit,
        keys: list[Key] | None,
        samples: int | None,
        now: float,
    ) -> int:
        """Put a done unit back to pending if its answers are still missing; return 1 if it was.

        The unit's row is locked first (PostgreSQL: FOR UPDATE; SQLite's IMMEDIATE transaction
        holds every row), so a worker storing the answers waits for this transaction or has
        committed before it, and the check that follows (a statement of its own, so it sees
        that commit) decides on what is stored now.
        """
        table = TABLES[unit.kind]
        row = db.execute(
            f"""SELECT state, samples FROM {table.name} WHERE {table.where()}
                {self.store.db.dialect.for_update}""",
            _params(unit),
        ).fetchone()
        if row is None or row["state"] != "done":
            return 0
        wanted = samples or int(row["samples"])
        if keys and all(count_stored(db, key, wanted) >= wanted for key in keys):
            return 0
        db.execute(
            f"""UPDATE {table.name} SET state = 'pending', attempts = 0, last_error = NULL,
                   ready = 1, updated_at = ? WHERE {table.where()} AND state = 'done'""",
            (now, *_params(unit)),
        )
        return 1

    def samples_of(self, kind: str, tools: tuple[str, ...]) -> dict[str, int]:
        """Return how many samples each persona's unit of a kind about the tools asks for ({}
        for a pair no unit judges)."""
        table = TABLES[kind]
        where = " AND ".join(f"{column} = ?" for column in table.columns)
        rows = self.store.db.execute(
            f"SELECT persona, samples FROM {table.name} WHERE {where}", tools
        ).fetchall()
        return {row["persona"]: int(row["samples"]) for row in rows}

    def open_units(self) -> list[Unit]:
        """Return every unit not done or failed yet: the reviews, then the pair judgments."""
        units = []
        for kind, table in TABLES.items():
            columns = ", ".join(table.columns)
            rows = self.store.db.execute(
                f"""SELECT {columns}, persona, samples FROM {table.name}
                    WHERE state IN ('pending', 'running') ORDER BY {columns}, persona"""
            ).fetchall()
            units += [
                Unit(kind, tuple(row[c] for c in table.columns), row["persona"], 0, row["samples"])
                for row in rows
            ]
        return units

    def reopen_stale_jobs(self) -> int:
        """Put back every done job a tool of which changed after the job wrote its pages (the
        card was edited and stored again); return how many."""
        with self.store.transaction() as db:
            return int(
                db.execute(
                    """UPDATE jobs SET state = 'pending', attempts = 0, last_error = NULL,
                           ready = 1, updated_at = ?
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
        """Claim the next job whose reviews are all done; return (id, a, b)."""
        rows = self._claim_rows(CLAIMS["job"], owner, lease, 1, "id, a, b")
        return (rows[0]["id"], rows[0]["a"], rows[0]["b"]) if rows else None

    def claim(self, kind: str, owner: str, lease: float) -> Unit | None:
        """Claim the next unit of a kind free to claim (see _claim)."""
        units = self._claim(kind, owner, lease, 1)
        return units[0] if units else None

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
        """Return whether any job or unit is pending or running outside an open provider batch
        (a pair task only while its job is open).

        Units waiting in an open batch (and the jobs that need them) are left to
        `queue run --batch-api`, which collects them.
        """
        review, pair = TABLES[REVIEW], TABLES[PAIR]
        # EXISTS, not a count: each look stops at the first row found
        row = self._one(
            f"""SELECT EXISTS (SELECT 1 FROM tasks t WHERE state IN ('pending', 'running')
                         AND NOT {review.in_open_batch("t")})
                    OR EXISTS (SELECT 1 FROM jobs j WHERE state IN ('pending', 'running')
                         AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.tool IN (j.a, j.b)
                                         AND {review.in_open_batch("t")}))
                    OR EXISTS (SELECT 1 FROM pair_tasks p WHERE state IN ('pending', 'running')
                         AND NOT {pair.in_open_batch("p")}
                         AND EXISTS (SELECT 1 FROM jobs j WHERE j.a = p.a AND j.b = p.b
                                     AND j.state IN ('pending', 'running')))"""
        )
        return bool(row[0])

    def give_back(self, owner: str) -> None:
        """Put back everything owner holds outside an open provider batch, the try not counted
        (the run was interrupted: another worker takes it at once, not when the lease ends)."""
        with self.store.transaction() as db:
            for spec in CLAIMS.values():
                passes = spec.passes.format(t=spec.table) or "1 = 1"
                db.execute(
                    f"""UPDATE {spec.table} SET state = 'pending', lease_owner = NULL, ready = 1,
                           attempts = attempts - 1, updated_at = ?
                       WHERE state = 'running' AND lease_owner = ? AND {passes}""",
                    (time.time(), owner),
                )

    # --- settling ------------------------------------------------------------------------------

    def finish(self, unit: Unit) -> None:
        with self.store.transaction() as db:
            finish_in(db, unit)

    def fail(self, unit: Unit, error: str, job_error: str) -> int:
        """Fail a unit for good, and every unfinished job that needs it; return those jobs."""
        with self.store.transaction() as db:
            return _fail(db, unit, error, job_error)

    def release(self, unit: Unit, owner: str, error: str, *, attempt: bool = True) -> None:
        """Put a unit owner holds back in the queue after a failure worth another attempt;
        with attempt False (a cost ceiling or a database restart stopped it) the try is not
        counted and no error kept."""
        table = TABLES[unit.kind]
        with self.store.transaction() as db:
            db.execute(
                f"""UPDATE {table.name} SET state = 'pending', last_error = ?, lease_owner = NULL,
                       attempts = attempts - ?, ready = 1, updated_at = ?
                   WHERE {table.where()} AND lease_owner = ?""",
                (
                    error if attempt else None,
                    0 if attempt else 1,
                    time.time(),
                    *_params(unit),
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
                       last_error = ?, lease_owner = NULL, ready = 1, updated_at = ? WHERE id = ?""",
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
            "in_open_batches": self._one(
                """SELECT count(*) FROM batch_items i JOIN batches b ON b.id = i.batch
                   WHERE b.state = 'submitted' AND i.outcome IS NULL AND i.second_tool IS NULL"""
            )[0],
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
                           ready = 1, updated_at = ? WHERE state = 'failed'""",
                    (now,),
                )
            return int(
                db.execute(
                    """UPDATE jobs SET state = 'pending', attempts = 0, last_error = NULL,
                           ready = 1, updated_at = ? WHERE state = 'failed'""",
                    (now,),
                ).rowcount
            )


class BatchStore(_Tables):
    """The provider batches of `queue run --batch-api`: what was submitted, held and ingested."""

    def claim(self, owner: str, lease: float, limit: int) -> list[Unit]:
        """Claim up to limit units no open batch asks for: the reviews, then the pair judgments
        whose tools are reviewed; each kind sorted."""
        units = self._claim(REVIEW, owner, lease, limit)
        return units + self._claim(PAIR, owner, lease, limit - len(units))

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
                for table in TABLES.values():
                    db.execute(
                        f"""UPDATE {table.name} SET state = 'running', lease_owner = ?,
                               lease_expires = {clock} + ?, updated_at = ?
                           WHERE EXISTS (SELECT 1 FROM batch_items i WHERE i.batch = ?
                                 AND i.outcome IS NULL AND {table.item.format(t=table.name)})
                             AND (state = 'pending' OR (state = 'running'
                                  AND (lease_owner = ? OR lease_expires < {clock})))""",
                        (owner, lease, now, row["id"], owner),
                    )
        return [HeldBatch(r["id"], r["provider"], r["batch_id"], r["created_at"]) for r in rows]

    def release_unsent(self, owner: str) -> None:
        """Put back the units owner claimed but did not get into a batch."""
        with self.store.transaction() as db:
            for table in TABLES.values():
                db.execute(
                    f"""UPDATE {table.name} SET state = 'pending', lease_owner = NULL,
                           ready = 1, updated_at = ?
                       WHERE lease_owner = ? AND state = 'running'
                         AND NOT {table.in_open_batch(table.name)}""",
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

    def settle_item(
        self,
        batch: int,
        item: BatchItem,
        outcome: str,
        call: CallRecord,
        owner: str,
        answer: tuple[tuple[ToolCard, ...], Stored] | None,
        errors: tuple[str, str],
    ) -> tuple[Unit, str, int] | None:
        """Log one batch answer and settle its unit, in one transaction; an item settles once.

        The unit gets the answer, or fails with errors (unit error, job error). Returns None
        when nothing was applied (already ingested, or the unit is no longer owner's), else the
        unit and ("sample", 0) when another sample of it is still in a batch, ("done", 0) when
        it was the last, or ("failed", jobs failed with it).
        """
        with self.store.transaction() as db:
            if not db.execute(
                """UPDATE batch_items SET outcome = ? WHERE batch = ? AND custom_id = ?
                       AND outcome IS NULL""",
                (outcome, batch, item.custom_id),
            ).rowcount:
                return None
            insert_call(db, call)
            unit = _held_unit(db, batch, item, owner)
            if unit is None:
                return None  # done meanwhile by a live run, or requeued: logged, not applied
            if answer is None:
                return unit, "failed", _fail(db, unit, *errors)
            insert_answer(db, *answer)
            table = TABLES[unit.kind]
            if db.execute(  # another sample of this unit is still in a batch
                f"SELECT 1 FROM {table.name} WHERE {table.where()} AND "
                + table.in_open_batch(table.name),
                _params(unit),
            ).fetchone():
                return unit, "sample", 0
            finish_in(db, unit)
            return unit, "done", 0


def _held_unit(db: Connection, batch: int, item: BatchItem, owner: str) -> Unit | None:
    """Return the unit a batch item answers if owner holds it (a pair task in either order)."""
    kind = REVIEW if item.second_tool is None else PAIR
    table = TABLES[kind]
    row = db.execute(
        f"""SELECT {", ".join(table.columns)}, persona FROM {table.name} t
            WHERE persona = ? AND state = 'running' AND lease_owner = ?
              AND EXISTS (SELECT 1 FROM batch_items i WHERE i.batch = ? AND i.custom_id = ?
                          AND {table.item.format(t="t")})""",
        (item.persona, owner, batch, item.custom_id),
    ).fetchone()
    return None if row is None else Unit(kind, tuple(row[c] for c in table.columns), item.persona)


def finish_in(db: Connection, unit: Unit) -> None:
    """Mark a unit done, inside the caller's transaction (the one that stores its last answer)."""
    table = TABLES[unit.kind]
    db.execute(
        f"""UPDATE {table.name} SET state = 'done', last_error = NULL, lease_owner = NULL,
               updated_at = ? WHERE {table.where()}""",
        (time.time(), *_params(unit)),
    )
    _hint(db, unit.kind, unit.tools)


def _hint(db: Connection, kind: str, tools: tuple[str, ...]) -> None:
    """Hint ready the pending jobs (and, after a review, the pair tasks) that wait for a unit
    of a kind about the tools, as it is done: a claim checks them and takes the hint off those
    still waiting (_Tables._prune). The hint is written whether or not they are ready now, and
    whether or not they hold it already: two workers finishing a job's last two units at once
    each see the other's as not done yet, and the write locks each row (PostgreSQL), so a
    prune either waits for this transaction or is written over by it."""
    if kind == REVIEW:
        for spec in (CLAIMS["job"], CLAIMS[PAIR]):
            db.execute(hint_statement(spec, dialect_of(db)), tools * 2)
    else:
        db.execute(
            "UPDATE jobs SET ready = 1 WHERE a = ? AND b = ? AND state = 'pending'",
            tools,
        )


def _fail(db: Connection, unit: Unit, error: str, job_error: str) -> int:
    """Fail a unit and every unfinished job that needs it; return those jobs."""
    table, now = TABLES[unit.kind], time.time()
    db.execute(
        f"""UPDATE {table.name} SET state = 'failed', last_error = ?, lease_owner = NULL,
               updated_at = ? WHERE {table.where()}""",
        (error, now, *_params(unit)),
    )
    tools = unit.tools * 2 if unit.kind == REVIEW else unit.tools
    return int(
        db.execute(
            f"""UPDATE jobs SET state = 'failed', last_error = ?, updated_at = ?
               WHERE state IN ('pending', 'running') AND {table.jobs}""",
            (job_error, now, *tools),
        ).rowcount
    )
