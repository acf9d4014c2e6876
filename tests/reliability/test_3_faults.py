"""Battery 3: a 40-call batch against a loopback server that fails every fifth request.

The faults take turns: 429 with Retry-After, 500, 529 (overloaded), a hang past the client's
timeout, a reset connection. `queue run` keeps its default settings (concurrency, attempts per
call, attempts per review, leases); only the client timeout is cut to 1 s so a hang costs a
second, not two minutes. Every job must end done or failed, at least 99% done, each 429's
Retry-After honoured and the retries of any one review capped.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from panel.config import Settings
from panel.testing.fakes.openai import FakeOpenAI, Fault, prompt_text
from tests.cli.test_cli import panel
from tests.queue.test_queue import env_for, make_cards, pairs_file
from tests.reliability.conftest import Tally

RETRY_AFTER = 1.0
TIMEOUT = 1.0
FAULTS = {
    "429": Fault(status=429, headers={"Retry-After": f"{RETRY_AFTER:g}"}),
    "500": Fault(status=500),
    "529": Fault(status=529),
    "timeout": Fault(delay=TIMEOUT + 1.5, drop=True),
    "reset": Fault(drop=True),
}
EVERY = 5  # one request in five: 20%


class FaultSchedule:
    """The server's fault rule: every fifth request fails, the kinds in turn; keeps a log."""

    def __init__(self) -> None:
        self.kinds = itertools.cycle(FAULTS)
        self.log: list[tuple[float, tuple[str, str], str | None]] = []
        """(arrival, (tool, persona), fault kind or None) per chat request."""
        self._lock = threading.Lock()

    def __call__(self, number: int, body: dict[str, Any]) -> Fault | None:
        user = prompt_text(body["messages"])
        persona = re.search(r"as the (\w+) and write", user)
        tool = re.search(r"^Name: (.+)$", user, re.MULTILINE)
        key = (tool.group(1) if tool else "?", persona.group(1) if persona else "?")
        with self._lock:
            kind = next(self.kinds) if number % EVERY == 0 else None
            self.log.append((time.monotonic(), key, kind))
        return FAULTS[kind] if kind else None

    def retry_after_kept(self) -> tuple[int, int]:
        """Return (429s followed by a retry, retries that waited at least Retry-After)."""
        followed = kept = 0
        for i, (at, key, kind) in enumerate(self.log):
            if kind != "429":
                continue
            later = next((t for t, k, _ in self.log[i + 1 :] if k == key), None)
            if later is not None:
                followed += 1
                kept += later - at >= RETRY_AFTER - 0.05
        return followed, kept


def test_a_batch_under_20_percent_faults_ends_done(tmp_path: Path, tally: Tally) -> None:
    cards = make_cards(tmp_path / "cards", 10)
    pairs = pairs_file(tmp_path, cards, 10)
    db, out = tmp_path / "panel.db", tmp_path / "out"
    schedule = FaultSchedule()
    with FakeOpenAI(fault=schedule) as server:
        env = {**env_for(server, db, out), "PANEL_TIMEOUT": f"{TIMEOUT:g}"}
        assert panel("queue", "add", pairs, env=env).returncode == 0
        started = time.monotonic()
        run = panel("queue", "run", env=env, timeout=300)
        wall = time.monotonic() - started
        answered = server.answered
    with sqlite3.connect(db) as con:
        jobs = dict(con.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
        tasks = dict(con.execute("SELECT state, count(*) FROM tasks GROUP BY state").fetchall())
        reviews = con.execute(
            "SELECT count(DISTINCT tool || persona), count(*) FROM reviews"
        ).fetchone()
    per_review: dict[tuple[str, str], int] = {}
    for _, key, _ in schedule.log:
        per_review[key] = per_review.get(key, 0) + 1
    faults = sum(1 for *_, kind in schedule.log if kind)
    followed, kept = schedule.retry_after_kept()
    cap = Settings().max_attempts * 3  # attempts per call × the queue's attempts per review

    ended = jobs.get("done", 0) + jobs.get("failed", 0) == 10
    tasks_ended = tasks.get("done", 0) + tasks.get("failed", 0) == 40
    stuck = (10 - jobs.get("done", 0) - jobs.get("failed", 0)) + (
        40 - tasks.get("done", 0) - tasks.get("failed", 0)
    )
    duplicates = reviews[1] - reviews[0]
    done_share = jobs.get("done", 0) / 10
    survived = ended and tasks_ended and done_share >= 0.99 and kept == followed and not duplicates
    tally.add("faults", survived=survived, lost=stuck + duplicates, tried=10 + 40)
    tally.note(
        "faults",
        f"every 5th request faulted: {faults} of {len(schedule.log)}; "
        f"jobs done {jobs.get('done', 0)}/10, reviews {tasks.get('done', 0)}/40; "
        f"Retry-After kept {kept}/{followed}; most calls for one review {max(per_review.values())} "
        f"(cap {cap}); {wall:.1f} s",
    )
    assert run.returncode == 0, run.stderr
    assert ended and tasks_ended, (jobs, tasks)
    assert done_share >= 0.99, jobs
    assert faults == len(schedule.log) // EVERY >= 8, "not one request in five faulted"
    assert {k for *_, k in schedule.log} >= set(FAULTS), "a kind of fault was never served"
    assert followed >= 1 and kept == followed, "a 429's Retry-After was not honoured"
    assert max(per_review.values()) <= cap
    assert reviews == (40, 40) and answered == 40, "a review was stored or answered twice"
