"""The one SQLite file that holds panel's state: tools, reviews and a log of every model call.

Schema changes are numbered migrations (panel.migrations), applied when the store is opened;
the queue's tables are read and written by panel.queue.db. Every write is a transaction. No API key is ever stored:
only what the call log names explicitly is written.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from panel import migrations
from panel.cards import ToolCard
from panel.errors import ConfigError, scrub
from panel.injection import Finding


@dataclass(frozen=True)
class StoredReview:
    """A validated review as kept in the store."""

    tool: str
    card_hash: str
    persona: str
    prompt_version: str
    provider: str
    model: str
    score: int
    verdict: str
    review: str
    fields: dict[str, Any]
    attempts: int
    created_at: float


@dataclass(frozen=True)
class CallRecord:
    """One model call: what was asked of whom, how long it took, what it cost, how it ended."""

    provider: str
    model: str
    tool: str
    persona: str
    prompt_hash: str
    latency_ms: int
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    """Of the input tokens, those the provider served from its prompt cache."""
    cost_usd: float | None = None
    outcome: str = "ok"
    """ok, invalid (answer failed validation), refusal, or error."""
    error: str | None = None
    at: float = 0.0


class Store:
    """Access to one panel database file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL keeps every commit across a crash of panel (kill -9 included);
            # only an OS crash or power cut can lose the last commits. FULL costs an fsync per
            # commit, which on slow disks stalls the event loop for hundreds of milliseconds.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{path}: not a usable panel database ({exc})") from None

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block as one IMMEDIATE transaction: all of it lands, or none."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        with self.transaction() as db:
            migrations.apply(db, str(self.path))

    # --- tools ---------------------------------------------------------------------------------

    def save_tool(self, card: ToolCard) -> None:
        """Insert the card, or replace the stored card of the same slug."""
        with self.transaction() as db:
            upsert_tool(db, card)

    def get_tool(self, slug: str) -> ToolCard | None:
        row = self.db.execute("SELECT card, findings FROM tools WHERE slug = ?", (slug,)).fetchone()
        return _card_from_row(row) if row else None

    def tools(self) -> list[ToolCard]:
        rows = self.db.execute("SELECT card, findings FROM tools ORDER BY slug").fetchall()
        return [_card_from_row(row) for row in rows]

    # --- reviews -------------------------------------------------------------------------------

    def find_review(
        self, card_hash: str, persona: str, prompt_version: str, provider: str, model: str
    ) -> StoredReview | None:
        """Return the stored review for exactly this card, question and model, if any."""
        row = self.db.execute(
            """SELECT * FROM reviews WHERE card_hash = ? AND persona = ? AND prompt_version = ?
               AND provider = ? AND model = ?""",
            (card_hash, persona, prompt_version, provider, model),
        ).fetchone()
        return _review_from_row(row) if row else None

    def save_review(self, card: ToolCard, review: StoredReview) -> None:
        """Store the card and a validated review of it in one transaction.

        A newer review with the same key (card, persona, prompt version, provider, model)
        replaces the old one.
        """
        with self.transaction() as db:
            insert_review(db, card, review)

    def latest_reviews(self, tool: str) -> dict[str, StoredReview]:
        """Return the newest review of each persona for the tool's current card."""
        rows = self.db.execute(
            """SELECT r.* FROM reviews r JOIN tools t ON t.slug = r.tool AND t.card_hash = r.card_hash
               WHERE r.tool = ? ORDER BY r.created_at""",
            (tool,),
        ).fetchall()
        return {row["persona"]: _review_from_row(row) for row in rows}

    def import_records(self, cards: list[ToolCard], reviews: list[StoredReview]) -> None:
        """Store imported tools and reviews in one transaction: all of the file, or nothing."""
        by_slug = {card.slug: card for card in cards}
        with self.transaction() as db:
            for card in cards:
                upsert_tool(db, card)
            for review in reviews:
                _upsert_review(db, by_slug[review.tool], review)

    # --- community votes and comparisons ------------------------------------------------------

    def save_vote(self, tool: str, voter: str, vote: str) -> None:
        """Record voter's vote on tool; a later vote by the same voter replaces the earlier one."""
        with self.transaction() as db:
            db.execute(
                """INSERT INTO votes (tool, voter, vote, at) VALUES (?, ?, ?, ?)
                   ON CONFLICT (tool, voter) DO UPDATE SET vote = excluded.vote, at = excluded.at""",
                (tool, voter, vote, time.time()),
            )

    def vote_counts(self, tool: str) -> tuple[int, int]:
        """Return (ship votes, skip votes) for tool."""
        row = self.db.execute(
            """SELECT count(*) FILTER (WHERE vote = 'ship'), count(*) FILTER (WHERE vote = 'skip')
               FROM votes WHERE tool = ?""",
            (tool,),
        ).fetchone()
        return int(row[0]), int(row[1])

    def save_comparison(self, a: str, b: str) -> None:
        now = time.time()
        with self.transaction() as db:
            db.execute(
                """INSERT INTO comparisons (a, b, created_at, updated_at) VALUES (?, ?, ?, ?)
                   ON CONFLICT (a, b) DO UPDATE SET updated_at = excluded.updated_at""",
                (a, b, now, now),
            )

    def comparisons(self) -> list[tuple[str, str, float]]:
        """Return (a, b, created_at) of every comparison, newest first."""
        rows = self.db.execute(
            "SELECT a, b, created_at FROM comparisons ORDER BY created_at DESC, a, b"
        ).fetchall()
        return [(row["a"], row["b"], row["created_at"]) for row in rows]

    # --- call log ------------------------------------------------------------------------------

    def log_call(self, call: CallRecord) -> None:
        with self.transaction() as db:
            insert_call(db, call)

    def recent_calls(self, limit: int = 20) -> list[CallRecord]:
        rows = self.db.execute("SELECT * FROM calls ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [
            CallRecord(**{k: row[k] for k in row.keys() if k != "id"}) for row in reversed(rows)
        ]

    def count_calls(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM calls").fetchone()[0])


def insert_call(db: sqlite3.Connection, call: CallRecord) -> None:
    """Append one call to the call log, inside the caller's transaction."""
    db.execute(
        """INSERT INTO calls (at, provider, model, tool, persona, prompt_hash, latency_ms,
               input_tokens, output_tokens, cached_tokens, cost_usd, outcome, error)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            call.at or time.time(),
            call.provider,
            call.model,
            call.tool,
            call.persona,
            call.prompt_hash,
            call.latency_ms,
            call.input_tokens,
            call.output_tokens,
            call.cached_tokens,
            call.cost_usd,
            call.outcome,
            scrub(call.error) if call.error else None,
        ),
    )


def insert_review(db: sqlite3.Connection, card: ToolCard, review: StoredReview) -> None:
    """Store card and a validated review of it, inside the caller's transaction (see save_review)."""
    upsert_tool(db, card)
    _upsert_review(db, card, review)


def upsert_tool(db: sqlite3.Connection, card: ToolCard) -> None:
    """Insert the card, or replace the stored card of its slug if its content or findings changed."""
    now = time.time()
    findings = json.dumps([asdict(f) for f in card.findings], ensure_ascii=False)
    db.execute(
        """INSERT INTO tools (slug, card, card_hash, findings, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (slug) DO UPDATE SET card = excluded.card, card_hash = excluded.card_hash,
               findings = excluded.findings, updated_at = excluded.updated_at
           WHERE tools.card_hash != excluded.card_hash OR tools.findings != excluded.findings""",
        (card.slug, card.model_dump_json(), card.content_hash(), findings, now, now),
    )


def _card_from_row(row: sqlite3.Row) -> ToolCard:
    card = ToolCard.model_validate_json(row["card"])
    return card.with_findings([Finding(**f) for f in json.loads(row["findings"])])


def _upsert_review(db: sqlite3.Connection, card: ToolCard, review: StoredReview) -> None:
    db.execute(
        """INSERT INTO reviews (tool, card_hash, persona, prompt_version, provider, model,
               score, verdict, review, fields, attempts, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (card_hash, persona, prompt_version, provider, model) DO UPDATE SET
               score = excluded.score, verdict = excluded.verdict, review = excluded.review,
               fields = excluded.fields, attempts = excluded.attempts,
               created_at = excluded.created_at""",
        (
            card.slug,
            card.content_hash(),
            review.persona,
            review.prompt_version,
            review.provider,
            review.model,
            review.score,
            review.verdict,
            review.review,
            json.dumps(review.fields, ensure_ascii=False),
            review.attempts,
            review.created_at,
        ),
    )


def _review_from_row(row: sqlite3.Row) -> StoredReview:
    data = {k: row[k] for k in row.keys() if k != "id"}
    data["fields"] = json.loads(data["fields"])
    return StoredReview(**data)
