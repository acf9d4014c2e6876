"""The one database that holds panel's state: tools, reviews, votes and a log of every model call.

A SQLite file by default, or a PostgreSQL database by URL (panel.store.sql); the statements here
serve both. Schema changes are numbered migrations (panel.store.migrations), applied when the store is
opened for writing; opening it to read never creates or migrates anything. The queue's tables
are read and written by panel.queue.store. Every write is a transaction. No API key is ever stored:
only what the call log names explicitly is written.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
import unicodedata
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from panel.cards import ToolCard
from panel.errors import ConfigError, StoreUnavailable, scrub
from panel.injection import Finding
from panel.rules import MAX_REPORTED_TOKENS, MAX_RETRY_AFTER
from panel.store import migrations
from panel.store.sql import Connection, Database, connect

if TYPE_CHECKING:
    from typing import TypeAlias

    from panel.sources import Page

    Subject: TypeAlias = ToolCard | Page
    """What a question is asked about: tool cards, or a launch page (a card is read from it)."""

REVIEW = "review"
PAIR = "pair"
CARD = "card"
"""The kinds of question a judge is asked: one card reviewed, two cards judged side by side,
a launch page read into a card."""


@dataclass(frozen=True)
class Key:
    """The one key an answer is stored and found under, for every kind of question: the cards'
    content (one card, or two with the one shown first first), persona, prompt version,
    provider, model, the mitigations that shaped what the judge saw, the temperature and the
    sample. Built in one place (Reviewer.key); the store's unique keys, its look-ups, the
    queue's re-checks and the eval's de-duplication all compare it."""

    kind: str
    card_hashes: tuple[str, ...]
    persona: str
    prompt_version: str
    provider: str
    model: str
    mitigations: tuple[str, ...] = ()
    temperature: float = 0.0
    sample: int = 0

    def question(self) -> Key:
        """Return the key of the question (any sample): what samples of one set share."""
        return replace(self, sample=0)


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
    sample: int = 0
    """Which answer of the persona this is (--samples N asks for samples 0 to N-1)."""
    mitigations: tuple[str, ...] = ()
    """The mitigations that shaped what the judge saw (panel.mitigations), part of the key."""
    temperature: float = 0.0
    """The temperature it was asked at, part of the key: a sample set has one temperature."""
    cost_usd: float | None = None
    """What the call that gave it cost (None: unknown, or imported)."""
    probabilities: dict[str, dict[str, float]] | None = None
    """The score read as probabilities, where the provider reported them (decisions.py)."""

    @property
    def key(self) -> Key:
        return _key_of(REVIEW, (self.card_hash,), self)


@dataclass(frozen=True)
class StoredPair:
    """A validated pair judgment as kept in the store: persona, shown `first` then `second`,
    would ship with the one it `prefers` ("first", "second" or "tie")."""

    first: str
    second: str
    first_hash: str
    second_hash: str
    persona: str
    prompt_version: str
    provider: str
    model: str
    prefers: str
    reason: str
    attempts: int
    created_at: float
    sample: int = 0
    mitigations: tuple[str, ...] = ()
    """The mitigations that shaped what the judge saw of either card, part of the key."""
    temperature: float = 0.0
    probabilities: dict[str, dict[str, float]] | None = None
    """The pick read as probabilities of "first", "second" and "tie", where the provider
    reported them (panel.providers.decisions)."""

    @property
    def key(self) -> Key:
        return _key_of(PAIR, (self.first_hash, self.second_hash), self)


@dataclass(frozen=True)
class StoredCard:
    """A card read from a launch page: what the model answered (`fields`) of the page at `url`
    whose content hashed to `text_hash`, and how it was asked. What of it a card keeps is
    decided in code when the card is made (panel.intake), never stored twice. A reading has one
    sample, and no mitigation shapes it."""

    url: str
    text_hash: str
    fields: dict[str, Any]
    persona: str
    prompt_version: str
    provider: str
    model: str
    temperature: float
    attempts: int
    created_at: float
    cost_usd: float | None = None
    sample: ClassVar[int] = 0
    mitigations: ClassVar[tuple[str, ...]] = ()

    @property
    def key(self) -> Key:
        return _key_of(CARD, (self.text_hash,), self)


Stored = StoredReview | StoredPair | StoredCard
"""An answer as kept in the store, of any kind."""


@dataclass(frozen=True)
class ToolMark:
    """What a tool's pages are made from, read for every tool at once (Store.tool_marks): its
    card (JSON) and content hash, when it was added and last changed, the reviews of its
    current card (how many, the newest one's time, the sum of their times in microseconds: an
    integer, so the same on either engine whatever order it adds them in) and its votes (ship,
    skip, networks)."""

    slug: str
    card: str
    card_hash: str
    created_at: float
    updated_at: float
    reviews: tuple[int, float, int]
    votes: tuple[int, int, int]


def _key_of(kind: str, hashes: tuple[str, ...], answer: Stored) -> Key:
    """Return the key a stored answer was made under (see Key)."""
    asked = (answer.persona, answer.prompt_version, answer.provider, answer.model)
    return Key(kind, hashes, *asked, answer.mitigations, answer.temperature, answer.sample)


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


SAVE_ATTEMPTS = 3
"""Transactions a new review is tried in when the database goes away in the middle of one
(each waits for it to be back): the answer was paid for."""


class Store:
    """Access to one panel database (a SQLite path or a postgresql:// URL)."""

    def __init__(
        self, location: str | Path, *, write: bool = True, first: str = "panel review"
    ) -> None:
        """Open the store; with write False it must exist at the current schema (see
        migrations.check: `first` names the command that makes it)."""
        self.location = str(location)
        self.db: Database = connect(self.location, create=write)
        self.where = self.db.where
        try:
            version = migrations.check(self.db, write=write, first=first)
            self.db.prepare()
            if version < len(migrations.MIGRATIONS):
                migrations.apply(self.db)
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise ConfigError(
                f"not a usable panel database ({exc})", path=str(self.where)
            ) from None
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    def transaction(self) -> AbstractContextManager[Connection]:
        """Return a block that runs as one transaction: all of it lands, or none."""
        return self.db.transaction()

    # --- tools ---------------------------------------------------------------------------------

    def save_tool(self, card: ToolCard) -> None:
        """Insert the card, or replace the stored card of the same slug."""
        with self.transaction() as db:
            upsert_tool(db, card)

    def get_tool(self, slug: str) -> ToolCard | None:
        row = self.db.execute(
            "SELECT card, findings FROM tools WHERE slug = ? AND probe IS NULL", (slug,)
        ).fetchone()
        return _card_from_row(row) if row else None

    def has_tool(self, slug: str) -> bool:
        """Return whether a tool (not a probe of `panel eval`) of this slug is stored."""
        row = self.db.execute(
            "SELECT 1 FROM tools WHERE slug = ? AND probe IS NULL", (slug,)
        ).fetchone()
        return row is not None

    def tools(self) -> list[ToolCard]:
        rows = self.db.execute(
            "SELECT card, findings FROM tools WHERE probe IS NULL ORDER BY slug"
        ).fetchall()
        return [_card_from_row(row) for row in rows]

    # --- reviews -------------------------------------------------------------------------------

    def find(self, key: Key, samples: int = 1) -> list[Stored]:
        """Return the stored samples below index `samples` of exactly key's question (any
        sample), by index (some may be missing)."""
        table, where, params = key_where(key)
        rows = self.db.execute(
            f"SELECT * FROM {table} WHERE {where} AND sample < ? ORDER BY sample",
            (*params, samples),
        ).fetchall()
        return [_from_row(key.kind, row) for row in rows]

    def save(
        self,
        cards: tuple[Subject, ...],
        answer: Stored,
        *,
        call: CallRecord | None = None,
        then: Callable[[Connection], None] | None = None,
    ) -> None:
        """Store the cards and a validated answer about them (a review of one, a judgment of
        two) in one transaction, with the log entry of the call that gave it and whatever
        `then` writes. A newer answer with the same key replaces the old one.

        The answer was paid for: a database that goes away in the middle (a restart) is waited
        for and the transaction tried again, up to SAVE_ATTEMPTS times.
        """
        for attempt in range(SAVE_ATTEMPTS):
            try:
                with self.transaction() as db:
                    insert_answer(db, cards, answer)
                    if call is not None:
                        insert_call(db, call)
                    if then is not None:
                        then(db)
                return
            except StoreUnavailable:
                if attempt == SAVE_ATTEMPTS - 1:
                    raise

    def latest_reviews(self, tool: str) -> dict[str, list[StoredReview]]:
        """Return each persona's newest review of the tool's current card, with the other
        samples of the same question and model (by sample index)."""
        rows = self.db.execute(
            """SELECT r.* FROM reviews r JOIN tools t ON t.slug = r.tool AND t.card_hash = r.card_hash
               WHERE r.tool = ? ORDER BY r.created_at, r.sample""",
            (tool,),
        ).fetchall()
        reviews = [_review_from_row(row) for row in rows]
        newest = {review.persona: review.key.question() for review in reviews}
        found: dict[str, list[StoredReview]] = {}
        for review in sorted(reviews, key=lambda r: r.sample):
            if review.key.question() == newest[review.persona]:
                found.setdefault(review.persona, []).append(review)
        return found

    def import_records(self, cards: list[ToolCard], reviews: list[StoredReview]) -> None:
        """Store imported tools and reviews in one transaction: all of the file, or nothing."""
        by_slug = {card.slug: card for card in cards}
        with self.transaction() as db:
            for card in cards:
                upsert_tool(db, card)
            for review in reviews:
                _upsert_review(db, by_slug[review.tool], review)

    # --- pair judgments -----------------------------------------------------------------------

    def latest_pairs(self, tools: tuple[str, str] | None = None) -> list[StoredPair]:
        """Return the judgments of the tools' current cards (of the pair `tools` in both orders,
        or of every pair): for each pair and persona, those of its newest question and model."""
        where, params = "", tuple[str, ...]()
        if tools is not None:
            where = """WHERE (p.first_tool = ? AND p.second_tool = ?)
                          OR (p.first_tool = ? AND p.second_tool = ?)"""
            params = (*tools, *reversed(tools))
        rows = self.db.execute(
            f"""SELECT p.* FROM pair_judgments p
                JOIN tools f ON f.slug = p.first_tool AND f.card_hash = p.first_hash
                JOIN tools s ON s.slug = p.second_tool AND s.card_hash = p.second_hash
                {where} ORDER BY p.created_at, p.sample, p.id""",
            params,
        ).fetchall()
        judgments = [_pair_from_row(row) for row in rows]
        questions = [_pair_question(j) for j in judgments]  # once each: 160,000 at 20,000 pairs
        newest = {_pair_question_key(j): q for j, q in zip(judgments, questions, strict=True)}
        found = [
            j
            for j, q in zip(judgments, questions, strict=True)
            if q == newest[_pair_question_key(j)]
        ]
        return sorted(found, key=lambda j: (j.first, j.second, j.persona, j.sample))

    # --- feed entries -------------------------------------------------------------------------

    def seen_entry(self, names: list[str]) -> str | None:
        """Return the tool queued for a feed entry known by any of names (its id, link or
        content hash), None if none was seen."""
        marks = ", ".join("?" for _ in names)
        row = self.db.execute(
            f"SELECT tool FROM feed_entries WHERE entry IN ({marks}) LIMIT 1", tuple(names)
        ).fetchone()
        return None if row is None else str(row[0])

    def remember_entry(self, feed: str, names: list[str], tool: str) -> None:
        """Remember a feed entry queued as tool under each of its names (after it is queued:
        queueing it again adds nothing, so a crash between the two loses nothing)."""
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                """INSERT INTO feed_entries (entry, feed, tool, seen_at) VALUES (?, ?, ?, ?)
                   ON CONFLICT (entry) DO NOTHING""",
                [(name, feed, tool, now) for name in names],
            )

    # --- community votes and comparisons ------------------------------------------------------

    def save_vote(self, tool: str, voter: str, vote: str) -> None:
        """Record voter's vote on tool; a later vote by the same voter (as voter_id sees it)
        replaces the earlier one."""
        with self.transaction() as db:
            insert_vote(db, tool, voter, vote)

    def vote_counts(self, tool: str) -> tuple[int, int]:
        """Return (ship votes, skip votes) for tool (kept by insert_vote: one row read, however
        many votes there are)."""
        row = self.db.execute(
            "SELECT ship, skip FROM vote_totals WHERE tool = ?", (tool,)
        ).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def vote_summary(self, tool: str) -> tuple[int, int, int]:
        """Return tool's ship votes, skip votes and how many distinct client networks its votes
        came from (kept by insert_vote: one row read)."""
        row = self.db.execute(
            "SELECT ship, skip, networks FROM vote_totals WHERE tool = ?", (tool,)
        ).fetchone()
        return (0, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]))

    def probe(self, name: str) -> None:
        """Write one row (the time, under name) and commit it: proof that the store takes
        writes (a locked, read-only or full store fails here as a vote would)."""
        with self.transaction() as db:
            db.execute(
                """INSERT INTO serve_probes (name, at) VALUES (?, ?)
                   ON CONFLICT (name) DO UPDATE SET at = excluded.at""",
                (name, time.time()),
            )

    def vote_of(self, tool: str, voter: str) -> str | None:
        """Return voter's vote on tool ("ship" or "skip"), None if they have not voted."""
        row = self.db.execute(
            "SELECT vote FROM votes WHERE tool = ? AND voter = ?", (tool, voter_id(voter))
        ).fetchone()
        return None if row is None else str(row[0])

    def save_comparison(self, a: str, b: str) -> None:
        with self.transaction() as db:
            insert_comparison(db, a, b)

    def comparisons(self) -> list[tuple[str, str, float]]:
        """Return (a, b, created_at) of every comparison, newest first."""
        rows = self.db.execute(
            "SELECT a, b, created_at FROM comparisons ORDER BY created_at DESC, a, b"
        ).fetchall()
        return [(row[0], row[1], row[2]) for row in rows]  # by position: the site reads 100,000

    def comparisons_of(self, slug: str) -> list[tuple[str, str, float]]:
        """Return (a, b, created_at) of every comparison that shows tool slug, newest first:
        an index look-up on either side, never a scan of every comparison."""
        rows = self.db.execute(
            """SELECT a, b, created_at FROM comparisons WHERE a = ?
               UNION ALL SELECT a, b, created_at FROM comparisons WHERE b = ? AND a != ?
               ORDER BY created_at DESC, a, b""",
            (slug, slug, slug),
        ).fetchall()
        return [(row["a"], row["b"], row["created_at"]) for row in rows]

    def tool_marks(self) -> list[ToolMark]:
        """Return what every tool's pages are made from, in one read: its card, when it was
        added and changed, a tally of the reviews of its current card and its vote totals
        (see ToolMark). What the site compares to know which pages are out of date."""
        rows = self.db.execute(
            """SELECT t.slug, t.card, t.card_hash, t.created_at, t.updated_at,
                      r.n, r.newest, r.total, v.ship, v.skip, v.networks
               FROM tools t
               LEFT JOIN (SELECT r.tool, count(*) AS n, max(r.created_at) AS newest,
                                 sum(CAST(r.created_at * 1000000 AS BIGINT)) AS total
                          FROM reviews r JOIN tools c ON c.slug = r.tool AND c.card_hash = r.card_hash
                          GROUP BY r.tool) r ON r.tool = t.slug
               LEFT JOIN vote_totals v ON v.tool = t.slug
               WHERE t.probe IS NULL ORDER BY t.created_at, t.slug"""
        ).fetchall()
        return [
            ToolMark(
                slug=row["slug"],
                card=row["card"],
                card_hash=row["card_hash"],
                created_at=float(row["created_at"]),
                updated_at=float(row["updated_at"]),
                reviews=(int(row["n"] or 0), float(row["newest"] or 0), int(row["total"] or 0)),
                votes=(int(row["ship"] or 0), int(row["skip"] or 0), int(row["networks"] or 0)),
            )
            for row in rows
        ]

    def pair_marks(self) -> dict[frozenset[str], tuple[int, float, int]]:
        """Return, for every pair of tools judged side by side (of their current cards, either
        order), how many judgments it has, the newest one's time and the sum of their times
        (in microseconds, see ToolMark)."""
        rows = self.db.execute(
            """SELECT p.first_tool, p.second_tool, count(*) AS n, max(p.created_at) AS newest,
                      sum(CAST(p.created_at * 1000000 AS BIGINT)) AS total
               FROM pair_judgments p
               JOIN tools f ON f.slug = p.first_tool AND f.card_hash = p.first_hash
               JOIN tools s ON s.slug = p.second_tool AND s.card_hash = p.second_hash
               GROUP BY p.first_tool, p.second_tool ORDER BY p.first_tool, p.second_tool"""
        ).fetchall()
        marks: dict[frozenset[str], tuple[int, float, int]] = {}
        for row in rows:
            pair = frozenset((row[0], row[1]))
            n, newest, total = marks.get(pair, (0, 0.0, 0))
            marks[pair] = (n + int(row[2]), max(newest, float(row[3])), total + int(row[4]))
        return marks

    def site_version(self) -> str:
        """Return a mark of what the site shows but the votes: it changes when a tool, a
        review or a comparison is stored (`panel serve` rebuilds the site when it does)."""
        row = self.db.execute(
            """SELECT (SELECT count(*) FROM tools), (SELECT max(updated_at) FROM tools),
                      (SELECT count(*) FROM reviews), (SELECT max(created_at) FROM reviews),
                      (SELECT count(*) FROM comparisons), (SELECT max(updated_at) FROM comparisons)"""
        ).fetchone()
        return "/".join(str(value) for value in tuple(row))

    # --- call log ------------------------------------------------------------------------------

    def log_call(self, call: CallRecord) -> None:
        with self.transaction() as db:
            insert_call(db, call)

    def output_tokens_seen(self, provider: str, model: str) -> float | None:
        """Return the mean output tokens of the model's last 200 answered calls, None if none."""
        row = self.db.execute(
            """SELECT avg(output_tokens) AS mean, count(*) AS n FROM (
                   SELECT output_tokens FROM calls
                   WHERE provider = ? AND model = ? AND outcome = 'ok' AND output_tokens > 0
                   ORDER BY id DESC LIMIT 200) recent""",
            (provider, model),
        ).fetchone()
        return float(row["mean"]) if row["n"] else None

    def recent_calls(self, limit: int = 20) -> list[CallRecord]:
        rows = self.db.execute("SELECT * FROM calls ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [
            CallRecord(**{k: row[k] for k in row.keys() if k != "id"}) for row in reversed(rows)
        ]

    def count_calls(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM calls").fetchone()[0])

    # --- shared rate limits -------------------------------------------------------------------

    def reserve(
        self,
        provider: str,
        endpoint: str,
        spends: list[tuple[str, float, float]],
        then: Callable[[Connection], None] | None = None,
    ) -> float:
        """Take one call from the shared budgets of provider at endpoint; return 0.0 if taken,
        else the seconds to wait before asking again (nothing is taken then). What `then` writes
        lands in the same transaction as the spend, and only if the budget allowed it.

        A budget is a GCRA (generic cell rate algorithm) row: `tat`, the moment the budget is
        spent up to. Each spend is (kind, seconds, burst): the call costs `seconds` of the kind
        (its units ÷ the rate), and a budget may run at most `burst` seconds ahead of the clock.
        A pause (a provider's Retry-After, see hold_off) stops every spend until it ends; a
        pause found further ahead than MAX_RETRY_AFTER (written by hand, or by another tool) is
        cut to end MAX_RETRY_AFTER from now. The clock is the database's, so workers on several
        machines agree on it.
        """
        dialect = self.db.dialect
        with self.transaction() as db:
            now = float(db.execute(f"SELECT {dialect.now}").fetchone()[0])
            db.executemany(
                """INSERT INTO rate_limits (provider, endpoint, kind, tat) VALUES (?, ?, ?, 0)
                   ON CONFLICT (provider, endpoint, kind) DO NOTHING""",
                [(provider, endpoint, kind) for kind, _, _ in spends],
            )
            rows = db.execute(
                f"""SELECT kind, tat FROM rate_limits WHERE provider = ? AND endpoint = ?
                    {dialect.for_update}""",
                (provider, endpoint),
            ).fetchall()
            budgets = {row[0]: _finite_or(float(row[1]), now) for row in rows}
            if budgets.get("pause", 0.0) > now + MAX_RETRY_AFTER:  # cut to the cap, once
                budgets["pause"] = now + MAX_RETRY_AFTER
                db.execute(
                    """UPDATE rate_limits SET tat = ? WHERE provider = ? AND endpoint = ?
                       AND kind = 'pause'""",
                    (budgets["pause"], provider, endpoint),
                )
            wait = budgets.get("pause", 0.0) - now
            spent = {kind: max(budgets[kind], now) + cost for kind, cost, _ in spends}
            wait = max([wait] + [spent[kind] - burst - now for kind, _, burst in spends])
            if wait > 0:
                return wait
            db.executemany(
                "UPDATE rate_limits SET tat = ? WHERE provider = ? AND endpoint = ? AND kind = ?",
                [(tat, provider, endpoint, kind) for kind, tat in spent.items()],
            )
            if then is not None:
                then(db)
        return 0.0

    def forget_budgets(self, prefix: str) -> int:
        """Delete the budgets whose name starts with prefix and that are spent up to a moment
        already past (a fresh row behaves the same); return how many. Keeps a limiter keyed by
        client address from growing a row per address forever."""
        with self.transaction() as db:
            cursor = db.execute(
                f"""DELETE FROM rate_limits
                    WHERE substr(provider, 1, ?) = ? AND tat < {self.db.dialect.now}""",
                (len(prefix), prefix),
            )
            return int(cursor.rowcount)

    def hold_off(self, provider: str, endpoint: str, seconds: float) -> None:
        """Pause every call to provider at endpoint, in every worker, for `seconds` from now (a
        Retry-After): at most MAX_RETRY_AFTER; a negative or non-finite wait pauses nothing."""
        if not math.isfinite(seconds) or seconds <= 0:
            return
        with self.transaction() as db:
            db.execute(
                f"""INSERT INTO rate_limits (provider, endpoint, kind, tat)
                    VALUES (?, ?, 'pause', {self.db.dialect.now} + ?)
                    ON CONFLICT (provider, endpoint, kind) DO UPDATE SET tat = excluded.tat
                    WHERE excluded.tat > rate_limits.tat""",
                (provider, endpoint, min(seconds, MAX_RETRY_AFTER)),
            )

    def pauses(self) -> list[dict[str, Any]]:
        """Return every pause in force: provider, endpoint, until (epoch seconds on the
        database's clock) and seconds_left, soonest end first."""
        now_sql = self.db.dialect.now
        rows = self.db.execute(
            f"""SELECT provider, endpoint, tat, tat - {now_sql} AS left_s FROM rate_limits
                WHERE kind = 'pause' AND tat > {now_sql} ORDER BY tat, provider, endpoint"""
        ).fetchall()
        return [
            {
                "provider": row[0],
                "endpoint": row[1],
                "until": round(float(row[2]), 3),
                "seconds_left": round(min(float(row[3]), MAX_RETRY_AFTER), 1),
            }
            for row in rows
        ]


def voter_id(voter: str) -> str:
    """Return the one spelling of a voter id: Unicode NFKC, invisible format characters
    removed, case folded, runs of white space one space ("Ana", " ana ", "ＡＮＡ" are one voter)."""
    text = unicodedata.normalize("NFKC", voter)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return " ".join(text.casefold().split())


def insert_vote(
    db: Connection, tool: str, voter: str, vote: str, networks: tuple[str, str] | None = None
) -> None:
    """Record voter's vote on tool inside the caller's transaction (see Store.save_vote), and
    keep the tool's totals: a new vote adds one, a changed vote moves one, the same vote again
    changes nothing. Exactly once even when two transactions race: the insert and the update
    each either change a row or not, and only a change moves the totals.

    networks: the client network a web vote came from and its wider one (`panel serve`, see
    vote_standing); a vote keeps the network of the voter's first vote on the tool. The totals
    count the distinct networks too (a vote without one counts as a network of its own)."""
    who, now = voter_id(voter), time.time()
    network, wide = networks or (None, None)
    added = db.execute(
        """INSERT INTO votes (tool, voter, vote, at, network, wide) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (tool, voter) DO NOTHING""",
        (tool, who, vote, now, network, wide),
    ).rowcount
    if not added:
        changed = db.execute(
            "UPDATE votes SET vote = ?, at = ? WHERE tool = ? AND voter = ? AND vote != ?",
            (vote, now, tool, who, vote),
        ).rowcount
        if not changed:
            return
    if not added:  # moved from the other verdict: the tool's totals row is there already
        ship, skip = (1, -1) if vote == "ship" else (-1, 1)
        db.execute(
            "UPDATE vote_totals SET ship = ship + ?, skip = skip + ? WHERE tool = ?",
            (ship, skip, tool),
        )
        return
    ship, skip = (1, 0) if vote == "ship" else (0, 1)
    db.execute(
        """INSERT INTO vote_totals (tool, ship, skip, networks) VALUES (?, ?, ?, ?)
           ON CONFLICT (tool) DO UPDATE SET ship = vote_totals.ship + excluded.ship,
               skip = vote_totals.skip + excluded.skip,
               networks = vote_totals.networks + excluded.networks""",
        (tool, ship, skip, _new_network(db, tool, network)),
    )


def _new_network(db: Connection, tool: str, network: str | None) -> int:
    """Return 1 if network had no vote on tool yet (remembering it now), else 0; a vote
    without a network is a network of its own."""
    if network is None:
        return 1
    return db.execute(
        "INSERT INTO vote_networks (tool, network) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (tool, network),
    ).rowcount


@dataclass(frozen=True)
class VoteStanding:
    """What a web vote meets in the store before it is cast (see vote_standing)."""

    tool_known: bool
    voted: bool
    """The voter has a vote on the tool already (a changed vote adds none)."""
    recent: list[tuple[int, float]]
    """For the client's network and its wider one: how many voters' votes on the tool came
    from it since the moment asked about, and when the oldest of them was cast."""


def vote_standing(
    db: Connection, tool: str, voter: str, networks: tuple[str, str], since: float
) -> VoteStanding:
    """Return whether tool is stored, whether voter has a vote on it, and for each of networks
    (the client's, its wider one) how many voters' votes on tool came from it at `since` or
    later and when the oldest was cast (`since` if none): one statement, in the caller's
    transaction. A voter's latest vote counts, with its time and its first network."""
    recent = "SELECT {} FROM votes WHERE tool = ? AND {} = ? AND at >= ?"
    row = db.execute(
        f"""SELECT EXISTS (SELECT 1 FROM tools WHERE slug = ?),
                   EXISTS (SELECT 1 FROM votes WHERE tool = ? AND voter = ?),
                   ({recent.format("count(*)", "network")}), ({recent.format("min(at)", "network")}),
                   ({recent.format("count(*)", "wide")}), ({recent.format("min(at)", "wide")})""",
        (
            tool,
            tool,
            voter_id(voter),
            *(tool, networks[0], since) * 2,
            *(tool, networks[1], since) * 2,
        ),
    ).fetchone()
    counts = [(int(row[2]), float(row[3] or since)), (int(row[4]), float(row[5] or since))]
    return VoteStanding(bool(row[0]), bool(row[1]), counts)


def _finite_or(value: float, default: float) -> float:
    return value if math.isfinite(value) else default


def _count(value: int) -> int:
    """Return a token count as the call log keeps it: 0 to MAX_REPORTED_TOKENS (the providers
    check what a server says; this keeps the log itself from taking anything else)."""
    return min(max(int(value), 0), MAX_REPORTED_TOKENS)


def insert_call(db: Connection, call: CallRecord) -> None:
    """Append one call to the call log, inside the caller's transaction."""
    cost = call.cost_usd if call.cost_usd is None or math.isfinite(call.cost_usd) else None
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
            _count(call.input_tokens),
            _count(call.output_tokens),
            _count(call.cached_tokens),
            cost,
            call.outcome,
            scrub(call.error) if call.error else None,
        ),
    )


