"""Battery 4: `kill -9` of `queue run` at random moments, then run again until the queue is empty.

After every kill: no stored review is gone, no review is stored twice, no temporary or partial
file is left in the outputs. At the end every comparison is done and only the calls in flight
at a kill were made again.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from ..fake_openai import FakeOpenAI
from ..test_cli import panel
from ..test_queue import env_for, make_cards, pairs_file
from .conftest import Tally

TOOLS, PAIRS, CONCURRENCY, KILLS = 16, 24, 4, 6
REVIEWS = TOOLS * 4


def reviews(db: Path) -> set[tuple[object, ...]]:
    with sqlite3.connect(db) as con:
        return set(con.execute("SELECT id, tool, persona, card_hash, score, review FROM reviews"))


def twice(db: Path) -> int:
    """Return how many (tool, persona) reviews are stored more than once."""
    with sqlite3.connect(db) as con:
        sql = "SELECT count(*) FROM (SELECT 1 FROM reviews GROUP BY tool, persona HAVING count(*) > 1)"
        return int(con.execute(sql).fetchone()[0])


def broken_files(out: Path) -> list[Path]:
    """Return temporary files and pages that are not whole."""
    broken = list(out.rglob("*.tmp"))
    for path in out.rglob("*"):
        if (path.suffix == ".html" and not path.read_text().rstrip().endswith("</html>")) or (
            path.suffix == ".md" and not path.read_text().endswith("\n")
        ):
            broken.append(path)
        elif path.suffix == ".json":
            try:
                json.loads(path.read_text())
            except ValueError:
                broken.append(path)
    return broken


def done_jobs_without_pages(db: Path) -> int:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT files FROM jobs WHERE state = 'done'").fetchall()
    return sum(
        1 for (files,) in rows if not all(Path(f).exists() for f in json.loads(files).values())
    )


def test_kill_9_at_random_moments_loses_nothing(tmp_path: Path, tally: Tally) -> None:
    rng = random.Random(20261122)
    cards = make_cards(tmp_path / "cards", TOOLS)
    pairs = pairs_file(tmp_path, cards, PAIRS)
    db, out = tmp_path / "panel.db", tmp_path / "out"
    argv = [sys.executable, "-m", "panel", "queue", "run", "-c", str(CONCURRENCY), "--lease", "1"]
    moments = []
    mid_work = 0
    with FakeOpenAI(latency=0.4) as server:
        env = {**os.environ, **env_for(server, db, out)}
        assert panel("queue", "add", pairs, env=env).returncode == 0
        for _ in range(KILLS):
            before = reviews(db)
            pages_before = len(list(out.rglob("*.html")))
            moment = rng.uniform(0.5, 3.0)
            proc = subprocess.Popen(
                argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(moment)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            after = reviews(db)
            lost = len(before - after)
            doubled = twice(db)
            broken = broken_files(out)
            unpaged = done_jobs_without_pages(db)
            moved = len(after) > len(before) or len(list(out.rglob("*.html"))) > pages_before
            finished = len(after) == REVIEWS and len(list(out.rglob("*.html"))) == PAIRS
            mid_work += moved and not finished
            moments.append(f"{moment:.2f}")
            survived = not (lost or doubled or broken or unpaged)
            tally.add("crashes", survived=survived, lost=lost + doubled + len(broken) + unpaged)
            assert survived, (lost, doubled, broken, unpaged)
        answered_before_last = server.answered
        final = panel("queue", "run", "-c", str(CONCURRENCY), "--lease", "1", env=env)
        assert final.returncode == 0, final.stderr
        redone = server.answered - REVIEWS
    with sqlite3.connect(db) as con:
        jobs = dict(con.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
    tally.note(
        "crashes",
        f"kills at {', '.join(moments)} s after start, {mid_work} mid-work; after the last run "
        f"{len(reviews(db))}/{REVIEWS} reviews, jobs {jobs}; calls made again {redone} "
        f"(at most {CONCURRENCY} in flight per kill)",
    )
    assert len(reviews(db)) == REVIEWS and twice(db) == 0
    assert jobs == {"done": PAIRS}
    assert not broken_files(out) and done_jobs_without_pages(db) == 0
    assert 0 <= redone <= CONCURRENCY * KILLS, "more calls were made again than were in flight"
    assert answered_before_last <= server.answered
    assert mid_work >= KILLS - 2, "too few kills landed while work was under way"
