"""Ctrl-C stops a busy `panel queue run` at once and gives back what it held; the claims of a
full queue read a partial index and stop at their first row (EXPLAIN on both engines)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from panel.queue.store import CLAIMS, claim_statement, hint_statement
from panel.store import PAIR, REVIEW, Store
from panel.store.sql import Dialect
from panel.testing.fakes.openai import FakeOpenAI
from tests.cli.test_cli import panel
from tests.queue.test_queue import env_for, make_cards, pairs_file, query

INTERRUPT_SECONDS = 2.0
"""How soon a run must end after SIGINT (the issue's bound)."""


def test_sigint_stops_a_busy_run_within_two_seconds_and_gives_its_leases_back(
    tmp_path: Path, db: str
) -> None:
    out = tmp_path / "out"
    cards = make_cards(tmp_path / "cards", 16)
    with FakeOpenAI(latency=1.5) as server:  # a slow model: every call is in flight
        env = {**os.environ, **env_for(server, db, out)}
        assert panel("queue", "add", pairs_file(tmp_path, cards, 24), env=env).returncode == 0
        argv = [sys.executable, "-m", "panel", "queue", "run", "-c", "8", "--lease", "600"]
        worker = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while server.requests < 8:  # busy: its eight workers each wait on a call
            time.sleep(0.01)
            assert worker.poll() is None
        sent = time.monotonic()
        worker.send_signal(signal.SIGINT)
        worker.communicate(timeout=30)
        took = time.monotonic() - sent
    assert worker.returncode == 130
    assert took < INTERRUPT_SECONDS, f"stopped {took:.2f} s after SIGINT"
    held = "SELECT count(*) FROM {} WHERE state = 'running' OR lease_owner IS NOT NULL"
    for table in ("jobs", "tasks", "pair_tasks"):
        assert query(db, held.format(table)) == [(0,)], f"{table}: a lease kept"
    assert query(db, "SELECT max(attempts) FROM tasks") == [(0,)], "the try is not counted"


def _plan(store: Store, sql: str) -> str:
    """Return the plan of a statement, as one text (SQLite's EXPLAIN QUERY PLAN, else EXPLAIN)."""
    sqlite = store.db.dialect.name == "sqlite"
    explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
    rows = store.db.execute(explain + sql).fetchall()
    return "\n".join(str(row[-1] if sqlite else row[0]) for row in rows)


def _fill(store: Store, tools: int = 2_000, jobs: int = 20_000) -> None:
    """Queue a catalogue at once, as a run would leave it halfway through the reviews: every job
    and pair task waiting, their hints taken off."""
    now, personas = time.time(), ("builder", "skeptic", "futurist", "founder")
    slugs = [f"tool-{n:05d}" for n in range(tools)]
    pairs = [(slugs[n % tools], slugs[(n * 7 + 1 + n // tools) % tools]) for n in range(jobs)]
    pairs = sorted({(a, b) for a, b in pairs if a != b})
    half = tools // 2  # the first half reviewed, a few under lease (some run out), the rest to do
    states = ["done"] * half + ["running"] * 20 + ["pending"] * (tools - half - 20)
    tasks = [
        (slug, p, state, now - (n % 2) * 60)
        for n, (slug, state) in enumerate(zip(slugs, states, strict=True))
        for p in personas
    ]
    with store.transaction() as db:
        db.executemany(
            "INSERT INTO tools (slug, card, card_hash, created_at, updated_at) VALUES (?, '{}', ?, ?, ?)",
            [(s, s, now, now) for s in slugs],
        )
        db.executemany(
            """INSERT INTO tasks (tool, persona, state, lease_expires, updated_at)
               VALUES (?, ?, ?, ?, ?)""",
            [(*task, now) for task in tasks],
        )
        db.executemany(
            """INSERT INTO jobs (a, b, state, ready, created_at, updated_at)
               VALUES (?, ?, 'pending', 0, ?, ?)""",
            [(a, b, now, now) for a, b in pairs],
        )
        db.executemany(
            """INSERT INTO pair_tasks (a, b, persona, state, ready, updated_at)
               VALUES (?, ?, ?, 'pending', 0, ?)""",
            [(a, b, p, now) for a, b in pairs[: jobs // 4] for p in personas],
        )
    store.db.execute("ANALYZE")


@pytest.mark.parametrize("kind", ["job", REVIEW, PAIR])
def test_a_claim_reads_its_indexes_and_stops_at_the_first_row(db: str, kind: str) -> None:
    spec = CLAIMS[kind]
    claim = lambda dialect: claim_statement(spec, dialect, "1")  # noqa: E731
    plan = _plan_in_a_full_queue(db, claim, ("'me'", "30.0", "0.0", "1", "1", "1"))
    assert f"{spec.table}_claimable" in plan and f"{spec.table}_leased" in plan, plan
    # each look is a range of its index in the order asked for: no sort, no scan of the table
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan
    _no_scan_of(spec.table, plan)


@pytest.mark.parametrize("kind", ["job", PAIR])
def test_a_finished_review_hints_only_the_rows_of_its_tool(db: str, kind: str) -> None:
    spec = CLAIMS[kind]
    hint = lambda dialect: hint_statement(spec, dialect)  # noqa: E731
    plan = _plan_in_a_full_queue(db, hint, ("'tool-00001'", "'tool-00001'"))
    assert "_by_b" in plan, plan  # the second tool's own index, beside the first's
    _no_scan_of(spec.table, plan)


def _plan_in_a_full_queue(
    db: str, statement: Callable[[Dialect], str], params: tuple[str, ...]
) -> str:
    """Return the plan of a statement in a store holding a catalogue-size queue: SQLite's
    EXPLAIN QUERY PLAN, else PostgreSQL's EXPLAIN (its ? parameters written in: EXPLAIN takes
    none on PostgreSQL)."""
    store = Store(db)
    try:
        _fill(store)
        sql = statement(store.db.dialect)
        for value in params:
            sql = sql.replace("?", value, 1)
        if store.db.dialect.name == "postgres":
            return "\n".join(row[0] for row in store.db.execute("EXPLAIN " + sql).fetchall())
        rows = store.db.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
        return "\n".join(row[-1] for row in rows)
    finally:
        store.close()


def _no_scan_of(table: str, plan: str) -> None:
    scans = [line for line in plan.splitlines() if line.startswith("SCAN t")]  # t: the table
    assert not scans and f"Seq Scan on {table}" not in plan, plan