def insert_comparison(db: Connection, a: str, b: str, at: float | None = None) -> None:
    """Record that the comparison of a and b was written (now, or at `at`), inside the caller's
    transaction."""
    now = time.time() if at is None else at
    db.execute(
        """INSERT INTO comparisons (a, b, created_at, updated_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (a, b) DO UPDATE SET updated_at = excluded.updated_at""",
        (a, b, now, now),
    )


def insert_answer(db: Connection, cards: tuple[Subject, ...], answer: Stored) -> None:
    """Store the cards and a validated answer about them, inside the caller's transaction (see
    Store.save); a newer answer with the same key replaces the old one. A page is not a tool:
    only the card read from it is stored."""
    for card in cards:
        if isinstance(card, ToolCard):
            upsert_tool(db, card)
    if isinstance(answer, StoredReview):
        assert isinstance(cards[0], ToolCard)
        _upsert_review(db, cards[0], answer)
        return
    if isinstance(answer, StoredCard):
        _upsert_page_card(db, answer)
        return
    db.execute(
        """INSERT INTO pair_judgments (first_tool, second_tool, first_hash, second_hash, persona,
               prompt_version, provider, model, mitigations, temperature, sample, prefers,
               reason, attempts, created_at, probabilities)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (first_hash, second_hash, persona, prompt_version, provider, model,
               mitigations, temperature, sample)
           DO UPDATE SET first_tool = excluded.first_tool, second_tool = excluded.second_tool,
               prefers = excluded.prefers, reason = excluded.reason,
               attempts = excluded.attempts, created_at = excluded.created_at,
               probabilities = excluded.probabilities""",
        (
            answer.first,
            answer.second,
            answer.first_hash,
            answer.second_hash,
            *_asked(answer),
            answer.prefers,
            answer.reason,
            answer.attempts,
            answer.created_at,
            _probabilities_json(answer.probabilities),
        ),
    )


