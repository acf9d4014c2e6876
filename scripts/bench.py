"""Benchmark the queue against a loopback OpenAI-compatible server with a fixed latency.

For each backend (SQLite file, PostgreSQL database), number of workers W and concurrency C it
queues the same batch (TOOLS distinct tools, PAIRS comparisons) into a fresh store and drains it
with W worker processes, each the real queue runner with the real openai provider at C calls in
flight, and prints: model calls, wall time (first worker's start to last worker's end), the
bound ceil(calls / (W x C)) x latency, their ratio, and the workers' CPU milliseconds (user +
sys) per model call. Beside each concurrency, the bare SDK making the same number of calls at
the same concurrency with no panel code (the floor this server and machine allow), and the
naive baseline: the same calls one after another through the SDK.

Then start-up: `panel review CARD --provider openai --base-url URL` on one card (4 calls, one
round trip, so the bound is the latency), run as a user runs it (a new process, a new store),
--startup times: its wall time, the time over the bound, and the process's CPU; beside it the
floors no panel code sets: the interpreter alone (`python -c pass`), `python -c "import
openai"` (the SDK's import, which every OpenAI run pays) and the bare SDK making the same four
calls from a new process.

The header gives the date and the load average: figures read on a busy machine run high.

PostgreSQL: --pg-url URL, or else a private server started for the run (panel/testing/postgres.py).

Usage: python scripts/bench.py [--latency 0.5] [--tools 40] [--pairs 60] [--concurrency 16 64]
                               [--backend sqlite postgres] [--workers 1 3] [--no-sdk]
                               [--startup 5] [--no-queue]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import openai
import yaml

from panel.cards import load_card
from panel.config import Settings
from panel.queue.pairs import add_pairs
from panel.personas import load_personas
from panel.queue.runner import QueueRunner
from panel.queue.store import QueueStore
from panel.runtime import open_runtime
from panel.store import Store

SERVER = """
import sys, time
sys.path.insert(0, {root!r})
from panel.testing.fakes.openai import FakeOpenAI
with FakeOpenAI(latency={latency}) as server:
    print(server.base_url, flush=True)
    sys.stdin.read()  # serve until the benchmark closes our stdin
