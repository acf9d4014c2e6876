"""Battery 4: `kill -9` of `queue run` at random moments, then run again until the queue is empty,
on a SQLite store and on PostgreSQL (the store of several machines).

After every kill: no stored review is gone, no review is stored twice, every page in the outputs
is whole. A kill in the middle of a write may leave that write's temporary file (a hidden
`.<page>.<pid>.*.tmp`); the page is written again when its job is retried, which removes it. At
the end every comparison is done, no temporary file is left, and only the calls in flight at a
kill were made again.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from panel.files import write_atomic
from panel.testing.fakes.openai import FakeOpenAI
from tests.cli.test_cli import panel
from tests.queue.test_queue import env_for, make_cards, pairs_file, query
from tests.reliability.conftest import Tally

TOOLS, PAIRS, CONCURRENCY, KILLS = 16, 24, 4, 6
REVIEWS = TOOLS * 4


def reviews(db: str) -> set[tuple[object, ...]]:
    return set(query(db, "SELECT id, tool, persona, card_hash, score, review FROM reviews"))


def twice(db: str) -> int:
    """Return how many (tool, persona) reviews are stored more than once."""
    sql = (
        "SELECT count(*) FROM (SELECT 1 FROM reviews GROUP BY tool, persona HAVING count(*) > 1) d"
    )
    return int(query(db, sql)[0][0])


def temporaries(out: Path) -> set[Path]:
    return set(out.rglob(".*.tmp"))


def broken_files(out: Path) -> list[Path]:
    """Return the pages that are not whole."""
    broken = []
    for path in set(out.rglob("*")) - temporaries(out):
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


def done_jobs_without_pages(db: str) -> int:
    rows = query(db, "SELECT files FROM jobs WHERE state = 'done'")
    return sum(
        1 for (files,) in rows if not all(Path(f).exists() for f in json.loads(files).values())
    )


def test_kill_9_at_random_moments_loses_nothing(tmp_path: Path, tally: Tally, db: str) -> None:
    rng = random.Random(20261122)
    cards = make_cards(tmp_path / "cards", TOOLS)
    pairs = pairs_file(tmp_path, cards, PAIRS)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "panel", "queue", "run", "-c", str(CONCURRENCY), "--lease", "1"]
    moments = []
    mid_work = 0
    left: set[Path] = set()
    with FakeOpenAI(latency=0.4) as server:
        env = {**os.environ, **env_for(server, db, out)}
        assert panel("queue", "add", pairs, env=env).returncode == 0
        for _ in range(KILLS):
            before = reviews(db)
            pages_before = len(list(out.rglob("*.html")))
            calls_before = server.requests
            proc = subprocess.Popen(
                argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            started = time.monotonic()
            if not moments:  # the first kill lands while the process starts up
                time.sleep(rng.uniform(0.05, 0.6))
            else:  # the others while it works: a random moment after its first call
                while server.requests == calls_before and time.monotonic() - started < 30:
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.0, 1.5))
            moment = time.monotonic() - started
            calls_at_kill = server.requests
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            after = reviews(db)
            lost = len(before - after)
            doubled = twice(db)
            broken = broken_files(out)
            unpaged = done_jobs_without_pages(db)
            left |= temporaries(out)
            # Mid-work: it had calls out, or had stored reviews or written pages, when killed.
            moved = calls_at_kill > calls_before or len(after) > len(before)
            moved = moved or len(list(out.rglob("*.html"))) > pages_before
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
    jobs = dict(query(db, "SELECT state, count(*) FROM jobs GROUP BY state"))
    remaining = temporaries(out)
    tally.add("crashes", survived=not remaining, lost=len(remaining), tried=0)
    backend = "PostgreSQL" if "://" in db else "SQLite"
    tally.note(
        "crashes",
        f"{backend}: kills at {', '.join(moments)} s after start, {mid_work} mid-work; after the last run "
        f"{len(reviews(db))}/{REVIEWS} reviews, jobs {jobs}; calls made again {redone} "
        f"(at most {CONCURRENCY} in flight per kill); temporary files left by kills "
        f"{len(left)}, left after the last run {len(remaining)}",
    )
    assert len(reviews(db)) == REVIEWS and twice(db) == 0
    assert jobs == {"done": PAIRS}
    assert not broken_files(out) and done_jobs_without_pages(db) == 0
    assert not remaining, f"temporary files outlived their writers: {remaining}"
    assert 0 <= redone <= CONCURRENCY * KILLS, "more calls were made again than were in flight"
    assert answered_before_last <= server.answered
    assert mid_work >= KILLS - 1, "too few kills landed while work was under way"


def test_a_dead_writers_temporary_file_goes_when_the_page_is_written_again(
    tmp_path: Path, tally: Tally
) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    page = tmp_path / "compare" / "a-vs-b.html"
    page.parent.mkdir()
    orphan = page.with_name(f".{page.name}.{int(dead.stdout)}.k1ll3d00.tmp")
    live = page.with_name(f".{page.name}.{os.getppid()}.w0rk1ng0.tmp")
    orphan.write_text("<html><body>half a pa")
    live.write_text("being written by a running process")
    write_atomic(page, "<html></html>\n")
    ok = not orphan.exists() and live.exists() and page.read_text() == "<html></html>\n"
    tally.add("crashes", survived=ok, lost=int(orphan.exists()))
    assert ok