_TABLES = {
    REVIEW: ("reviews", ("card_hash",)),
    PAIR: ("pair_judgments", ("first_hash", "second_hash")),
    CARD: ("page_cards", ("text_hash",)),
}
"""Where each kind of answer is kept, and the columns of its cards' content hashes."""


def key_where(key: Key) -> tuple[str, str, tuple[object, ...]]:
    """Return the table of key's kind, and the condition (with its parameters) of the rows of
    key's question, any sample: the one spelling of the key in SQL."""
    table, hashes = _TABLES[key.kind]
    columns = (*hashes, "persona", "prompt_version", "provider", "model", "mitigations")
    where = " AND ".join(f"{column} = ?" for column in (*columns, "temperature"))
    params = (
        *key.card_hashes,
        key.persona,
        key.prompt_version,
        key.provider,
        key.model,
        mitigations_key(key.mitigations),
        key.temperature,
    )
    return table, where, params


def count_stored(db: Connection, key: Key, samples: int) -> int:
    """Return how many of the samples below `samples` of key's question are stored, inside the
    caller's transaction (the queue looks again before it reopens a unit)."""
    table, where, params = key_where(key)
    row = db.execute(
        f"SELECT count(DISTINCT sample) FROM {table} WHERE {where} AND sample < ?",
        (*params, samples),
    ).fetchone()
    return int(row[0])