"""


@contextlib.contextmanager
def loopback_server(latency: float) -> Iterator[str]:
    """Run the fake OpenAI-compatible server in its own process (as a real server would be)."""
    code = SERVER.format(root=str(Path(__file__).resolve().parent.parent), latency=latency)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait()


def write_batch(folder: Path, tools: int, pairs: int) -> list[tuple[Path, Path]]:
    """Write `tools` cards and return `pairs` distinct pairs over them (every tool used)."""
    cards = []
    for i in range(tools):
        path = folder / f"tool-{i:03d}.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "name": f"Bench Tool {i:03d}",
                    "tagline": f"Does thing {i}",
                    "description": f"Bench tool {i} does a thing.",
                    "entry": "Free",
                }
            )
        )
        cards.append(path)
    ring = [(i, (i + step) % tools) for step in range(1, tools // 2) for i in range(tools)]
    return [(cards[a], cards[b]) for a, b in ring[:pairs]]


def settings_for(base_url: str, db: str, out: Path, concurrency: int) -> Settings:
    return Settings(
        provider="openai",
        base_url=base_url,
        model="bench-model",
        db=db,
        out=out,
        concurrency=concurrency,
    )


async def queue_batch(settings: Settings, pairs: list[tuple[Path, Path]]) -> None:
    """Queue the batch into the (fresh) store."""
    store = Store(settings.db)
    try:
        cards = {p: load_card(p) for pair in pairs for p in pair}
        personas = load_personas(settings.personas_dir())
        add_pairs(QueueStore(store), personas, [(cards[a], cards[b]) for a, b in pairs])
    finally:
        store.close()


async def work(settings: Settings) -> dict[str, float]:
    """One worker process: open the runtime, wait for the go line on stdin, drain the queue.

    Returns its start and end (epoch seconds) and the CPU seconds it spent in between.
    """
    store = Store(settings.db)
    runtime = open_runtime(settings, store=store)
    try:
        runner = QueueRunner(runtime, QueueStore(store), concurrency=settings.concurrency)
        print("ready", flush=True)
        sys.stdin.readline()
        started, cpu = time.time(), os.times()
        stats = await runner.run()
        ended, used = time.time(), os.times()
    finally:
        await runtime.aclose()
        store.close()
    return {
        "start": started,
        "end": ended,
        "cpu": (used.user - cpu.user) + (used.system - cpu.system),
        "jobs": stats.jobs_done,
    }


def run_workers(settings: Settings, workers: int) -> tuple[float, float, int]:
    """Drain the queue with `workers` processes; return (wall seconds, CPU seconds, jobs done)."""
    argv = [sys.executable, __file__, "--worker", settings.model_dump_json()]
    procs = [
        subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    for proc in procs:  # every worker has started up before any of them begins
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [json.loads(proc.communicate()[0]) for proc in procs]
    if any(proc.returncode for proc in procs):
        raise SystemExit("bench: a worker failed")
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    return wall, sum(r["cpu"] for r in results), sum(r["jobs"] for r in results)


async def run_sdk(base_url: str, calls: int, concurrency: int = 1) -> float:
    """Return the wall time of `calls` bare SDK calls, `concurrency` at a time (no panel code).

    With concurrency 1 this is the naive baseline; with more it is the floor that the SDK and
    the loopback server themselves set on this machine.
    """
    client = openai.AsyncOpenAI(api_key="bench", base_url=base_url, max_retries=0)
    schema = {
        "type": "object",
        "properties": {
            "review": {"type": "string"},
            "score": {"type": "integer"},
            "verdict": {"type": "string", "enum": ["ship", "skip"]},
        },
        "required": ["review", "score", "verdict"],
        "additionalProperties": False,
    }
    pending = iter(range(calls))

    async def worker() -> None:
        for i in pending:  # workers share one iterator: each call is made once
            await client.chat.completions.create(
                model="bench-model",
                messages=[
                    {"role": "system", "content": "Review."},
                    {"role": "user", "content": f"Tool {i}"},
                ],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "review", "schema": schema, "strict": True},
                },
            )

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await client.close()
    return time.perf_counter() - started


def row(name: str, calls: int, wall: float, ideal: float, cpu_ms: float | None = None) -> None:
    cpu = f"{cpu_ms:>9.1f}" if cpu_ms is not None else f"{'':>9}"
    print(f"{name:<24}{calls:>7}{wall:>9.2f}{ideal:>9.2f}{wall / ideal:>8.2f}{cpu}")


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[Callable[[], str]]:
    """Yield a maker of fresh, empty PostgreSQL databases: on --pg-url's server, or a private one."""
    if url is None:
        from panel.testing.postgres import serve

        for server in serve():
            yield server.database
        return
    import psycopg

    numbers = iter(range(1, 1_000_000))

    def fresh() -> str:
        name = f"panel_bench_{os.getpid()}_{next(numbers)}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}".encode())
        return url.rsplit("/", 1)[0] + "/" + name

    yield fresh


