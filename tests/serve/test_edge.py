"""`panel serve` at its edge, as an attacker meets it: a real server, raw sockets from loopback
addresses of several clients (127.0.0.1, 127.0.0.2, ...), and each finding of issue #32 tried
again: oversized, numerous and trickled headers, idle connections, one client holding many,
votes stuffed from one network, store faults (a store that refuses writes, a SQLite lock, a
PostgreSQL crash), other Host names, card floods and a token set with spaces around it."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from panel.store import Store
from panel.testing.postgres import PostgresServer, serve
from panel.testing.serving import RunningServer, panel_serve, wait_until_healthy
from tests.serve.test_api import NEW_CARD, SMOL, seeded

pytestmark = pytest.mark.slow

KEY = "edge-signing-key-of-the-site-" + "e" * 16
TOKEN = "edge-submit-token-0123456789"


# --- a client on raw sockets --------------------------------------------------------------


@dataclass
class Answer:
    """One HTTP answer as read off the socket."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)

    def has_the_error_shape(self) -> bool:
        """Return whether this is an error as every answer of the server gives one: JSON
        {"error": ...}, no-store and the security headers."""
        return (
            self.headers.get("content-type", "").startswith("application/json")
            and "error" in self.json()
            and self.headers.get("cache-control") == "no-store"
            and "frame-ancestors 'none'" in self.headers.get("content-security-policy", "")
            and self.headers.get("x-content-type-options") == "nosniff"
        )


def connect(server: RunningServer, source: str = "127.0.0.1", timeout: float = 10) -> socket.socket:
    """Open a connection to server from a loopback address of our choosing."""
    host, port = server.origin.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout, source_address=(source, 0))