def _from_row(kind: str, row: Any) -> Stored:
    readers: dict[str, Callable[[Any], Stored]] = {
        REVIEW: _review_from_row,
        PAIR: _pair_from_row,
        CARD: _page_card_from_row,
    }
    return readers[kind](row)


def _probabilities_json(probabilities: dict[str, dict[str, float]] | None) -> str | None:
    return None if probabilities is None else json.dumps(probabilities, sort_keys=True)


def _probabilities_of(row: Any) -> dict[str, dict[str, float]] | None:
    text = row["probabilities"] if "probabilities" in row.keys() else None
    return None if text is None else dict(json.loads(text))


def _pair_question_key(judgment: StoredPair) -> tuple[str, str, str]:
    """Return what a newest question is chosen per: the persona and the pair, either order."""
    low, high = sorted((judgment.first, judgment.second))
    return judgment.persona, low, high


def _pair_question(judgment: StoredPair) -> Key:
    """Return what makes judgments answers to one question, in either order."""
    return replace(judgment.key.question(), card_hashes=())


def _pair_from_row(row: Any) -> StoredPair:
    data = {k: row[k] for k in row.keys() if k not in ("id", "first_tool", "second_tool")}
    data["mitigations"] = _mitigations_of(data["mitigations"])
    data["probabilities"] = _probabilities_of(row)
    return StoredPair(first=row["first_tool"], second=row["second_tool"], **data)


