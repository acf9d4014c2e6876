"""Benchmark `panel serve`'s vote API: V voters cast N votes, C in flight, against the real
server (started as a user would: `panel serve --workers W`) on each backend, beside the same load
against a bare Starlette app under the same uvicorn that returns a constant (the ceiling).

Each voter first gets its cookie (a GET, not timed; then a wait of voter_min_age, the
moment before a new cookie's votes count), then votes on distinct tools (so every vote
is one row: the store's totals must equal what was sent, tool by tool, or the run fails). As
behind a reverse proxy, each voter comes from an address of its own (X-Forwarded-For from the
trusted proxy, 127.0.0.1), and every vote spends from its address's budget in the store's
shared limiter; the rate is set high enough that none is refused. The load generator is asyncio with C keep-alive connections speaking HTTP/1.1 directly (an
HTTP client library costs more CPU per request than the server under test on this machine, so
the ceiling would measure the client); it runs on the same machine as the server.

PostgreSQL: a private server with PostgreSQL's default durability (fsync on, synchronous
commit), started for the run, or --pg-url URL (an empty database).

Usage: python scripts/bench_serve.py [--voters 1000] [--votes 10000] [--in-flight 64]
                                     [--workers 1 4] [--backend sqlite postgres] [--tools 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from panel.cards import ToolCard
from panel.store import Store
from panel.testing.postgres import PostgresServer
from panel.testing.serving import panel_serve, stop, wait_until_healthy

VOTE_RATE_OUT_OF_THE_WAY = "1000000"
COOKIE_AGE_SECONDS = 2.2
"""What the load waits, untimed, between getting the cookies and voting (voter_min_age: 2 s)."""
SIGNING_KEY = "bench-signing-key-" + "b" * 40


# --- the ceiling: a bare Starlette app that answers a constant ------------------------------


def ceiling_app():  # type: ignore[no-untyped-def]
    """A Starlette app with the vote route, which reads the body and answers a constant."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    constant = {"tool": "t", "your_vote": "ship", "community": {"votes": 1}}

    async def votes(request):  # type: ignore[no-untyped-def]
        await request.body()
        return JSONResponse(constant)

    async def healthz(request):  # type: ignore[no-untyped-def]
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[Route("/api/votes", votes, methods=["POST"]), Route("/healthz", healthz)]
    )


@contextlib.contextmanager
def ceiling_server(workers: int) -> Iterator[str]:
    """Run the ceiling app under uvicorn (same loop and HTTP parser as panel serve)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench_serve:ceiling_app",
            "--factory",
            "--app-dir",
            str(ROOT / "scripts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
            "--no-server-header",
        ],
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_healthy(url, 60)
        yield url
    finally:
        stop(process)


# --- the load ---------------------------------------------------------------------------------


@dataclass
class Load:
    """What the load generator sent and saw."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, dict[bytes, bytes], bytes]:
    """Send one request on a keep-alive connection; return status, headers, body."""
    writer.write(request)
    status_line = await reader.readline()
    headers: dict[bytes, bytes] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return int(status_line.split()[1]), headers, body


async def _cookies(host: str, port: int, voters: int) -> list[str]:
    """Return one voter cookie per voter: the first GET of each voter's browser."""
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    cookies = []
    try:
        for _ in range(voters):
            _, headers, _ = await _exchange(reader, writer, request)
            cookie = headers.get(b"set-cookie", b"").split(b";")[0].decode()
            cookies.append(cookie or "panel_voter=none")
    finally:
        writer.close()
    return cookies


def voter_address(voter: int) -> str:
    """Return the address a voter's requests come from, as the reverse proxy in front says."""
    return f"10.{voter // 65536 % 256}.{voter // 256 % 256}.{voter % 256}"


def vote_plan(
    voters: int, votes: int, tools: list[str], seed: int = 7
) -> list[tuple[int, str, str]]:
    """Return (voter, tool, verdict) for every vote: each voter votes on distinct tools."""
    rng = random.Random(seed)
    per_voter = votes // voters
    if per_voter > len(tools):
        raise SystemExit(f"{per_voter} votes per voter need at least that many tools")
    plan = [
        (voter, tool, rng.choice(("ship", "skip")))
        for voter in range(voters)
        for tool in rng.sample(tools, per_voter)
    ]
    rng.shuffle(plan)
    return plan


async def _drive(url: str, plan: list[tuple[int, str, str]], voters: int, in_flight: int) -> Load:
    host, port = url.split("//")[1].rstrip("/").split(":")
    cookies = await _cookies(host, int(port), voters)
    await asyncio.sleep(COOKIE_AGE_SECONDS)  # a new cookie's votes count after a moment
    origin = f"http://{host}:{port}"
    requests = []
    for voter, tool, verdict in plan:
        body = f'{{"tool":"{tool}","verdict":"{verdict}"}}'.encode()
        head = (
            f"POST /api/votes HTTP/1.1\r\nHost: {host}:{port}\r\nOrigin: {origin}\r\n"
            f"X-Forwarded-For: {voter_address(voter)}\r\n"
            f"Cookie: {cookies[voter]}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    load = Load()
    queue = iter(requests)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for request in queue:  # one shared iterator: each request is sent once
                started = time.perf_counter()
                status, _, _ = await _exchange(reader, writer, request)
                load.latencies.append(time.perf_counter() - started)
                load.statuses[status] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(in_flight)))
    load.seconds = time.perf_counter() - started
    return load


