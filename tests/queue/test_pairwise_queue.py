"""`queue add --pairwise`: a queued pair gets its judgments (both orders, every persona) after its
two tools' reviews, live or as a provider batch, on both store backends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from panel.testing.fakes import judges
from panel.testing.fakes.openai import FakeOpenAI, FakeOpenAIBatches, prompt_text
from tests.cli.test_cli import panel
from tests.judged import labelled_cards, quality
from tests.queue.test_queue import env_for, query

LABELS = [0.3, 0.9, 0.6]


def queued(tmp_path: Path, db: str, *extra: str) -> tuple[list[Path], dict[str, Any]]:
    cards = labelled_cards(tmp_path / "cards", LABELS)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"{cards[0]},{cards[1]}\n{cards[2]},{cards[1]}\n")
    added = panel("queue", "add", pairs, "--pairwise", "--json", *extra, "--db", db)
    assert added.returncode == 0, added.stderr
    return cards, json.loads(added.stdout)


def test_a_queued_pair_is_judged_after_its_tools_reviews(tmp_path: Path, db: str) -> None:
    _, added = queued(tmp_path, db)
    assert added == {"jobs": 2, "already": 0, "tools": 3, "tasks": 12, "pair_tasks": 8}
    out = tmp_path / "out"
    with FakeOpenAI(content=judges.prefers_better(quality(LABELS))) as server:
        env = env_for(server, db, out)
        ran = panel("queue", "run", "--json", env=env)
        assert ran.returncode == 0, ran.stderr
        run = json.loads(ran.stdout)
        assert run["run"]["pair_judgments_done"] == 8 and run["jobs"]["done"] == 2
        assert server.answered == 12 + 16
        again = panel("queue", "run", env=env)
        assert again.returncode == 0 and server.answered == 28  # nothing left, nothing asked
    order = [(judges.is_pair(body), judges.names_shown(body)) for body in server.bodies]
    for n, (is_pair, names) in enumerate(order):
        if is_pair:  # every review of both tools came before any judgment of their pair
            reviewed = [shown[0] for pair, shown in order[:n] if not pair]
            assert all(reviewed.count(name) == 4 for name in names)
    page = json.loads((out / "compare" / "tool-00-vs-tool-01.json").read_text())
    pairwise = page["head_to_head"]["pairwise"]
    assert pairwise["pick_name"] == "Tool 01" and pairwise["consistency"] == 1.0
    status = json.loads(panel("queue", "status", "--json", "--db", db).stdout)
    assert status["pair_tasks"] == {"pending": 0, "running": 0, "done": 8, "failed": 0}
    assert query(db, "SELECT count(*) FROM pair_judgments") == [(16,)]


def test_a_pair_queued_again_with_pairwise_gains_its_judgments(tmp_path: Path, db: str) -> None:
    cards = labelled_cards(tmp_path / "cards", LABELS)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"{cards[0]},{cards[1]}\n")
    out = tmp_path / "out"
    with FakeOpenAI(content=judges.prefers_better(quality(LABELS))) as server:
        env = env_for(server, db, out)
        assert panel("queue", "add", pairs, env=env).returncode == 0
        assert panel("queue", "run", env=env).returncode == 0
        plain = json.loads((out / "compare" / "tool-00-vs-tool-01.json").read_text())
        assert "pairwise" not in plain["head_to_head"]
        again = panel("queue", "add", pairs, "--pairwise", env=env)
        assert "then 4 pair judgment(s) in both orders" in again.stdout
        assert panel("queue", "run", env=env).returncode == 0
        assert server.answered == 8 + 8  # the reviews once, then only the judgments
    judged = json.loads((out / "compare" / "tool-00-vs-tool-01.json").read_text())
    assert judged["head_to_head"]["pairwise"]["b_wins"] == 4


def test_a_failed_pair_judgment_fails_its_job_and_retry_requeues_it(
    tmp_path: Path, db: str
) -> None:
    queued(tmp_path, db)
    broken = True

    def judge(body: dict[str, Any]) -> str:
        if broken and judges.is_pair(body) and "as the Founder" in prompt_text(body["messages"]):
            return "not json"
        return judges.prefers_better(quality(LABELS))(body)

    with FakeOpenAI(content=judge) as server:
        env = env_for(server, db, tmp_path / "out")
        ran = panel("queue", "run", "--max-attempts", "1", env=env)
        assert ran.returncode == 1
        status = json.loads(panel("queue", "status", "--json", "--db", db).stdout)
        assert status["jobs"]["failed"] == 2 and status["pair_tasks"]["failed"] == 2
        assert all("founder" in job["last_error"] for job in status["failed"])
        broken = False
        assert panel("queue", "retry", "--failed", env=env).returncode == 0
        assert panel("queue", "run", env=env).returncode == 0
    status = json.loads(panel("queue", "status", "--json", "--db", db).stdout)
    assert status["jobs"]["done"] == 2 and status["pair_tasks"]["done"] == 8


def test_pair_judgments_go_out_as_a_provider_batch_after_the_reviews(
    tmp_path: Path, db: str
) -> None:
    queued(tmp_path, db, "--samples", "2")
    out = tmp_path / "out"
    with FakeOpenAIBatches(polls=2, content=judges.prefers_better(quality(LABELS))) as server:
        env = env_for(server, db, out)
        ran = panel("queue", "run", "--batch-api", "--poll-interval", "0.02", env=env)
        assert ran.returncode == 0, ran.stderr
        assert server.answered == 0  # no live call: two batches
        assert (
            "24 review(s) submitted" in ran.stderr and "32 pair judgment(s) submitted" in ran.stderr
        )
        assert "8 pair task(s) done, 0 failed" in ran.stderr
    logged = query(db, "SELECT tool, cost_usd FROM calls WHERE tool LIKE '%-vs-%'")
    assert len(logged) == 32
    page = json.loads((out / "compare" / "tool-02-vs-tool-01.json").read_text())
    pairwise = page["head_to_head"]["pairwise"]
    assert pairwise["pick_name"] == "Tool 01" and pairwise["consistency"] == 1.0
    assert query(db, "SELECT count(*) FROM pair_judgments WHERE sample = 1") == [(16,)]