def upsert_tool(db: Connection, card: ToolCard) -> None:
    """Insert the card, or replace the stored card of its slug if its content or findings changed."""
    now = time.time()
    findings = json.dumps([asdict(f) for f in card.findings], ensure_ascii=False)
    db.execute(
        """INSERT INTO tools (slug, card, card_hash, findings, probe, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (slug) DO UPDATE SET card = excluded.card, card_hash = excluded.card_hash,
               findings = excluded.findings, updated_at = excluded.updated_at
           WHERE tools.card_hash != excluded.card_hash OR tools.findings != excluded.findings""",
        (card.slug, card.model_dump_json(), card.content_hash(), findings, card.probe, now, now),
    )


def _card_from_row(row: Any) -> ToolCard:
    card = ToolCard.model_validate_json(row["card"])
    return card.with_findings([Finding(**f) for f in json.loads(row["findings"])])


def _asked(answer: Stored) -> tuple[object, ...]:
    """Return the columns of an answer's key besides its cards, in the order every table of
    answers lists them: persona, prompt version, provider, model, mitigations, temperature,
    sample."""
    how = (answer.persona, answer.prompt_version, answer.provider, answer.model)
    return (*how, mitigations_key(answer.mitigations), answer.temperature, answer.sample)


def mitigations_key(names: tuple[str, ...]) -> str:
    """Return how the store spells a review's mitigations: their names joined by commas."""
    return ",".join(names)


