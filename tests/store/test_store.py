"""The store on both backends (SQLite file, PostgreSQL URL): what it keeps, and what it refuses.

A database panel did not create is refused in one line and left as it was; reading commands
(`panel log`, `panel queue status`) never create or migrate; a database URL's password is never
shown.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from panel.cards import ToolCard
from panel.errors import ConfigError, StoreUnavailable
from panel.rules import MAX_RETRY_AFTER
from panel.store import PAIR, REVIEW, CallRecord, Key, Store, StoredPair, StoredReview
from panel.store.migrations import MIGRATIONS
from panel.store.sql import Connection, connect
from panel.testing.postgres import PASSWORD, PASSWORD_ROLE, PostgresServer
from tests.cli.test_cli import panel
from tests.queue.test_queue import query


def review_of(card: ToolCard, persona: str, score: int, at: float) -> StoredReview:
    return StoredReview(
        tool=card.slug,
        card_hash=card.content_hash(),
        persona=persona,
        prompt_version="v1",
        provider="openai",
        model="m",
        score=score,
        verdict="ship" if score >= 60 else "skip",
        review="A review.",
        fields={"primitive": "x"},
        attempts=1,
        created_at=at,
    )


def test_the_store_keeps_tools_reviews_votes_comparisons_and_calls(db: str, card: ToolCard) -> None:
    store = Store(db)
    try:
        store.save((card,), review_of(card, "builder", 80, 1.0))
        store.save((card,), review_of(card, "builder", 40, 2.0))  # same key: replaces
        store.save((card,), review_of(card, "skeptic", 70, 3.0))
        assert store.get_tool(card.slug) == card and store.tools() == [card]
        latest = store.latest_reviews(card.slug)
        assert {k: [r.score for r in v] for k, v in latest.items()} == {
            "builder": [40],
            "skeptic": [70],
        }
        assert latest["builder"][0].fields == {"primitive": "x"}
        store.save_vote(card.slug, "ana", "ship")
        store.save_vote(card.slug, "ana", "skip")
        store.save_vote(card.slug, "bo", "ship")
        assert store.vote_counts(card.slug) == (1, 1)
        store.save_comparison(card.slug, card.slug)
        assert [c[:2] for c in store.comparisons()] == [(card.slug, card.slug)]
        store.log_call(
            CallRecord(
                "openai", "m", card.slug, "builder", "h", 12, 3, 4, cached_tokens=2, cost_usd=0.5
            )
        )
        assert store.count_calls() == 1 and store.recent_calls()[0].cost_usd == 0.5
        assert store.recent_calls()[0].cached_tokens == 2
        store.log_call(CallRecord("openai", "m", card.slug, "skeptic", "h", 12, 3, 8))
        store.log_call(
            CallRecord("openai", "m", card.slug, "founder", "h", 12, 3, 90, outcome="invalid")
        )
        assert store.output_tokens_seen("openai", "m") == 6.0  # answered calls only
        assert store.output_tokens_seen("openai", "other") is None
    finally:
        store.close()
    again = Store(db, write=False)  # reopened to read: same schema, nothing to migrate
    try:
        assert (
            len(again.find(Key(REVIEW, (card.content_hash(),), "skeptic", "v1", "openai", "m")))
            == 1
        )
    finally:
        again.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "argv",
    [("log",), ("queue", "status"), ("vote", "x", "ship"), ("site", "build")],
)
def test_a_sqlite_file_panel_did_not_make_is_refused_and_left_unchanged(
    tmp_path: Path, argv: tuple[str, ...]
) -> None:
    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE notes (body TEXT)")
        con.execute("INSERT INTO notes VALUES ('mine')")
    con.close()
    before = digest(foreign)
    result = panel(*argv, "--db", foreign)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "not a panel database" in result.stderr
    assert digest(foreign) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]  # no -wal, no -shm


def test_reading_commands_never_create_or_migrate(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    for argv in (("log",), ("queue", "status")):
        result = panel(*argv, "--db", missing)
        assert result.returncode == 2 and "no store yet" in result.stderr, result.stderr
    assert not missing.exists()
    old = tmp_path / "old.db"
    Store(old).close()
    with sqlite3.connect(old) as con:  # as an older panel left it: one migration fewer
        con.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")
    con.close()
    before = digest(old)
    result = panel("log", "--db", old)
    assert result.returncode == 2 and "older panel" in result.stderr, result.stderr
    assert digest(old) == before


def test_a_postgres_database_panel_did_not_make_or_a_newer_one_is_refused(
    postgres: PostgresServer,
) -> None:
    foreign = postgres.database()
    name = foreign.split("/")[3].split("?")[0]
    postgres.admin("CREATE TABLE notes (body TEXT)", name)
    for argv in (("log",), ("queue", "status"), ("vote", "x", "ship")):
        result = panel(*argv, "--db", foreign)
        assert result.returncode == 2 and "not a panel database" in result.stderr, result.stderr
    assert postgres.admin("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", name) == [
        ("notes",)
    ]
    empty = postgres.database()
    result = panel("queue", "status", "--db", empty)
    assert result.returncode == 2 and "no store yet" in result.stderr
    assert query(empty, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    Store(empty).close()
    postgres.admin(
        f"UPDATE panel_schema SET version = {len(MIGRATIONS) + 1}",
        empty.split("/")[3].split("?")[0],
    )
    with pytest.raises(ConfigError, match="newer panel"):
        Store(empty)


def test_bad_database_urls_are_one_line_and_never_show_the_password(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    name = postgres.database().split("/")[3].split("?")[0]
    wrong = postgres.url(name, user=PASSWORD_ROLE, password="Wr0ng-" + PASSWORD)
    unreachable = f"postgresql://{PASSWORD_ROLE}:{PASSWORD}@/{name}?host={tmp_path}"
    cases = [
        (wrong, "password authentication failed"),
        (unreachable, "cannot connect"),
        (f"mysql://u:{PASSWORD}@localhost/db", "unknown database scheme 'mysql'"),
    ]
    for url, fragment in cases:
        for argv in (("log",), ("queue", "status"), ("vote", "x", "ship")):
            result = panel(*argv, "--db", url)
            assert result.returncode == 2, result.stderr
            assert fragment in result.stderr and result.stderr.count("\n") == 1, result.stderr
            assert PASSWORD not in result.stderr + result.stdout
    right = postgres.url(name, user=PASSWORD_ROLE, password=PASSWORD)
    assert panel("vote", "x", "ship", "--db", right).returncode == 2  # no such tool: a store
    listed = panel("log", "--db", right, env={"PANEL_DB": right})
    assert listed.returncode == 0 and PASSWORD not in listed.stdout + listed.stderr


def test_rate_budgets_are_shared_and_a_retry_after_pauses_every_worker(db: str) -> None:
    first, second = Store(db), Store(db)  # two workers' connections to one store
    api, local = "https://api.openai.com/v1", "http://127.0.0.1:8000/v1"
    try:
        spends = [("requests", 0.5, 1.0)]  # 120 requests a minute, a second of burst
        assert first.reserve("openai", api, spends) == 0.0
        assert second.reserve("openai", api, spends) == 0.0
        wait = first.reserve("openai", api, spends)  # the third within a second: the sum counts
        assert 0.2 < wait <= 0.5
        assert second.reserve("anthropic", api, spends) == 0.0  # budgets are per provider
        assert second.reserve("openai", local, spends) == 0.0  # ... and per endpoint
        second.hold_off("openai", api, 30)
        assert first.reserve("openai", api, [("tokens", 0.0, 1.0)]) > 25
        assert first.reserve("openai", local, [("tokens", 0.0, 1.0)]) == 0.0
        second.hold_off("openai", api, 5)  # a shorter pause does not shorten a longer one
        assert first.reserve("openai", api, spends) > 25
        [pause] = first.pauses()
        assert (pause["provider"], pause["endpoint"]) == ("openai", api)
        assert 25 < pause["seconds_left"] <= 30
    finally:
        first.close()
        second.close()


def test_the_store_keeps_pair_judgments_by_both_cards_and_the_order(
    db: str, card: ToolCard
) -> None:
    other = card.model_copy(update={"slug": "other", "name": "Other", "description": "Else."})
    store = Store(db)

    def judged(
        first: ToolCard, second: ToolCard, prefers: str, at: float, **more: Any
    ) -> StoredPair:
        return StoredPair(
            first=first.slug,
            second=second.slug,
            first_hash=first.content_hash(),
            second_hash=second.content_hash(),
            persona="builder",
            prompt_version=more.get("version", "p1"),
            provider="openai",
            model="m",
            prefers=prefers,
            reason="It ships.",
            attempts=1,
            created_at=at,
            sample=more.get("sample", 0),
        )

    try:
        store.save((card, other), judged(card, other, "first", 1.0))
        store.save((card, other), judged(card, other, "second", 2.0))  # same key: replaces
        store.save((other, card), judged(other, card, "tie", 3.0))  # the other order
        assert {t.slug for t in store.tools()} == {card.slug, "other"}  # both cards stored
        key = Key(PAIR, (card.content_hash(), other.content_hash()), "builder", "p1", "openai", "m")
        found = store.find(key)
        assert [(j.first, j.prefers) for j in found] == [(card.slug, "second")]
        latest = store.latest_pairs((other.slug, card.slug))
        assert sorted((j.first, j.prefers) for j in latest) == sorted(
            [(card.slug, "second"), ("other", "tie")]
        )
        store.save((card, other), judged(card, other, "first", 4.0, version="p2"))
        newest = store.latest_pairs()  # the newest question of the pair and persona only
        assert [(j.prompt_version, j.prefers) for j in newest] == [("p2", "first")]
        edited = other.model_copy(update={"description": "Edited."})
        store.save_tool(edited)  # an edited card makes its pairs stale
        assert store.latest_pairs() == []
        assert store.find(key) != []  # kept, under the old content
    finally:
        store.close()


def test_vote_totals_stay_exact_when_writers_race(db: str, card: ToolCard) -> None:
    """Threads with connections of their own cast, change and repeat votes on one tool at once:
    the kept totals equal a count of the votes stored (each change moved them exactly once)."""
    import random
    import threading

    setup = Store(db)
    setup.save_tool(card)
    setup.close()

    def voting(seed: int) -> None:
        rng = random.Random(seed)
        store = Store(db)
        try:
            for _ in range(40):
                store.save_vote(
                    card.slug, f"voter-{rng.randrange(6)}", rng.choice(("ship", "skip"))
                )
        finally:
            store.close()

    threads = [threading.Thread(target=voting, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store = Store(db)
    try:
        rows = store.db.execute("SELECT vote FROM votes WHERE tool = ?", (card.slug,)).fetchall()
        recount = (sum(r[0] == "ship" for r in rows), sum(r[0] == "skip" for r in rows))
        assert store.vote_counts(card.slug) == recount
        assert sum(recount) == 6
    finally:
        store.close()


@contextlib.contextmanager
def store_before(migration: str, db: str, card: ToolCard) -> Iterator[Connection]:
    """Make db as an older panel left it, every migration before `migration` applied and card
    stored, and yield a connection inside that transaction to fill it."""
    before = [step.__name__ for step in MIGRATIONS].index(migration)
    database = connect(db, create=True)
    try:
        database.prepare()
        with database.transaction() as con:
            for number, step in enumerate(MIGRATIONS[:before], start=1):
                step(con, database.dialect)
                database.set_schema_version(con, number)
            con.execute(
                "INSERT INTO tools (slug, card, card_hash, created_at, updated_at)"
                " VALUES (?, ?, ?, 0, 0)",
                (card.slug, card.model_dump_json(), card.content_hash()),
            )
            yield con
    finally:
        database.close()


def test_vote_totals_are_filled_from_the_votes_of_an_older_store(db: str, card: ToolCard) -> None:
    """A store an older panel made, with votes and no vote_totals: the migration counts them."""
    with store_before("m012_serve_vote_totals", db, card) as con:
        for voter, vote in (("ana", "ship"), ("bo", "ship"), ("cy", "skip")):
            con.execute(
                "INSERT INTO votes (tool, voter, vote, at) VALUES (?, ?, ?, 0)",
                (card.slug, voter, vote),
            )
    store = Store(db)  # a command that writes upgrades it
    try:
        assert store.vote_counts(card.slug) == (2, 1)
    finally:
        store.close()


def test_vote_networks_are_counted_from_an_older_store_on(db: str, card: ToolCard) -> None:
    """Votes from before networks were kept count as a network each; new web votes count by
    their network, once per network; a voter's changed vote keeps its first network; the day's
    count of a network's voters reads only recent votes of that network."""
    from panel.store import insert_vote, vote_standing

    with store_before("m016_vote_networks", db, card) as con:
        for voter in ("ana", "bo"):
            con.execute(
                "INSERT INTO votes (tool, voter, vote, at) VALUES (?, ?, 'ship', 0)",
                (card.slug, voter),
            )
        con.execute("INSERT INTO vote_totals (tool, ship, skip) VALUES (?, 2, 0)", (card.slug,))
    store = Store(db)
    here, there = ("192.0.2.1", "192.0.2.1"), ("2001:db8:1:1::/64", "2001:db8:1::/48")
    try:
        assert store.vote_summary(card.slug) == (2, 0, 2)
        with store.transaction() as con:
            insert_vote(con, card.slug, "web:a", "ship", here)
            insert_vote(con, card.slug, "web:b", "skip", here)
            insert_vote(con, card.slug, "web:c", "skip", there)
            insert_vote(con, card.slug, "web:a", "skip", there)  # changed: still from here
        assert store.vote_summary(card.slug) == (2, 3, 4)
        now, later = time.time(), time.time() + 60
        with store.transaction() as con:
            standing = vote_standing(con, card.slug, "web:a", here, now - 60)
            assert standing.tool_known and standing.voted
            assert [n for n, _ in standing.recent] == [2, 2]
            fresh = vote_standing(con, card.slug, "web:new", there, now - 60)
            assert not fresh.voted and [n for n, _ in fresh.recent] == [1, 1]
            assert all(abs(at - now) < 60 for _, at in fresh.recent)
            assert vote_standing(con, card.slug, "web:new", here, later).recent == [(0, later)] * 2
            assert not vote_standing(con, "no-such-tool", "web:a", here, now).tool_known
    finally:
        store.close()