def read_answer(sock: socket.socket) -> Answer:
    """Read one answer (head, then Content-Length bytes of body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before an answer: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Answer(int(lines[0].split()[1]), headers, body[:length])


def request(
    server: RunningServer,
    method: str,
    path: str,
    *,
    source: str = "127.0.0.1",
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """Send one request on a connection of its own and return the answer."""
    sent = {"host": server.origin.removeprefix("http://"), "connection": "close"}
    data = b""
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent |= {"content-type": "application/json", "content-length": str(len(data))}
    sent |= headers or {}
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in sent.items())
    with connect(server, source) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n" + data)
        return read_answer(sock)


def new_cookie(server: RunningServer, source: str = "127.0.0.1") -> str:
    """Return the voter cookie ("panel_voter=...") a first GET sets."""
    answer = request(server, "GET", "/healthz", source=source)
    return answer.headers["set-cookie"].split(";")[0]


def cast(
    server: RunningServer,
    cookie: str,
    verdict: str = "ship",
    *,
    source: str = "127.0.0.1",
    **headers: str,
) -> Answer:
    """Vote on SMOL as the site's page would: the cookie, the site's Origin, JSON (headers
    given replace those)."""
    return request(
        server,
        "POST",
        "/api/votes",
        body={"tool": SMOL, "verdict": verdict},
        headers={"cookie": cookie, "origin": server.origin, **headers},
        source=source,
    )


class Crowd:
    """Voters voting at once: a thread per group of cookies, each voting in turn until one
    is not counted (the rest vote later)."""

    def __init__(self, server: RunningServer, groups: list[list[str]]) -> None:
        self.server = server
        self.answers: dict[str, Answer] = {}
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._vote, args=(g,)) for g in groups]
        for thread in self._threads:
            thread.start()

    def _vote(self, cookies: list[str]) -> None:
        for cookie in cookies:
            answer = cast(self.server, cookie)
            with self._lock:
                self.answers[cookie] = answer
            if answer.status != 200:
                return

    def join(self) -> dict[str, Answer]:
        """Return every answer once every group is done (each within two minutes)."""
        for thread in self._threads:
            thread.join(120)
        return dict(self.answers)


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Return after how many seconds the server closed sock (reading what it sends), None if
    it is still open after `seconds`."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
    return None


def served(db: str, tmp_path: Path, **env: str) -> Any:
    """Start `panel serve` on a store holding seed 000, with PANEL_* settings from env."""
    seeded(db, tmp_path / "site")
    settings = {
        "PANEL_DB": db,
        "PANEL_OUT": str(tmp_path / "site"),
        "PANEL_SIGNING_KEY": KEY,
        **{f"PANEL_{name.upper()}": value for name, value in env.items()},
    }
    return panel_serve("--rebuild-every", "0", env=settings, log=tmp_path / "serve.log")


def run_sql(db: str, *statements: str) -> None:
    """Run statements on the store, each on its own (to break it, or mend it)."""
    store = Store(db)
    try:
        for statement in statements:
            store.db.execute(statement)
    finally:
        store.close()


def stored_votes(db: str, tool: str = SMOL) -> tuple[int, int]:
    store = Store(db)
    try:
        return store.vote_counts(tool)
    finally:
        store.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# --- finding 1: headers capped, counted and timed; idle connections; connection caps --------


def test_headers_are_capped_counted_and_timed(tmp_path: Path) -> None:
    with served(
        str(tmp_path / "panel.db"), tmp_path, header_seconds="1.5", keep_alive_seconds="1"
    ) as server:
        host = server.origin.removeprefix("http://")
        big = request(server, "GET", "/", headers={"x-big": "a" * 64 * 1024})
        assert big.status == 431 and big.has_the_error_shape(), big
        many = request(server, "GET", "/", headers={f"x-h{n}": "1" for n in range(80)})
        assert many.status == 431 and many.has_the_error_shape()
        assert "header fields" in many.json()["error"]
        with connect(server) as sock:  # the server's own 400: the same shape
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            bad = read_answer(sock)
        assert bad.status == 400 and bad.has_the_error_shape()

        with connect(server) as idle:  # a connection that never sends a byte
            waited = closed_within(idle, 6)
        assert waited is not None and 1.0 < waited < 4.0, waited
        with connect(server) as slow:  # a request line and headers trickled in
            slow.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode())
            started, gone = time.monotonic(), False
            for _ in range(40):
                try:
                    slow.sendall(b"a")
                except OSError:
                    gone = True
                    break
                if closed_within(slow, 0.2) is not None:
                    gone = True
                    break
            assert gone and time.monotonic() - started < 4.0
        with connect(server) as kept:  # kept alive after an answer, then idle
            kept.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            assert read_answer(kept).status == 200
            waited = closed_within(kept, 6)
        assert waited is not None and waited < 3.0, waited

        # 8 connections each sending 4 MiB of one header line: answered 431 at 16 KiB.
        before = rss_kib(server.process.pid)
        socks = [connect(server) for _ in range(8)]
        try:
            for sock in socks:
                sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nX-Big: ".encode())
            for sock in socks:
                for _ in range(64):  # until the server answers
                    if select.select([sock], [], [], 0)[0]:
                        break
                    try:
                        sock.sendall(b"b" * 65536)
                    except OSError:
                        break
            statuses = [read_answer(sock).status for sock in socks]
        finally:
            for sock in socks:
                sock.close()
        assert statuses == [431] * 8
        assert rss_kib(server.process.pid) - before < 32 * 1024


def test_connections_are_capped_per_client_and_per_process(tmp_path: Path) -> None:
    with served(
        str(tmp_path / "panel.db"),
        tmp_path,
        max_connections="12",
        max_client_connections="4",
        header_seconds="3",
    ) as server:
        held = [connect(server, "127.0.0.1") for _ in range(4)]
        try:
            with connect(server, "127.0.0.1") as fifth:  # one client's fifth: refused at once
                refused = read_answer(fifth)
            assert refused.status == 503 and refused.has_the_error_shape()
            assert "retry-after" in refused.headers and "your address" in refused.json()["error"]
            assert request(server, "GET", "/healthz", source="127.0.0.2").status == 200
            for n in (3, 4):  # two more clients fill the process to its cap of 12
                held += [connect(server, f"127.0.0.{n}") for _ in range(4)]
            with connect(server, "127.0.0.9") as late:
                full = read_answer(late)
            assert full.status == 503 and "connections as it may" in full.json()["error"]
            # The idle connections are closed after header_seconds: room again.
            assert all(closed_within(sock, 6) is not None for sock in held)
            assert request(server, "GET", "/healthz", source="127.0.0.9").status == 200
        finally:
            for sock in held:
                sock.close()


def test_one_client_cannot_take_every_file_of_the_server(tmp_path: Path) -> None:
    """Finding 1 as it was met: `ulimit -n 256`, one client opening 300 idle connections."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # the server inherits it
    try:
        serving = served(str(tmp_path / "panel.db"), tmp_path)
        server = serving.__enter__()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    held: list[socket.socket] = []
    try:
        held += [connect(server, "127.0.0.1") for _ in range(300)]
        time.sleep(1)
        answered = select.select(held, [], [], 0)[0]  # at once: those past the client's cap
        assert len(answered) == 300 - 64
        assert {read_answer(sock).status for sock in answered} == {503}
        started = time.monotonic()
        assert request(server, "GET", "/healthz", source="127.0.0.2").status == 200
        assert time.monotonic() - started < 2
    finally:
        for sock in held:
            sock.close()
        serving.__exit__(None, None, None)


