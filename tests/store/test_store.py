"""The store on both backends (SQLite file, PostgreSQL URL): what it keeps, and what it refuses.

A database panel did not create is refused in one line and left as it was; reading commands
(`panel log`, `panel queue status`) never create or migrate; a database URL's password is never
shown.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from panel.cards import ToolCard
from panel.errors import ConfigError
from panel.store import CallRecord, Store, StoredReview
from panel.store.migrations import MIGRATIONS
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
        store.save_review(card, review_of(card, "builder", 80, 1.0))
        store.save_review(card, review_of(card, "builder", 40, 2.0))  # same key: replaces
        store.save_review(card, review_of(card, "skeptic", 70, 3.0))
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
        assert len(again.find_samples(card.content_hash(), "skeptic", "v1", "openai", "m")) == 1
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
    try:
        spends = [("requests", 0.5, 1.0)]  # 120 requests a minute, a second of burst
        assert first.reserve("openai", spends) == 0.0
        assert second.reserve("openai", spends) == 0.0
        wait = first.reserve("openai", spends)  # the third within a second: the sum counts
        assert 0.2 < wait <= 0.5
        assert second.reserve("anthropic", spends) == 0.0  # budgets are per provider
        second.hold_off("openai", 30)
        assert first.reserve("openai", [("tokens", 0.0, 1.0)]) > 25
        second.hold_off("openai", 5)  # a shorter pause does not shorten a longer one
        assert first.reserve("openai", spends) > 25
    finally:
        first.close()
        second.close()


def test_mitigations_and_temperature_keep_reviews_apart(db: str, card: ToolCard) -> None:
    store = Store(db)
    try:
        plain = review_of(card, "builder", 80, 1.0)
        store.save_review(card, plain)
        blind = replace(plain, score=40, mitigations=("blind-names",), cost_usd=0.25)
        store.save_review(card, blind)
        warm = replace(plain, score=55, temperature=0.7)
        store.save_review(card, warm)
        args = (card.content_hash(), "builder", "v1", "openai", "m")
        assert [r.score for r in store.find_samples(*args)] == [80]
        found = store.find_samples(*args, mitigations=("blind-names",))
        assert [(r.score, r.mitigations, r.cost_usd) for r in found] == [
            (40, ("blind-names",), 0.25)
        ]
        assert [r.score for r in store.find_samples(*args, temperature=0.7)] == [55]
        latest = store.latest_reviews(card.slug)["builder"]
        assert [r.score for r in latest] == [55]  # the newest question alone, never a mix
    finally:
        store.close()


def test_reviews_made_before_are_unmitigated_at_the_default_rules_temperature(
    db: str, card: ToolCard
) -> None:
    """A store an older panel made: its reviews carry no mitigations and no temperature; the
    migration gives them the temperature the default rule gave (sample 0 at 0, later at 0.7)."""
    from panel.store import migrations
    from panel.store.sql import connect

    before = MIGRATIONS.index(migrations.m_debias_review_conditions)
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
    finally:
        database.close()
    store = Store(db)
    try:
        args = (card.content_hash(), "builder", "v1", "openai", "m")
        assert [(r.sample, r.score) for r in store.find_samples(*args, 2)] == [(0, 70)]
        warm = store.find_samples(*args, 2, temperature=0.7)
        assert [(r.sample, r.score, r.mitigations, r.cost_usd) for r in warm] == [(1, 50, (), None)]
    finally:
        store.close()