def test_spent_budgets_of_quiet_clients_are_forgotten(db: str) -> None:
    store = Store(db)
    try:
        spent, held = [("votes", 0.001, 60.0)], [("votes", 3600.0, 3600.0)]
        assert store.reserve("votes@192.0.2.1", "", spent) == 0.0  # spent by now
        assert store.reserve("votes@192.0.2.2", "", held) == 0.0  # an hour on
        assert store.reserve("openai", "", [("requests", 0.001, 1.0)]) == 0.0  # not a vote budget
        time.sleep(0.05)
        assert store.forget_budgets("votes@") == 1
        rows = store.db.execute("SELECT provider FROM rate_limits ORDER BY provider").fetchall()
        assert [row[0] for row in rows] == ["openai", "votes@192.0.2.2"]
        assert store.reserve("votes@192.0.2.2", "", held) > 0  # still held
    finally:
        store.close()


def test_a_stored_pause_is_capped_and_nonsense_pauses_nothing(db: str) -> None:
    """Finding 1 of issue 22: a Retry-After of 31 years, NaN or a negative wait."""
    store = Store(db)
    url = "http://127.0.0.1:9/v1"
    try:
        for nonsense in (float("nan"), float("inf"), -5.0, float("-inf")):
            store.hold_off("openai", url, nonsense)
        assert store.pauses() == []
        store.hold_off("openai", url, 999_999_999)
        [pause] = store.pauses()
        assert 55 < pause["seconds_left"] <= MAX_RETRY_AFTER
        assert 55 < store.reserve("openai", url, [("requests", 0.1, 1.0)]) <= MAX_RETRY_AFTER
    finally:
        store.close()