def count_calls(db: str) -> int:
    store = Store(db, write=False)
    try:
        return store.count_calls()
    finally:
        store.close()


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run argv (in env, else this process's) to its end; return its wall seconds and the CPU
    seconds it used (user + sys)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"bench: {' '.join(argv[:3])} failed: {done.stderr.strip()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def spread(values: list[float]) -> str:
    """Return "median (min–max)" of values."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


BARE_CALLS = """
import asyncio, sys, openai
async def main():
    client = openai.AsyncOpenAI(api_key="bench", base_url=sys.argv[1], max_retries=0)
    schema = {"type": "object", "properties": {"review": {"type": "string"}}}
    body = {
        "model": "bench-model",
        "messages": [{"role": "user", "content": "Tool"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
    }
    await asyncio.gather(*(client.chat.completions.create(**body) for _ in range(4)))
asyncio.run(main())
"""
"""The floor of a one-card review's start-up: the SDK making its four calls from a new process."""


def startup(base_url: str, folder: Path, latency: float, repeats: int) -> None:
    """Print the start-up rows: a one-card review as a user runs it, and the floors beside it."""
    card = ROOT / "examples" / "smolvlm-3b.yaml"
    panel = [sys.executable, "-m", "panel", "review", str(card), "--provider", "openai"]
    panel += ["--base-url", base_url, "--model", "bench-model"]
    runs, bare, interpreter, sdk = [], [], [], []
    for i in range(repeats):  # interleaved, so a change of load touches every row alike
        where = folder / f"startup-{i}"  # a new store and output folder: a first review
        runs.append(timed([*panel, "--db", str(where / "panel.db"), "--out", str(where / "out")]))
        bare.append(timed([sys.executable, "-c", BARE_CALLS, base_url]))
        interpreter.append(timed([sys.executable, "-c", "pass"]))
        sdk.append(timed([sys.executable, "-c", "import openai"]))
    print(f"\nstart-up, {repeats} runs each: median (min–max) seconds; bound {latency:.2f} s")
    print(f"{'run':<40}{'wall s':>18}{'over bound s':>18}{'cpu s':>18}")
    rows = [
        ("panel review, one card, 4 calls", runs, True),
        ("bare SDK, 4 calls, new process", bare, True),
        ("python -c pass", interpreter, False),
        ('python -c "import openai"', sdk, False),
    ]
    for name, timings, bounded in rows:
        walls, cpus = [w for w, _ in timings], [c for _, c in timings]
        over = spread([w - latency for w in walls]) if bounded else ""
        print(f"{name:<40}{spread(walls):>18}{over:>18}{spread(cpus):>18}")


def header(args: argparse.Namespace) -> str:
    """Return the first line: what runs, on how many cores, when, under what load."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    when = time.strftime("%Y-%m-%d %H:%M")
    return (
        f"panel queue benchmark: {args.tools} tools, {args.pairs} comparisons, "
        f"{args.latency * 1000:.0f} ms per call, {os.cpu_count()} cores, {when}, load {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--latency", type=float, default=0.5, help="seconds the server takes per call"
    )
    parser.add_argument("--tools", type=int, default=40, help="distinct tools (4 calls each)")
    parser.add_argument("--pairs", type=int, default=60, help="comparisons over those tools")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--backend", nargs="+", choices=["sqlite", "postgres"], default=["sqlite"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="worker processes")
    parser.add_argument("--pg-url", help="a PostgreSQL server to make scratch databases on")
    parser.add_argument("--no-sdk", action="store_true", help="skip the bare SDK and naive rows")
    parser.add_argument(
        "--startup", type=int, default=5, metavar="N", help="one-card reviews to time (0: none)"
    )
    parser.add_argument("--no-queue", action="store_true", help="only the start-up rows")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(work(Settings.model_validate_json(args.worker)))))
        return

    print(header(args))
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="panel-bench-")))
        base_url = stack.enter_context(loopback_server(args.latency))
        if not args.no_queue:
            queue_rows(args, stack, scratch, base_url)
        if args.startup:
            startup(base_url, scratch, args.latency, args.startup)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def queue_rows(
    args: argparse.Namespace, stack: contextlib.ExitStack, scratch: Path, base_url: str
) -> None:
    """Print the queue's rows: every backend, worker count and concurrency asked for."""
    print(f"{'run':<24}{'calls':>7}{'wall s':>9}{'bound s':>9}{'ratio':>8}{'cpu ms':>9}")
    fresh_pg = stack.enter_context(postgres(args.pg_url)) if "postgres" in args.backend else None
    pairs = write_batch(scratch, args.tools, args.pairs)
    calls = 4 * args.tools
    for concurrency in args.concurrency:
        for backend in args.backend:
            for workers in args.workers:
                run = f"{backend}-w{workers}-c{concurrency}"
                db = fresh_pg() if fresh_pg else str(scratch / f"{run}.db")
                settings = settings_for(base_url, db, scratch / f"out-{run}", concurrency)
                asyncio.run(queue_batch(settings, pairs))
                wall, cpu, jobs = run_workers(settings, workers)
                made = count_calls(db)
                if jobs != len(pairs) or made != calls:
                    raise SystemExit(f"bench: {run}: {jobs} jobs, {made} calls")
                bound = math.ceil(calls / (workers * concurrency)) * args.latency
                row(
                    f"queue {backend} -w {workers} -c {concurrency}",
                    made,
                    wall,
                    bound,
                    1000 * cpu / made,
                )
        if not args.no_sdk:
            bound = math.ceil(calls / concurrency) * args.latency
            sdk = asyncio.run(run_sdk(base_url, calls, concurrency))
            row(f"bare SDK -c {concurrency}", calls, sdk, bound)
    if not args.no_sdk:
        row(
            "naive sequential",
            calls,
            asyncio.run(run_sdk(base_url, calls)),
            calls * args.latency,
        )


if __name__ == "__main__":
    main()