# --- finding 2: votes one network cannot stuff ------------------------------------------------


def test_votes_from_one_network_are_capped_by_the_day(db: str, tmp_path: Path) -> None:
    with served(
        db,
        tmp_path,
        trusted_proxy="127.0.0.1",
        network_votes="2",
        wide_network_votes="3",
        voter_min_age="0",
    ) as server:
        cookies = [new_cookie(server) for _ in range(9)]

        def from_(address: str, n: int, verdict: str = "ship") -> Answer:
            return cast(server, cookies[n], verdict, **{"x-forwarded-for": address})

        assert from_("2001:db8:1:1::a", 0).status == 200
        assert from_("2001:db8:1:1::b", 1).status == 200
        capped = from_("2001:db8:1:1::c", 2)  # a third voter of the same /64
        assert capped.status == 429 and capped.has_the_error_shape()
        assert "24 h" in capped.json()["error"]
        assert int(capped.headers["retry-after"]) > 23 * 3600
        assert from_("2001:db8:1:1::a", 0, "skip").status == 200  # a change adds no vote
        assert from_("2001:db8:1:2::d", 3).status == 200  # the /48's third
        assert from_("2001:db8:1:3::e", 4).status == 429  # its fourth, from another /64
        assert from_("2001:db8:2::f", 5).status == 200
        assert from_("198.51.100.7", 6).status == 200
        assert from_("198.51.100.7", 7).status == 200
        assert from_("198.51.100.7", 8).status == 429
        summary = request(server, "GET", f"/api/tools/{SMOL}").json()["community"]
    assert summary["votes"] == 6 and summary["networks"] == 4, summary
    assert stored_votes(db) == (5, 1)


def test_a_new_voter_cookie_counts_only_after_a_moment(tmp_path: Path) -> None:
    db = str(tmp_path / "panel.db")
    with served(db, tmp_path, voter_min_age="3") as server:
        started = time.monotonic()
        cookies = [new_cookie(server) for _ in range(20)]  # minted as fast as a script can
        early = [cast(server, cookie) for cookie in cookies]
        assert time.monotonic() - started < 2.5, "too slow a machine to show this"
        assert {answer.status for answer in early} == {429}
        assert all(0 < int(answer.headers["retry-after"]) <= 4 for answer in early)
        assert "voter cookie is new" in early[0].json()["error"]
        assert stored_votes(db) == (0, 0)
        told = request(server, "GET", f"/api/tools/{SMOL}", headers={"cookie": cookies[-1]})
        assert 0 < told.json()["votes_in"] <= 3
        time.sleep(3.1)
        assert cast(server, cookies[-1]).status == 200
    assert stored_votes(db) == (1, 0)


# --- findings 3 and 4: one error shape for store faults; /healthz tells the truth --------------

REFUSE_SQLITE = [
    f"CREATE TRIGGER edge_refuse_{table}_{event} BEFORE {event} ON {table} "
    "BEGIN SELECT RAISE(ABORT, 'the disk is full (a test)'); END"
    for table in ("votes", "serve_probes")
    for event in ("INSERT", "UPDATE")
]
REFUSE_POSTGRES = [
    "CREATE FUNCTION edge_refuse() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'the disk is full (a test)'; END $$",
    *(
        f"CREATE TRIGGER edge_refuse_{table} BEFORE INSERT OR UPDATE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION edge_refuse()"
        for table in ("votes", "serve_probes")
    ),
]
MEND_SQLITE = [
    statement.split(" BEFORE")[0].replace("CREATE", "DROP") for statement in REFUSE_SQLITE
]
MEND_POSTGRES = ["DROP FUNCTION edge_refuse() CASCADE"]