def test_mitigations_and_temperature_keep_reviews_apart(db: str, card: ToolCard) -> None:
    store = Store(db)
    try:
        plain = review_of(card, "builder", 80, 1.0)
        store.save((card,), plain)
        blind = replace(plain, score=40, mitigations=("blind-names",), cost_usd=0.25)
        store.save((card,), blind)
        warm = replace(plain, score=55, temperature=0.7)
        store.save((card,), warm)
        key = Key(REVIEW, (card.content_hash(),), "builder", "v1", "openai", "m")
        assert [r.score for r in store.find(key)] == [80]
        found = store.find(replace(key, mitigations=("blind-names",)))
        assert [(r.score, r.mitigations, r.cost_usd) for r in found] == [
            (40, ("blind-names",), 0.25)
        ]
        assert [r.score for r in store.find(replace(key, temperature=0.7))] == [55]
        latest = store.latest_reviews(card.slug)["builder"]
        assert [r.score for r in latest] == [55]  # the newest question alone, never a mix
    finally:
        store.close()


def test_reviews_made_before_are_unmitigated_at_the_default_rules_temperature(
    db: str, card: ToolCard
) -> None:
    """A store an older panel made: its reviews carry no mitigations and no temperature; the
    migration gives them the temperature the default rule gave (sample 0 at 0, later at 0.7)."""
    with store_before("m014_review_conditions", db, card) as con:
        for sample, score in enumerate((70, 50)):
            con.execute(
                """INSERT INTO reviews (tool, card_hash, persona, prompt_version, provider,
                       model, sample, score, verdict, review, fields, attempts, created_at)
                   VALUES (?, ?, 'builder', 'v1', 'openai', 'm', ?, ?, ?, 'A review.', '{}',
                       1, 1.0)""",
                (
                    card.slug,
                    card.content_hash(),
                    sample,
                    score,
                    "ship" if score >= 60 else "skip",
                ),
            )
    store = Store(db)
    try:
        key = Key(REVIEW, (card.content_hash(),), "builder", "v1", "openai", "m")
        assert [(r.sample, r.score) for r in store.find(key, 2)] == [(0, 70)]
        warm = store.find(replace(key, temperature=0.7), 2)
        assert [(r.sample, r.score, r.mitigations, r.cost_usd) for r in warm] == [(1, 50, (), None)]
    finally:
        store.close()


