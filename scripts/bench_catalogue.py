"""Benchmark a catalogue (issue #31): the queue, the site, the ranking and a user's commands in a
full store, at each size, against a loopback OpenAI-compatible model with a fixed latency.

For each size N (comparisons; N/10 tools, each in about 20 pairs, in a seeded random order) it
queues the whole batch at once into a fresh store (`panel queue add`), drains it (`panel queue
run`: 4 reviews per tool, then every comparison's pages), builds the site (`panel site build`, `--full` where the build
has it), then in the full store: `panel review` of one edited card (which refreshes the site
from it), the site build after it (incremental where the build is), the review of another
edited card with no site in its output folder and the site's refresh from that card alone (a
process of its own, as a run ends), `panel compare` of a pair not queued, and `panel rank --json`
over every pair judged in both orders by every persona (8 judgments a pair, written straight
into the store: asking the loopback model for them would only time the queue again). Each is
a real process; its CPU (user + sys) is read from the children's rusage, so figures read on
a shared machine under nice stay comparable where wall time does not.

It prints per size one line per step: wall and CPU seconds, and what it made (CPU per
comparison for the queue run; files and bytes written for a build; the index and the feed).

Usage: python scripts/bench_catalogue.py [--sizes 1000,20000,100000] [--backend sqlite|postgres]
                                         [--latency 0.001] [--concurrency 16] [--pg-url URL]
                                         [--queue-only]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

from bench import ROOT, loopback_server, postgres, timed, write_batch  # noqa: E402

from panel.cards import load_card  # noqa: E402
from panel.config import data_dir  # noqa: E402
from panel.personas import load_personas  # noqa: E402
from panel.queue.pairs import MAX_PAIRS  # noqa: E402
from panel.store import Store  # noqa: E402

PER_TOOL = 10
"""Comparisons per tool: N comparisons over N / 10 tools."""
SEED = 31
"""The order the pairs are queued in (shuffled, seeded)."""


REFRESH = """
import os, sys
from pathlib import Path
from panel.config import data_dir
from panel.personas import load_personas
from panel.site import Changed, refresh_site
personas = load_personas(data_dir("personas"))
changed = Changed(frozenset(sys.argv[1:]))
assert refresh_site(os.environ["PANEL_DB"], personas, Path(os.environ["PANEL_OUT"]), changed)
"""
"""A run's refresh of the site from the tools it changed, in a process of its own."""


def panel(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "panel", *map(str, args)]


def env_for(base_url: str, db: str, out: Path) -> dict[str, str]:
    """The environment of every panel process: this checkout's package, the loopback model."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PANEL_PROVIDER": "openai",
        "PANEL_BASE_URL": base_url,
        "PANEL_MODEL": "bench-model",
        "PANEL_DB": db,
        "PANEL_OUT": str(out),
        "OPENAI_API_KEY": "sk-bench-catalogue-0000",
    }


def written_since(out: Path, since: float) -> tuple[int, int]:
    """Return how many files under out were written at or after `since`, and their bytes."""
    files = [p for p in out.rglob("*") if p.is_file() and p.stat().st_mtime >= since]
    return len(files), sum(p.stat().st_size for p in files)


def has_full_flag() -> bool:
    """Whether this checkout's `panel site build` has --full (an incremental build)."""
    shown = subprocess.run(
        panel("site", "build", "--help"), capture_output=True, text=True, env=env_for("", "", ROOT)
    )
    return "--full" in shown.stdout


def judge_every_pair(db: str, pairs: list[tuple[str, str]]) -> int:
    """Store a judgment of every pair by every persona in both orders, as a run with one model
    would have (the better tool, by its number's parity, wins four times in five)."""
    personas = [p.key for p in load_personas(data_dir("personas"))]
    now = time.time()
    rows = []
    for n, (a, b) in enumerate(pairs):
        for persona in personas:
            for first, second in ((a, b), (b, a)):
                won = (n + len(persona)) % 5 != 0  # the stronger wins four times in five
                prefers = "first" if (_strength(first) > _strength(second)) == won else "second"
                rows.append((first, second, persona, prefers, now, first, second))
    store = Store(db)
    try:
        with store.transaction() as conn:
            conn.executemany(
                """INSERT INTO pair_judgments (first_tool, second_tool, first_hash, second_hash,
                       persona, prompt_version, provider, model, sample, prefers, reason,
                       attempts, created_at, mitigations, temperature)
                   SELECT ?, ?, f.card_hash, s.card_hash, ?, 'bench', 'openai', 'bench-model',
                       0, ?, 'bench', 1, ?, '', 0
                   FROM tools f, tools s WHERE f.slug = ? AND s.slug = ?""",
                rows,
            )
    finally:
        store.close()
    return len(rows)


def _strength(slug: str) -> int:
    """A bench tool's made-up strength, from the number its slug ends with."""
    return int(slug.rsplit("-", 1)[1]) % 7


def line(what: str, wall: float, cpu: float, made: str = "") -> None:
    print(f"  {what:<44}{wall:>9.2f}{cpu:>9.2f}  {made}", flush=True)


def kb(path: Path) -> str:
    return f"{path.stat().st_size / 1024:,.0f} KB" if path.exists() else "none"