def test_a_store_that_refuses_writes_is_a_503_and_healthz_says_so(db: str, tmp_path: Path) -> None:
    """A trigger stands in for a read-only file or a full disk (which the tests, as root,
    cannot make): every write fails as those would."""
    postgres = "://" in db
    with served(db, tmp_path, voter_min_age="0") as server:
        cookie = new_cookie(server)
        run_sql(db, *(REFUSE_POSTGRES if postgres else REFUSE_SQLITE))
        time.sleep(1.1)  # the last probe's answer is reused for a second
        started = time.monotonic()
        health = request(server, "GET", "/healthz")
        assert time.monotonic() - started < 2.5
        assert health.status == 503 and health.json()["ok"] is False
        assert "disk is full" in health.json()["error"] and "retry-after" in health.headers
        voted = cast(server, cookie)
        assert voted.status == 503 and voted.has_the_error_shape(), voted
        assert voted.json()["stored"] == "no" and "retry-after" in voted.headers
        assert request(server, "GET", f"/api/tools/{SMOL}").status == 200  # reads still work
        run_sql(db, *(MEND_POSTGRES if postgres else MEND_SQLITE))
        time.sleep(1.1)
        assert request(server, "GET", "/healthz").status == 200
        assert cast(server, cookie).status == 200
    assert stored_votes(db) == (1, 0)


