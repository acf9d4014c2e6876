"""The store's schema, as numbered migrations: small decorated functions applied in order.

A store records how many it has applied (SQLite: PRAGMA user_version); opening it applies the
rest in one transaction, and a store made by a newer panel (more migrations than known) is
refused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from panel.errors import ConfigError

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register fn as the next numbered migration."""
    MIGRATIONS.append(fn)
    return fn


def _execute_script(db: sqlite3.Connection, script: str) -> None:
    """Run ;-separated statements inside the caller's transaction (executescript would commit)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        CREATE TABLE tools (
            slug TEXT PRIMARY KEY,
            card TEXT NOT NULL,
            card_hash TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE reviews (
            id INTEGER PRIMARY KEY,
            tool TEXT NOT NULL REFERENCES tools(slug),
            card_hash TEXT NOT NULL,
            persona TEXT NOT NULL,
            prompt_version TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            score INTEGER NOT NULL CHECK (score BETWEEN 0 AND 100),
            verdict TEXT NOT NULL CHECK (verdict IN ('ship', 'skip')),
            review TEXT NOT NULL CHECK (length(review) > 0),
            fields TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (card_hash, persona, prompt_version, provider, model)
        );
        CREATE INDEX reviews_by_tool ON reviews (tool, created_at);
        CREATE TABLE calls (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            tool TEXT NOT NULL,
            persona TEXT NOT NULL,
            prompt_hash TEXT NOT NULL,
            latency_ms INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cost_usd REAL,
            outcome TEXT NOT NULL,
            error TEXT
        );
        """,
    )


@migration
def m002_votes_and_comparisons(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        CREATE TABLE votes (
            tool TEXT NOT NULL REFERENCES tools(slug),
            voter TEXT NOT NULL,
            vote TEXT NOT NULL CHECK (vote IN ('ship', 'skip')),
            at REAL NOT NULL,
            PRIMARY KEY (tool, voter)
        );
        CREATE TABLE comparisons (
            a TEXT NOT NULL REFERENCES tools(slug),
            b TEXT NOT NULL REFERENCES tools(slug),
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (a, b)
        );
        """,
    )


@migration
def m003_queue(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            a TEXT NOT NULL REFERENCES tools(slug),
            b TEXT NOT NULL REFERENCES tools(slug),
            state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires REAL,
            last_error TEXT,
            files TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (a, b)
        );
        CREATE TABLE tasks (
            tool TEXT NOT NULL REFERENCES tools(slug),
            persona TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires REAL,
            last_error TEXT,
            updated_at REAL NOT NULL,
            PRIMARY KEY (tool, persona)
        );
        CREATE INDEX jobs_by_state ON jobs (state, id);
        CREATE INDEX tasks_by_state ON tasks (state, tool);
        """,
    )


@migration
def m004_batches(db: sqlite3.Connection) -> None:
    """Provider batches in flight, so a killed `queue run --batch-api` resumes instead of resubmitting."""
    _execute_script(
        db,
        """
        CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            provider TEXT NOT NULL,
            batch_id TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('submitted', 'ended')),
            status TEXT NOT NULL,
            lease_owner TEXT,
            lease_expires REAL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (provider, batch_id)
        );
        CREATE TABLE batch_items (
            batch INTEGER NOT NULL REFERENCES batches(id),
            custom_id TEXT NOT NULL,
            tool TEXT NOT NULL,
            persona TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt_version TEXT NOT NULL,
            prompt_hash TEXT NOT NULL,
            card_hash TEXT NOT NULL,
            outcome TEXT,
            PRIMARY KEY (batch, custom_id)
        );
        CREATE INDEX batch_items_by_task ON batch_items (tool, persona);
        CREATE INDEX batches_by_state ON batches (state);
        """,
    )


@migration
def m005_card_findings(db: sqlite3.Connection) -> None:
    """What the injection scan found in each card's raw text, which cleaning removes in part."""
    db.execute("ALTER TABLE tools ADD COLUMN findings TEXT NOT NULL DEFAULT '[]'")


@migration
def m006_cached_tokens(db: sqlite3.Connection) -> None:
    """Prompt tokens a provider served from its prompt cache, priced at its cached rate."""
    db.execute("ALTER TABLE calls ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0")


def apply(db: sqlite3.Connection, where: str) -> None:
    """Apply the migrations db lacks, inside the caller's transaction; refuse a newer schema."""
    current = db.execute("PRAGMA user_version").fetchone()[0]
    if current > len(MIGRATIONS):
        raise ConfigError(f"{where}: made by a newer panel (schema {current})")
    for number, step in enumerate(MIGRATIONS[current:], start=current + 1):
        step(db)
        db.execute(f"PRAGMA user_version = {number}")