def drive(url: str, plan: list[tuple[int, str, str]], voters: int, in_flight: int) -> Load:
    try:
        import uvloop

        return uvloop.run(_drive(url, plan, voters, in_flight))
    except ImportError:
        return asyncio.run(_drive(url, plan, voters, in_flight))


# --- panel serve on a store ---------------------------------------------------------------------


def bench_tools(count: int) -> list[ToolCard]:
    return [
        ToolCard(
            name=f"Bench Tool {i:03d}",
            tagline=f"Does thing {i}",
            description=f"Bench tool {i} does a thing.",
        )
        for i in range(count)
    ]


def fresh_store(db: str, cards: list[ToolCard]) -> None:
    store = Store(db)
    try:
        for card in cards:
            store.save_tool(card)
    finally:
        store.close()


def counted(db: str, tools: list[str]) -> dict[str, tuple[int, int]]:
    store = Store(db)
    try:
        return {tool: store.vote_counts(tool) for tool in tools}
    finally:
        store.close()


def recounted(db: str, tools: list[str]) -> dict[str, tuple[int, int]]:
    """Return each tool's (ship, skip) counted row by row from the votes stored."""
    store = Store(db)
    try:
        rows = store.db.execute("SELECT tool, vote FROM votes").fetchall()
    finally:
        store.close()
    found = Counter((row[0], row[1]) for row in rows)
    return {tool: (found[(tool, "ship")], found[(tool, "skip")]) for tool in tools}


def expected(plan: list[tuple[int, str, str]], tools: list[str]) -> dict[str, tuple[int, int]]:
    ship = Counter(tool for _, tool, verdict in plan if verdict == "ship")
    skip = Counter(tool for _, tool, verdict in plan if verdict == "skip")
    return {tool: (ship[tool], skip[tool]) for tool in tools}


@dataclass
class Row:
    target: str
    workers: int
    load: Load
    exact: str
    """"yes" when the store's totals equal what was sent, "n/a" for the ceiling."""

    def line(self) -> str:
        ordered = sorted(self.load.latencies)
        p50 = ordered[len(ordered) // 2] * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        rate = len(ordered) / self.load.seconds
        errors = sum(n for status, n in self.load.statuses.items() if status != 200)
        return (
            f"{self.target:<22}{self.workers:>4}{len(ordered):>8}{rate:>10.0f}"
            f"{p50:>9.1f}{p99:>9.1f}{errors:>8}   {self.exact}"
        )


def run_panel(
    label: str,
    db: str,
    workers: int,
    plan: list[tuple[int, str, str]],
    args: argparse.Namespace,
    tools: list[str],
    folder: Path,
) -> Row:
    env = {
        "PANEL_DB": db,
        "PANEL_OUT": str(folder / f"site-{label}-{workers}"),
        "PANEL_VOTE_RATE": VOTE_RATE_OUT_OF_THE_WAY,
        "PANEL_TRUSTED_PROXY": "127.0.0.1",  # the load generator stands for nginx in front
        "PANEL_SIGNING_KEY": SIGNING_KEY,
    }
    flags = ("--workers", str(workers), "--rebuild-every", "0", "--log-level", "warning")
    with panel_serve(*flags, env=env, log=folder / f"serve-{label}-{workers}.log") as server:
        load = drive(server.url, plan, args.voters, args.in_flight)
    sent = expected(plan, tools)
    exact = "yes" if counted(db, tools) == sent == recounted(db, tools) else "NO: totals differ"
    return Row(f"panel serve {label}", workers, load, exact)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voters", type=int, default=1000)
    parser.add_argument("--votes", type=int, default=10_000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--tools", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--backend", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--pg-url", help="an empty PostgreSQL database instead of a private server")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    cards = bench_tools(args.tools)
    tools = [card.slug for card in cards]
    plan = vote_plan(args.voters, args.votes, tools)
    folder = Path(tempfile.mkdtemp(prefix="panel-bench-serve-"))
    os.environ["XDG_DATA_HOME"] = str(folder / "data")
    pg: PostgresServer | None = None
    rows: list[Row] = []
    try:
        for workers in args.workers:
            with ceiling_server(workers) as url:
                rows.append(
                    Row(
                        "bare Starlette",
                        workers,
                        drive(url, plan, args.voters, args.in_flight),
                        "n/a",
                    )
                )
            print(rows[-1].line(), file=sys.stderr, flush=True)
            for backend in args.backend:
                if backend == "sqlite":
                    db = str(folder / f"sqlite-{workers}.db")
                elif args.pg_url:
                    db = args.pg_url
                else:
                    pg = pg or PostgresServer(fsync=True).start()
                    db = pg.database()
                fresh_store(db, cards)
                rows.append(run_panel(backend, db, workers, plan, args, tools, folder))
                print(rows[-1].line(), file=sys.stderr, flush=True)
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(folder, ignore_errors=True)

    today = dt.date.today().isoformat()
    print(
        f"panel serve votes: {args.voters} voters, {len(plan)} votes, {args.in_flight} in flight, "
        f"{os.cpu_count()} cores shared by server and load generator   ({today})"
    )
    print(
        f"load average (1 min) before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f} "
        "(after: with the benchmark's own processes; other work on the machine shares the cores)"
    )
    print(
        f"{'target':<22}{'-w':>4}{'votes':>8}{'votes/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}   counted exactly"
    )
    for row in rows:
        print(row.line())


if __name__ == "__main__":
    main()