def catalogue(
    size: int,
    fresh_db: Callable[[], str],
    latency: float,
    concurrency: int,
    queue_only: bool = False,
) -> None:
    """Build one catalogue of `size` comparisons and print its figures."""
    tools = max(20, size // PER_TOOL)
    with (
        tempfile.TemporaryDirectory(prefix="panel-catalogue-") as tmp,
        loopback_server(latency) as base_url,
    ):
        folder, out, db = Path(tmp), Path(tmp) / "site", fresh_db()
        (folder / "cards").mkdir()
        batch = write_batch(folder / "cards", tools, size)
        # in no useful order, as a real catalogue queues them (in the ring's order, each job
        # would be ready in the order of its id, which hides a claim that reads waiting jobs)
        random.Random(SEED).shuffle(batch)
        # paths beside the queue file: 100,000 absolute ones would pass queue add's 8 MiB cap;
        # and a queue file holds at most MAX_PAIRS, so 100,000 go in two, both added before the run
        lines = [f"{a.relative_to(folder)},{b.relative_to(folder)}\n" for a, b in batch]
        files = []
        for start in range(0, len(lines), MAX_PAIRS):
            files.append(folder / f"pairs-{len(files) + 1}.csv")
            files[-1].write_text("".join(lines[start : start + MAX_PAIRS]))
        env = env_for(base_url, db, out)
        run = lambda *args: timed(panel(*args), env)  # noqa: E731
        print(f"{size:,} comparisons over {tools:,} tools", flush=True)
        print(f"  {'step':<44}{'wall s':>9}{'cpu s':>9}  made", flush=True)
        wall = cpu = 0.0
        for path in files:
            took = run("queue", "add", path)
            wall, cpu = wall + took[0], cpu + took[1]
        line(f"queue add (all at once, {len(files)} file(s))", wall, cpu)
        wall, cpu = run("queue", "run", "--concurrency", str(concurrency))
        line("queue run", wall, cpu, f"{1000 * cpu / size:.1f} ms CPU a comparison")
        if queue_only:
            return
        full = ("--full",) if has_full_flag() else ()
        started = time.time()
        wall, cpu = run("site", "build", *full)
        files, size_b = written_since(out, started)
        line(
            f"site build {' '.join(full) or '(every page)'}",
            wall,
            cpu,
            f"{files:,} files, {size_b / 1e6:,.1f} MB",
        )
        print(
            f"  {'index.html / feed.atom':<62}  {kb(out / 'index.html')} / {kb(out / 'feed.atom')}"
        )
        edited = batch[0][0]
        edited.write_text(edited.read_text().replace("Does thing", "Now does thing"))
        started = time.time()
        wall, cpu = run("review", edited)
        files, size_b = written_since(out, started)
        line("review of one edited card (4 calls, refresh)", wall, cpu, f"{files:,} files")
        started = time.time()
        wall, cpu = run("site", "build")
        files, size_b = written_since(out, started)
        line("site build after it", wall, cpu, f"{files:,} files, {size_b / 1e6:,.1f} MB")
        # The refresh alone: another card edited and reviewed with no site in its output
        # folder, then the site refreshed from that card in a process of its own, as a run
        # ends (panel.site.refresh_site, from what the run changed).
        other = next(path for pair in batch for path in pair if path != edited)
        other.write_text(other.read_text().replace("Does thing", "Now does thing"))
        bare = {**env, "PANEL_OUT": str(folder / "no-site")}
        wall, cpu = timed(panel("review", other), bare)
        line("review of another edited card, no site", wall, cpu)
        started = time.time()
        wall, cpu = timed([sys.executable, "-c", REFRESH, load_card(other).slug], env)
        files, size_b = written_since(out, started)
        line("site refresh from that card alone", wall, cpu, f"{files:,} files")
        queued = {frozenset(pair) for pair in batch}
        spare = next(
            (a, b)
            for a, b in itertools.pairwise(batch)
            if frozenset((a[0], b[1])) not in queued and a[0] != b[1]
        )
        wall, cpu = run("compare", spare[0][0], spare[1][1])
        line("compare of a pair not queued (reviews stored)", wall, cpu)
        slug = {path: load_card(path).slug for pair in batch for path in pair}
        judged = judge_every_pair(db, [(slug[a], slug[b]) for a, b in batch])
        wall, cpu = run("rank", "--json")
        line(f"rank --json ({tools:,} tools, {judged:,} judgments)", wall, cpu)


@contextlib.contextmanager
def databases(backend: str, pg_url: str | None, folder: Path) -> Iterator[Callable[[], str]]:
    """Yield a maker of fresh stores of a backend."""
    if backend == "postgres":
        with postgres(pg_url) as fresh:
            yield fresh
        return
    numbers = iter(range(1, 1_000_000))
    yield lambda: str(folder / f"catalogue-{next(numbers)}.db")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,20000,100000", help="comparisons, comma-separated")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-url", default=None)
    parser.add_argument("--latency", type=float, default=0.001, help="seconds per model call")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--queue-only", action="store_true", help="stop after the queue run")
    args = parser.parse_args()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"panel catalogue benchmark: {args.backend}, {args.latency * 1000:g} ms per call, "
        f"-c {args.concurrency}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"load {load}",
        flush=True,
    )
    with (
        tempfile.TemporaryDirectory(prefix="panel-stores-") as stores,
        databases(args.backend, args.pg_url, Path(stores)) as fresh_db,
    ):
        for size in (int(s) for s in args.sizes.split(",")):
            catalogue(size, fresh_db, args.latency, args.concurrency, args.queue_only)


if __name__ == "__main__":
    main()