def _upsert_review(db: Connection, card: ToolCard, review: StoredReview) -> None:
    db.execute(
        """INSERT INTO reviews (tool, card_hash, persona, prompt_version, provider, model,
               mitigations, temperature, sample, score, verdict, review, fields, attempts,
               created_at, cost_usd, probabilities)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (card_hash, persona, prompt_version, provider, model, mitigations,
               temperature, sample) DO UPDATE SET
               score = excluded.score, verdict = excluded.verdict, review = excluded.review,
               fields = excluded.fields, attempts = excluded.attempts,
               created_at = excluded.created_at, cost_usd = excluded.cost_usd,
               probabilities = excluded.probabilities""",
        (
            card.slug,
            card.content_hash(),
            *_asked(review),
            review.score,
            review.verdict,
            review.review,
            json.dumps(review.fields, ensure_ascii=False),
            review.attempts,
            review.created_at,
            review.cost_usd,
            _probabilities_json(review.probabilities),
        ),
    )


def _review_from_row(row: Any) -> StoredReview:
    data = {k: row[k] for k in row.keys() if k != "id"}
    data["probabilities"] = _probabilities_of(row)
    data["fields"] = json.loads(data["fields"])
    data["mitigations"] = _mitigations_of(data["mitigations"])
    return StoredReview(**data)


def _mitigations_of(text: str) -> tuple[str, ...]:
    """Return the mitigations as the store spells them (mitigations_key), as names."""
    return tuple(name for name in text.split(",") if name)


def _upsert_page_card(db: Connection, answer: StoredCard) -> None:
    db.execute(
        """INSERT INTO page_cards (url, text_hash, persona, prompt_version, provider, model,
               mitigations, temperature, sample, fields, attempts, created_at, cost_usd)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (text_hash, persona, prompt_version, provider, model, mitigations,
               temperature, sample) DO UPDATE SET
               url = excluded.url, fields = excluded.fields, attempts = excluded.attempts,
               created_at = excluded.created_at, cost_usd = excluded.cost_usd""",
        (
            answer.url,
            answer.text_hash,
            *_asked(answer),
            json.dumps(answer.fields, ensure_ascii=False),
            answer.attempts,
            answer.created_at,
            answer.cost_usd,
        ),
    )


def _page_card_from_row(row: Any) -> StoredCard:
    data = {k: row[k] for k in row.keys() if k not in ("id", "sample", "mitigations")}
    data["fields"] = json.loads(data["fields"])
    return StoredCard(**data)
