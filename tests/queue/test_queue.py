"""The batch queue: idempotent adds, one review per tool, failures, retries, crashes, two workers."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from panel.testing.fakes.openai import FakeOpenAI, Fault, answer_for, prompt_text
from tests.cli.test_cli import panel

SEED = (
    Path(__file__).resolve().parents[2]
    / "examples"
    / "seeds"
    / "000-smolvlm-3b-vs-mistral-8x22b-v2.jsonl"
)


def make_cards(folder: Path, count: int) -> list[Path]:
    """Write count distinct tool cards into folder and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"tool-{i:02d}.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "name": f"Tool {i:02d}",
                    "tagline": f"Does thing number {i}",
                    "description": f"Tool {i} does a useful thing for developers.",
                    "entry": "Free",
                }
            )
        )
        paths.append(path)
    return paths


def pairs_file(folder: Path, cards: list[Path], count: int) -> Path:
    """Write a CSV of `count` pairs over cards (every card used) and return its path."""
    lines = ["a,b"]
    n = len(cards)
    ring = [(i, (i + step) % n) for step in range(1, n // 2) for i in range(n)]  # distinct pairs
    for i, j in ring[:count]:
        lines.append(f"{cards[i]},{cards[j]}")
    path = folder / "pairs.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def env_for(server: FakeOpenAI, db: Path | str, out: Path) -> dict[str, str]:
    return {
        "PANEL_PROVIDER": "openai",
        "PANEL_BASE_URL": server.base_url,
        "PANEL_MODEL": "fake-model",
        "PANEL_DB": str(db),
        "PANEL_OUT": str(out),
        "OPENAI_API_KEY": "sk-test-queue-key-123456",
    }


def query(db: Path | str, sql: str) -> list[Any]:
    """Return the rows of sql in a store: a SQLite path or a PostgreSQL URL."""
    if str(db).startswith("postgresql://"):
        import psycopg

        with psycopg.connect(str(db)) as pg:
            return [tuple(row) for row in pg.execute(sql.encode()).fetchall()]
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_every_tool_is_reviewed_once_across_the_batch(tmp_path: Path, db: str) -> None:
    cards = make_cards(tmp_path / "cards", 10)
    pairs = pairs_file(tmp_path, cards, 14)
    out = tmp_path / "out"
    with FakeOpenAI(latency=0.05) as server:
        env = env_for(server, db, out)
        added = panel("queue", "add", pairs, env=env)
        assert added.returncode == 0, added.stderr
        assert (
            "queued 14 comparison(s) (0 already queued or done) over 10 tool(s): 40 review(s), "
            "40 to run (0 stored already)" in added.stdout
        )
        again = panel("queue", "add", pairs, "--json", env=env)
        assert json.loads(again.stdout)["jobs"] == 0
        result = panel("queue", "run", "--concurrency", "8", "--json", env=env)
        assert result.returncode == 0, result.stderr
        run = json.loads(result.stdout)["run"]
        assert run["jobs_done"] == 14 and run["calls"] == 40 == server.answered
    assert len(list((out / "compare").glob("*.html"))) == 14
    assert query(db, "SELECT count(*) FROM reviews") == [(40,)]
    status = json.loads(panel("queue", "status", "--json", "--db", db).stdout)
    assert status["jobs"] == {"pending": 0, "running": 0, "done": 14, "failed": 0}
    assert all(job["files"]["html"].endswith(".html") for job in status["all"])


def test_where_a_site_is_built_the_run_writes_its_pages_with_the_pages_that_show_them(
    tmp_path: Path,
) -> None:
    """The runner leaves a built site's comparison pages to the run's refresh (from what the run
    stored), which writes them with the tools' pages and the listings, as a full build would."""
    cards = make_cards(tmp_path / "cards", 6)
    out, db = tmp_path / "out", tmp_path / "panel.db"
    with FakeOpenAI() as server:
        env = env_for(server, db, out)
        assert panel("queue", "add", pairs_file(tmp_path, cards, 3), env=env).returncode == 0
        assert panel("queue", "run", env=env).returncode == 0
        assert panel("site", "build", env=env).returncode == 0
        assert panel("queue", "add", pairs_file(tmp_path, cards, 8), env=env).returncode == 0
        result = panel("queue", "run", "--json", env=env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["run"]["jobs_done"] == 5
        status = json.loads(panel("queue", "status", "--json", env=env).stdout)
        assert all(Path(job["files"]["html"]).is_file() for job in status["all"])
        for name in [Path(job["files"]["html"]).name for job in status["all"]]:
            assert name in (out / "browse" / "comparisons" / "index.html").read_text()
        full = tmp_path / "full"
        done = panel("site", "build", "--full", "--out", str(full), env=env)
        assert done.returncode == 0, done.stderr
    for path in full.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            assert path.read_bytes() == (out / path.relative_to(full)).read_bytes(), path


def test_tools_already_reviewed_cost_nothing(tmp_path: Path, db: str) -> None:
    out = tmp_path / "out"
    assert panel("import", SEED, "--db", db).returncode == 0
    (tmp_path / "q.jsonl").write_text('{"a": "smolvlm-3b", "b": "mistral-8x22b-v2"}\n')
    (tmp_path / "r.jsonl").write_text('{"a": "mistral-8x22b-v2", "b": "smolvlm-3b"}\n')
    with FakeOpenAI() as server:
        env = env_for(server, db, out)
        assert (
            "8 review(s), 0 to run (8 stored already)"
            in panel("queue", "add", tmp_path / "q.jsonl", env=env).stdout
        )
        assert panel("queue", "run", env=env).returncode == 0
        # The imported reviews were written by another model: this run's model reviews both.
        assert server.requests == 8
        assert (
            "8 review(s), 0 to run (8 stored already)"
            in panel("queue", "add", tmp_path / "r.jsonl", env=env).stdout
        )
        assert panel("queue", "run", env=env).returncode == 0
        assert server.requests == 8, "reviews this run's model wrote are reused"
        page = (out / "compare" / "mistral-8x22b-v2-vs-smolvlm-3b.html").read_text()
        assert "(import)" not in page and "(openai)" in page


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("a,b\nonly-one\n", ":2: each line must be two tools"),
        ("ghost,other\n", ":1: ghost: neither a card file nor the slug"),
        ('{"a": 1}\n', ":1: each line must be"),
        ("", "no pairs in file"),
    ],
)
def test_bad_queue_files_add_nothing(tmp_path: Path, content: str, fragment: str, db: str) -> None:
    path = tmp_path / ("q.jsonl" if content.startswith("{") else "q.csv")
    path.write_text(content)
    result = panel("queue", "add", path, "--db", db)
    assert result.returncode == 2 and fragment in result.stderr, result.stderr
    assert query(db, "SELECT count(*) FROM jobs") == [(0,)]


def test_a_failing_review_fails_its_jobs_and_the_rest_drain(tmp_path: Path, db: str) -> None:
    cards = make_cards(tmp_path / "cards", 4)
    (tmp_path / "q.csv").write_text(f"{cards[0]},{cards[1]}\n{cards[2]},{cards[3]}\n")
    out = tmp_path / "out"

    def fault(number: int, body: dict[str, Any]) -> Fault | None:
        user = prompt_text(body["messages"])
        return Fault(status=400) if "Tool 00" in user and "Founder" in user else None

    with FakeOpenAI(fault=fault) as server:
        env = env_for(server, db, out)
        panel("queue", "add", tmp_path / "q.csv", env=env)
        result = panel("queue", "run", "--max-attempts", "2", env=env)
        assert result.returncode == 1
        status = panel("queue", "status", env=env)
        assert "done 1" in status.stdout and "failed 1" in status.stdout
        assert (
            "failed #1 tool-00 vs tool-01 after" in status.stdout
            and "tool-00: founder: failed after 2 attempt(s)" in status.stdout
        )
        server.fault = None
        assert "requeued 1 failed job(s)" in panel("queue", "retry", "--failed", env=env).stdout
        assert panel("queue", "run", env=env).returncode == 0
    assert query(db, "SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state") == [
        ("done", 2)
    ]


def test_two_runners_share_the_work(tmp_path: Path, db: str) -> None:
    cards = make_cards(tmp_path / "cards", 10)
    pairs = pairs_file(tmp_path, cards, 12)
    out = tmp_path / "out"
    with FakeOpenAI(latency=0.1) as server:
        env = {**os.environ, **env_for(server, db, out)}
        assert panel("queue", "add", pairs, env=env).returncode == 0
        runners = [
            subprocess.Popen(
                [sys.executable, "-m", "panel", "queue", "run", "-c", "3", "--json"],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [json.loads(r.communicate(timeout=120)[0])["run"] for r in runners]
        assert server.answered == 40, "no review may be done twice"
    assert sum(o["reviews_done"] for o in outputs) == 40
    assert sum(o["jobs_done"] for o in outputs) == 12
    assert all(o["reviews_done"] > 0 for o in outputs), "both runners must take part"


def test_a_review_stored_meanwhile_is_not_reopened(tmp_path: Path, db: str) -> None:
    """The race behind `assert 41 == 40` (two runners, PostgreSQL): one runner decided a task's
    review was missing, the other stored it and finished the task, then the first reopened the
    done task, and it was claimed and "done" again. add_tasks now looks again inside its
    transaction: a review stored since the look keeps its task done."""
    import asyncio

    from panel.config import Settings
    from panel.questions import review_of
    from panel.queue.store import QueueStore, Unit, finish_in
    from panel.runtime import open_runtime
    from panel.store import REVIEW, Store

    cards = make_cards(tmp_path / "cards", 2)
    (tmp_path / "q.csv").write_text(f"{cards[0]},{cards[1]}\n")
    assert panel("queue", "add", tmp_path / "q.csv", "--db", db).returncode == 0
    settings = Settings(db=db, provider="local", out=tmp_path / "out", local_model="tiny")
    store = Store(db)
    runtime = open_runtime(settings, store=store)
    try:
        queue = QueueStore(store)
        card = runtime.tool("tool-00")
        assert card is not None
        builder = next(p for p in runtime.personas if p.key == "builder")
        question = review_of(card, builder, 1)
        assert runtime.reviewer.stored(question) == []
        # Another process stores the review and finishes the task...
        review = made_elsewhere(runtime.reviewer, question)
        unit = Unit(REVIEW, (card.slug,), "builder")
        store.save((card,), review, then=lambda c: finish_in(c, unit))
        # ...after this runner looked and found it missing (the look is replayed here).
        reopen_after_a_stale_look(runtime, queue)
    finally:
        asyncio.run(runtime.aclose())
        store.close()
    assert query(db, "SELECT state FROM tasks WHERE tool = 'tool-00' AND persona = 'builder'") == [
        ("done",)
    ], "a task whose review was stored meanwhile stays done"
    assert query(db, "SELECT count(*) FROM tasks WHERE state = 'pending'") == [(7,)]


def test_a_pair_task_finished_meanwhile_is_not_reopened(tmp_path: Path, db: str) -> None:
    """Issue 28: the look again inside the transaction (issue 22) covered review tasks only: a
    pair task another worker finished between this runner's look and its write was put back,
    claimed and "done" again. Every kind of unit reopens through one add_units, which looks."""
    import asyncio

    from panel.config import Settings
    from panel.queue.store import QueueStore, Unit, finish_in
    from panel.runtime import open_runtime
    from panel.store import PAIR, Store

    cards = make_cards(tmp_path / "cards", 2)
    (tmp_path / "q.csv").write_text(f"{cards[0]},{cards[1]}\n")
    assert panel("queue", "add", tmp_path / "q.csv", "--pairwise", "--db", db).returncode == 0
    settings = Settings(db=db, provider="local", out=tmp_path / "out", local_model="tiny")
    store = Store(db)
    runtime = open_runtime(settings, store=store)
    try:
        pair = (runtime.tool("tool-00"), runtime.tool("tool-01"))
        assert pair[0] is not None and pair[1] is not None
        # Another process judges the pair in both orders and finishes the pair task...
        unit = Unit(PAIR, ("tool-00", "tool-01"), "builder")
        for n, question in enumerate(runtime.questions(PAIR, pair, "builder", 1)):
            then = (lambda c: finish_in(c, unit)) if n == 1 else None
            store.save(question.cards, made_elsewhere(runtime.reviewer, question), then=then)
        # ...after this runner looked and found the judgments missing (the look replayed here).
        reopen_after_a_stale_look(runtime, QueueStore(store))
    finally:
        asyncio.run(runtime.aclose())
        store.close()
    assert query(db, "SELECT persona, state FROM pair_tasks ORDER BY persona") == [
        ("builder", "done"),
        ("founder", "pending"),
        ("futurist", "pending"),
        ("skeptic", "pending"),
    ], "a pair task whose judgments were stored meanwhile stays done"


def reopen_after_a_stale_look(runtime: Any, queue: Any) -> None:
    """Run a queue runner's reopen_stale as if its look at the store had found nothing stored
    (the look it made before another worker stored the answers)."""
    from panel.queue.runner import QueueRunner
    from panel.review import Reviewer

    stale = Reviewer.stored
    try:
        Reviewer.stored = lambda self, question: []  # type: ignore[method-assign,assignment,return-value]
        QueueRunner(runtime, queue, concurrency=1).reopen_stale()
    finally:
        Reviewer.stored = stale  # type: ignore[method-assign]


def made_elsewhere(reviewer: Any, question: Any) -> Any:
    """Return the answer another worker would store for sample 0 of a question."""
    from panel.questions import asked

    call = reviewer.call(question, 0)
    model = question.kind.answer_model(question.persona)
    answer = model.model_validate(answer_for(call.request.schema, score=70))
    how = asked(call.provider.name, call.request, 1)
    return question.kind.record(question.cards, answer, how, None)


def run_at_the_ceiling(
    db: Path, out: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run the queue at 64 in flight under a $0.04 ceiling on claude-haiku-4-5 (the loopback
    Anthropic server in env): a run the ceiling must stop with exit 3. Raises TimeoutExpired
    after 60 s (a hang)."""
    return panel(
        "queue",
        "run",
        "-c",
        "64",
        "--max-cost",
        "0.04",
        "--provider",
        "anthropic",
        "--model",
        "claude-haiku-4-5",
        "--db",
        db,
        "--out",
        out,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_the_ceiling_ends_a_run_with_exit_3_at_64_in_flight(tmp_path: Path, attempt: int) -> None:
    """Finding 8 of issue 22: `queue run --max-cost` hung instead of exiting 3 whenever there were
    more workers than open tasks (concurrency 64, ceiling $0.04: 2 hangs in 2); the worker that
    reached the ceiling woke one idle worker, and idle workers waited with no timeout."""
    from panel.testing.fakes.anthropic import FakeAnthropicBatches

    cards = make_cards(tmp_path / "cards", 4)  # 16 tasks of 3 samples for 64 workers
    (tmp_path / "q.csv").write_text(
        f"{cards[0]},{cards[1]}\n{cards[2]},{cards[3]}\n{cards[0]},{cards[2]}\n"
    )
    db = tmp_path / "panel.db"
    assert panel("queue", "add", tmp_path / "q.csv", "--samples", "3", "--db", db).returncode == 0
    with FakeAnthropicBatches(live=True) as server:
        env = {"ANTHROPIC_API_KEY": "sk-ant-test-0000000000", "ANTHROPIC_BASE_URL": server.url}
        result = run_at_the_ceiling(db, tmp_path / "out", env)
        calls = server.live_calls
    assert result.returncode == 3, result.stderr
    assert "cost ceiling reached" in result.stderr
    assert 0 < calls < 48, "the ceiling stopped the run before its 48 calls"


def test_leases_are_timed_on_the_databases_clock(
    tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22: leases used each machine's own clock. A worker whose clock ran an hour behind
    wrote leases that had ended before they began, so a worker with the right time took its
    units at once and made the same calls again."""
    import time

    from panel.queue.store import QueueStore
    from panel.store import REVIEW, Store

    cards = make_cards(tmp_path / "cards", 2)
    (tmp_path / "q.csv").write_text(f"{cards[0]},{cards[1]}\n")
    assert panel("queue", "add", tmp_path / "q.csv", "--db", db).returncode == 0
    store = Store(db)
    try:
        queue = QueueStore(store)
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() - 3600)  # this machine is an hour behind
        behind = queue.claim(REVIEW, "behind", 30.0)
        monkeypatch.setattr(time, "time", real)
        right = queue.claim(REVIEW, "right", 30.0)
        assert behind is not None and right is not None
        assert right != behind, "a unit under a live lease was taken again"
        [(left,)] = query(
            db,
            "SELECT lease_expires FROM tasks WHERE lease_owner = 'behind'",
        )
        assert abs(left - (real() + 30)) < 5, "the lease ends 30 s from now on the database's clock"
    finally:
        store.close()


def test_a_blinded_queue_run_asks_again_for_a_tool_reviewed_without_it(
    tmp_path: Path, db: str
) -> None:
    """Issue 28: the queue's look again before it reopens a task (ReviewKey) left out the
    mitigations and the temperature: after a plain `queue run`, a `queue run --blind-names` of a
    new pair sharing one tool made 4 calls, not 8, and the shared tool's comparison page showed
    its unblinded reviews."""
    cards = make_cards(tmp_path / "cards", 3)
    (tmp_path / "first.csv").write_text(f"{cards[0]},{cards[1]}\n")
    (tmp_path / "second.csv").write_text(f"{cards[1]},{cards[2]}\n")
    out = tmp_path / "out"
    with FakeOpenAI() as server:
        env = env_for(server, db, out)
        assert panel("queue", "add", tmp_path / "first.csv", env=env).returncode == 0
        assert panel("queue", "run", env=env).returncode == 0
        plain = server.answered
        assert panel("queue", "add", tmp_path / "second.csv", env=env).returncode == 0
        result = panel("queue", "run", "--blind-names", env=env)
        assert result.returncode == 0, result.stderr
        blinded = server.answered - plain
    assert (plain, blinded) == (8, 8), "tool-01 asked again, blinded"
    assert query(
        db,
        """SELECT tool, count(*) FROM reviews WHERE mitigations = 'blind-names'
           GROUP BY tool ORDER BY tool""",
    ) == [("tool-01", 4), ("tool-02", 4)]
    page = json.loads((out / "compare" / "tool-01-vs-tool-02.json").read_text())
    assert "blind-names" in json.dumps(page), "the page shows the blinded reviews"