def test_a_locked_sqlite_store_answers_in_time_and_reads_go_on(tmp_path: Path) -> None:
    import sqlite3

    db = str(tmp_path / "panel.db")
    with served(db, tmp_path, voter_min_age="0") as server:
        cookies = [new_cookie(server) for _ in range(3)]
        time.sleep(1.1)
        locker = sqlite3.connect(db, isolation_level=None)
        try:
            locker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            started = time.monotonic()
            health = request(server, "GET", "/healthz")
            assert time.monotonic() - started < 2.5 and health.status == 503
            assert "locked" in health.json()["error"] or "within" in health.json()["error"]
            started = time.monotonic()
            assert request(server, "GET", f"/api/tools/{SMOL}").status == 200
            assert time.monotonic() - started < 1.5  # not behind the stuck write

            started = time.monotonic()
            answers = list(Crowd(server, [[cookie] for cookie in cookies]).join().values())
            assert time.monotonic() - started < 6.5
            assert [a.status for a in answers] == [503] * 3
            assert all(a.has_the_error_shape() and a.json()["stored"] == "no" for a in answers)
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert stored_votes(db) == (0, 0)
        assert cast(server, cookies[0]).status == 200
        time.sleep(1.1)
        assert request(server, "GET", "/healthz").status == 200


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own (it is crashed on purpose)."""
    yield from serve()


def test_a_postgres_outage_is_told_in_time_and_served_through(
    private_postgres: PostgresServer, tmp_path: Path
) -> None:
    db = private_postgres.database()
    with served(db, tmp_path, voter_min_age="0") as server:
        cookie = new_cookie(server)
        private_postgres.crash()
        try:
            time.sleep(1.1)
            for _ in range(2):  # the second is not queued behind the first's stuck probe
                started = time.monotonic()
                health = request(server, "GET", "/healthz")
                assert time.monotonic() - started < 2.5 and health.status == 503
            started = time.monotonic()
            voted = cast(server, cookie)
            assert time.monotonic() - started < 6.5
            assert voted.status == 503 and voted.has_the_error_shape()
            assert voted.json()["stored"] in ("no", "unknown")
        finally:
            private_postgres.resume()
        wait_until_healthy(server.url, 60)
        assert cast(server, cookie).status == 200
    assert stored_votes(db) == (1, 0)


# --- finding 5: a vote whose outcome is unknown says so, and a retry is safe -------------------


def test_a_vote_cut_by_a_postgres_crash_is_stored_only_when_the_answer_allows(
    private_postgres: PostgresServer, tmp_path: Path
) -> None:
    db = private_postgres.database()
    with served(db, tmp_path, voter_min_age="0", network_votes="1000") as server:
        cookies = [new_cookie(server) for _ in range(40)]
        crowd = Crowd(server, [cookies[n::4] for n in range(4)])
        while len(crowd.answers) < 8:
            time.sleep(0.01)
        private_postgres.crash()  # as `pg_ctl stop -m immediate`, votes in flight
        answers = crowd.join()  # each group stops at its first vote not counted
        private_postgres.resume()
        store = Store(db)
        try:
            for cookie, answer in answers.items():
                voter = "web:" + cookie.split("=", 1)[1].split(".")[0]
                kept = store.vote_of(SMOL, voter) is not None
                said = "yes" if answer.status == 200 else answer.json().get("stored")
                assert said in ("yes", "no", "unknown"), answer
                assert said == "unknown" or kept == (said == "yes"), (said, kept)
        finally:
            store.close()
        assert any(answer.status == 503 for answer in answers.values())
        wait_until_healthy(server.url, 60)
        for cookie in cookies:  # every voter sends again: safe, each counts once
            assert cast(server, cookie).status == 200
    assert stored_votes(db) == (40, 0)


def test_a_vote_the_store_does_not_confirm_in_time_says_unknown(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    db = postgres.database()
    with served(db, tmp_path, voter_min_age="0") as server:
        cookie = new_cookie(server)
        run_sql(
            db,
            "CREATE FUNCTION edge_slow() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(7); RETURN NEW; END $$",
            "CREATE TRIGGER edge_slow BEFORE INSERT ON votes FOR EACH ROW EXECUTE FUNCTION edge_slow()",
        )
        slow = cast(server, cookie)
        assert slow.status == 503 and slow.has_the_error_shape()
        assert (
            slow.json()["stored"] == "unknown" and "sending it again is safe" in slow.body.decode()
        )
        run_sql(db, "DROP FUNCTION edge_slow() CASCADE")
        time.sleep(3)  # the slow vote lands after all
        again = cast(server, cookie)
        assert again.status == 200 and again.json()["community"]["votes"] == 1
    assert stored_votes(db) == (1, 0)


# --- finding 6: allowed host names ------------------------------------------------------------


def test_a_request_for_another_host_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    db = str(tmp_path / "panel.db")
    with served(db, tmp_path, voter_min_age="0") as server:
        port = server.origin.rsplit(":", 1)[1]
        rebound = f"rebound.example:{port}"  # a page whose name now points here
        page = request(server, "GET", "/", headers={"host": rebound})
        assert page.status == 400 and page.has_the_error_shape()
        assert "set-cookie" not in page.headers
        cookie = new_cookie(server)
        voted = cast(server, cookie, host=rebound, origin=f"http://{rebound}")
        assert voted.status == 400 and voted.has_the_error_shape()
    assert stored_votes(db) == (0, 0)
    named = "verdicts.example,*.panel.example 127.0.0.1"
    with served(db, tmp_path, allowed_hosts=named) as server:
        for host, status in (
            ("verdicts.example", 200),
            ("a.panel.example:80", 200),
            ("panel.example", 400),
            ("localhost", 400),  # a loopback name, but not one of those named
            ("verdicts.example.evil", 400),
        ):
            assert request(server, "GET", "/healthz", headers={"host": host}).status == status


# --- findings 7 and 8: card submissions bounded; a token set with spaces ------------------------


def card(n: int) -> dict[str, str]:
    return {**NEW_CARD, "name": f"Tiny Vision {n}"}


def send_card(server: RunningServer, n: int, source: str, token: str = TOKEN) -> Answer:
    return request(
        server,
        "POST",
        "/api/cards",
        body=card(n),
        source=source,
        headers={"authorization": f"Bearer {token}"},
    )


def test_card_submissions_are_bounded(db: str, tmp_path: Path) -> None:
    spaced = f"  {TOKEN}  "  # as a shell or a .env file may leave it
    with served(
        db, tmp_path, submit_token=spaced, card_address_rate="2", card_rate="3", card_queue="50"
    ) as server:
        assert send_card(server, 1, "127.0.0.1").status == 202
        assert send_card(server, 2, "127.0.0.1").status == 202
        address = send_card(server, 3, "127.0.0.1")
        assert address.status == 429 and address.has_the_error_shape()
        assert "your address" in address.json()["error"] and "retry-after" in address.headers
        assert send_card(server, 3, "127.0.0.2").status == 202
        token = send_card(server, 4, "127.0.0.3")
        assert token.status == 429 and "submit token" in token.json()["error"]
    renewed = TOKEN + "-renewed"  # a new token: a budget of its own
    with served(db, tmp_path, submit_token=renewed, card_queue="4") as server:
        assert send_card(server, 5, "127.0.0.4", renewed).status == 202
        full = send_card(server, 6, "127.0.0.4", renewed)
        assert full.status == 429 and "queue is full" in full.json()["error"]
    store = Store(db)
    try:
        stored = {n for n in range(1, 7) if store.has_tool(f"tiny-vision-{n}")}
    finally:
        store.close()
    assert stored == {1, 2, 3, 5}
