"""Several `panel queue run` processes on one store: the work is shared, a worker killed with
kill -9 loses nothing, no review is asked twice, and --rpm holds for the sum of all workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from panel.testing.fakes.openai import FakeOpenAI, Fault
from panel.testing.postgres import PostgresServer
from tests.cli.test_cli import panel
from tests.queue.test_queue import env_for, make_cards, pairs_file, query

WORKERS, CONCURRENCY = 3, 4


def start_workers(env: dict[str, str], *extra: str) -> list[subprocess.Popen[str]]:
    argv = [sys.executable, "-m", "panel", "queue", "run", "-c", str(CONCURRENCY), "--json"]
    return [
        subprocess.Popen([*argv, *extra], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(WORKERS)
    ]


def test_three_workers_one_killed_lose_nothing_and_ask_nothing_twice(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    tools, pairs = 16, 24
    db, out = postgres.database(), tmp_path / "out"
    cards = make_cards(tmp_path / "cards", tools)
    with FakeOpenAI(latency=0.3) as server:
        env = {**os.environ, **env_for(server, db, out)}
        assert panel("queue", "add", pairs_file(tmp_path, cards, pairs), env=env).returncode == 0
        workers = start_workers(env, "--lease", "2")
        while server.requests < 12:  # the victim is mid-run, with calls in flight
            time.sleep(0.01)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        runs = [json.loads(w.communicate(timeout=120)[0])["run"] for w in workers[1:]]
        asked = server.requests
    assert query(db, "SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state") == [
        ("done", pairs)
    ]
    assert query(db, "SELECT count(*), count(DISTINCT (tool, persona)) FROM reviews") == [
        (4 * tools, 4 * tools)
    ]
    logged = query(db, "SELECT count(*) FROM calls WHERE outcome = 'ok'")[0][0]
    assert logged == 4 * tools, "every review asked for once in the call log"
    # Only the calls the killed worker had in flight went out again.
    assert 4 * tools <= asked <= 4 * tools + CONCURRENCY
    assert all(run["reviews_done"] > 0 for run in runs)
    assert len(list((out / "compare").glob("*.html"))) == pairs


def test_the_rate_limit_holds_for_the_sum_of_the_workers(tmp_path: Path, db: str) -> None:
    tools, rpm = 12, 240  # 4 calls a second for all three workers together
    out = tmp_path / "out"
    cards = make_cards(tmp_path / "cards", tools)
    seen: list[float] = []
    lock = threading.Lock()

    def clock(number: int, body: dict[str, Any]) -> Fault | None:
        with lock:
            seen.append(time.monotonic())
        return None

    with FakeOpenAI(latency=0.05, fault=clock) as server:
        env = {**os.environ, **env_for(server, db, out)}
        assert panel("queue", "add", pairs_file(tmp_path, cards, 12), env=env).returncode == 0
        workers = start_workers(env, "--rpm", str(rpm))
        runs = [json.loads(w.communicate(timeout=180)[0])["run"] for w in workers]
        assert server.answered == 4 * tools
    assert sum(run["reviews_done"] for run in runs) == 4 * tools
    per_second = rpm / 60
    burst = 1.0 * per_second + 1  # BURST_SECONDS of budget may be spent at once
    seen.sort()
    for window in (1.0, 3.0):
        most = max(sum(1 for t in seen if start <= t < start + window) for start in seen)
        assert most <= window * per_second + burst, (window, most)
    assert seen[-1] - seen[0] >= (len(seen) - burst) / per_second - 0.5