@pytest.mark.parametrize("kind", [REVIEW, PAIR])
def test_a_paid_answer_outlasts_a_restart_during_its_save(
    db: str, card: ToolCard, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 28: Store.save_pair did not try again when the database went away in the middle of
    the transaction, as save_review did: a paid pair judgment was lost to a restart. Every kind
    of answer is saved by one save, which does."""
    other = card.model_copy(update={"slug": "other", "name": "Other", "description": "Else."})
    answer: StoredReview | StoredPair = review_of(card, "builder", 80, 1.0)
    cards: tuple[ToolCard, ...] = (card,)
    if kind == PAIR:
        cards = (card, other)
        answer = StoredPair(
            first=card.slug,
            second=other.slug,
            first_hash=card.content_hash(),
            second_hash=other.content_hash(),
            persona="builder",
            prompt_version="p1",
            provider="openai",
            model="m",
            prefers="second",
            reason="It ships.",
            attempts=1,
            created_at=1.0,
            mitigations=("blind-names",),
            temperature=0.7,
        )
    call = CallRecord(
        provider="openai", model="m", tool="x", persona="builder", prompt_hash="h", latency_ms=5
    )
    store = Store(db)
    real, restarts = store.transaction, []

    @contextlib.contextmanager
    def restarting() -> Iterator[Connection]:
        with real() as con:
            yield con
            if not restarts:  # the database goes away before the commit: all of it rolls back
                restarts.append(1)
                raise StoreUnavailable("the database went away (a restart)")

    try:
        monkeypatch.setattr(store, "transaction", restarting)
        store.save(cards, answer, call=call)
        monkeypatch.undo()
        assert restarts == [1]
        assert store.find(answer.key) == [answer], "the answer was kept"
        assert store.count_calls() == 1, "its call logged once"
    finally:
        store.close()


def test_pair_judgments_made_before_keep_every_row_unmitigated(db: str, card: ToolCard) -> None:
    """A store today's main made (issue 28's m015 not applied): its pair judgments are kept,
    every row, unmitigated and at the temperature the default rule gave them (sample 0 at 0,
    later samples at 0.7), and found under the one key."""
    other = card.model_copy(update={"slug": "other", "name": "Other", "description": "Else."})
    with store_before("m015_pair_conditions", db, card) as con:
        con.execute(
            "INSERT INTO tools (slug, card, card_hash, created_at, updated_at)"
            " VALUES (?, ?, ?, 0, 0)",
            (other.slug, other.model_dump_json(), other.content_hash()),
        )
        for first, second in ((card, other), (other, card)):
            for sample in (0, 1):
                con.execute(
                    """INSERT INTO pair_judgments (first_tool, second_tool, first_hash,
                           second_hash, persona, prompt_version, provider, model, sample,
                           prefers, reason, attempts, created_at)
                       VALUES (?, ?, ?, ?, 'builder', 'p1', 'openai', 'm', ?, 'first',
                           'It ships the primitive.', 1, 1.0)""",
                    (first.slug, second.slug, first.content_hash(), second.content_hash(), sample),
                )
    store = Store(db)
    try:
        rows = store.db.execute(
            """SELECT first_tool, sample, mitigations, temperature FROM pair_judgments
               ORDER BY first_tool, sample"""
        ).fetchall()
        assert sorted(tuple(row) for row in rows) == sorted(
            (first, sample, "", 0.7 if sample else 0.0)
            for first in (card.slug, "other")
            for sample in (0, 1)
        )
        key = Key(PAIR, (card.content_hash(), other.content_hash()), "builder", "p1", "openai", "m")
        assert [j.sample for j in store.find(key, 2)] == [0]
        assert [j.sample for j in store.find(replace(key, temperature=0.7), 2)] == [1]
        assert len(store.latest_pairs((card.slug, other.slug))) == 2  # the newest question only
    finally:
        store.close()
