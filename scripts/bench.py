"""Benchmark the queue against a loopback OpenAI-compatible server with a fixed latency.

For each concurrency it queues the same batch (TOOLS distinct tools, PAIRS comparisons) into a
fresh store, drains it with the real queue runner and the real openai provider, and prints:
model calls, wall time, the ideal bound ceil(calls / concurrency) x latency, and their ratio.
Beside each, the bare SDK making the same number of calls at the same concurrency with no panel
code (the floor this server and machine allow), and the naive baseline: the same calls one after
another through the SDK.

Usage: python scripts/bench.py [--latency 0.5] [--tools 40] [--pairs 60] [--concurrency 16 64]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openai
import yaml

from panel.cards import load_card
from panel.config import Settings
from panel.queue.pairs import add_pairs
from panel.queue.runner import QueueRunner
from panel.runtime import open_runtime

SERVER = """
import sys, time
sys.path.insert(0, {root!r})
from tests.fakes.openai import FakeOpenAI
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


async def run_queue(
    base_url: str, folder: Path, pairs: list[tuple[Path, Path]], concurrency: int
) -> tuple[float, int]:
    """Queue and drain the batch into a fresh store; return (wall seconds, model calls made)."""
    settings = Settings(
        provider="openai",
        base_url=base_url,
        model="bench-model",
        db=folder / f"bench-{concurrency}.db",
        out=folder / f"out-{concurrency}",
        concurrency=concurrency,
    )
    runtime = open_runtime(settings)
    try:
        cards = {p: load_card(p) for pair in pairs for p in pair}
        runner = QueueRunner(runtime, concurrency=concurrency)
        add_pairs(runner.queue, runtime.personas, [(cards[a], cards[b]) for a, b in pairs])
        started = time.perf_counter()
        stats = await runner.run()
        wall = time.perf_counter() - started
    finally:
        await runtime.aclose()
    if stats.jobs_done != len(pairs):
        raise SystemExit(f"bench: only {stats.jobs_done} of {len(pairs)} comparisons done")
    con = sqlite3.connect(settings.db)
    calls = con.execute("SELECT count(*) FROM calls").fetchone()[0]
    con.close()
    return wall, int(calls)


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


def row(name: str, calls: int, wall: float, ideal: float) -> None:
    print(f"{name:<18}{calls:>7}{wall:>9.2f}{ideal:>9.2f}{wall / ideal:>8.2f}")


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
    args = parser.parse_args()

    print(
        f"panel queue benchmark: {args.tools} tools, {args.pairs} comparisons, {args.latency * 1000:.0f} ms per call"
    )
    print(f"{'run':<18}{'calls':>7}{'wall s':>9}{'ideal s':>9}{'ratio':>8}")
    with (
        tempfile.TemporaryDirectory(prefix="panel-bench-") as scratch,
        loopback_server(args.latency) as base_url,
    ):
        folder = Path(scratch)
        pairs = write_batch(folder, args.tools, args.pairs)
        calls = 0
        for concurrency in args.concurrency:
            wall, calls = asyncio.run(run_queue(base_url, folder, pairs, concurrency))
            if calls != 4 * args.tools:
                raise SystemExit(
                    f"bench: {calls} calls for {args.tools} tools; expected exactly {4 * args.tools}"
                )
            ideal = math.ceil(calls / concurrency) * args.latency
            row(f"queue -c {concurrency}", calls, wall, ideal)
            row(
                f"bare SDK -c {concurrency}",
                calls,
                asyncio.run(run_sdk(base_url, calls, concurrency)),
                ideal,
            )
        naive = asyncio.run(run_sdk(base_url, calls))
        ideal = calls * args.latency
        row("naive sequential", calls, naive, ideal)


if __name__ == "__main__":
    main()
