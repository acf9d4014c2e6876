"""The server's desk: what the API asks of the store, done in threads of its own so the event
loop never waits on the database, and never longer than CALL_SECONDS.

Each thread is a lane with one store: on SQLite a lane writes (its writes go one at a time
anyway) and two lanes read, each on a connection of its own (WAL: reads are not held up by a
write); on PostgreSQL four lanes share a pool of four connections and take reads and writes
alike. A call goes to the lane with the fewest calls waiting. A call not answered within
CALL_SECONDS is given up: if it had not begun, it never will (nothing of it is written); if it
had, it may still land (StoreUnavailable says which). A stuck call holds up its lane only, and
the health check writes through a lane and a connection of its own.

Everything else is what the command line does already, reused: votes and voter ids (`panel
vote`, panel.store), the community summary (panel.compare), the review document
(panel.results), the queue (`panel queue add`, panel.queue.pairs) and the shared rate limiter
(Store.reserve).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from panel.cards import ToolCard
from panel.compare import community, comparison_slug
from panel.config import Settings
from panel.errors import InputError, PanelError, StoreUnavailable, scrub
from panel.personas import Persona
from panel.queue.pairs import add_card
from panel.queue.store import QueueStore
from panel.results import tool_document
from panel.store import Store, insert_vote, vote_standing
from panel.store.sql import Connection, is_url

T = TypeVar("T")

POSTGRES_LANES = 4
"""Lanes on a PostgreSQL store: one per connection of its pool (panel.store.sql)."""
SQLITE_READ_LANES = 2

CALL_SECONDS = 5.0
"""The longest the API waits for one store call."""
DEADLINE_MARGIN = 0.5
"""What a SQLite call keeps of its CALL_SECONDS for its own work: it waits for another
process's write lock until then, and fails (nothing written) before the API gives up on it."""
HEALTH_SECONDS = 2.0
"""The longest /healthz waits for its write probe."""
HEALTH_FRESH_SECONDS = 1.0
"""A probe's answer is reused this long (a flood of /healthz is not a flood of writes)."""
RETRY_SECONDS = 5
"""What Retry-After says when the store is unavailable."""

VOTE_BUDGET = "votes@"
"""The shared limiter's budgets of votes are named this, then the client's address."""
CARD_BUDGET = "cards@"
"""The shared limiter's budgets of cards: this, then the client's address, or "token:" and a
hash of the submit token."""

VOTE_BURST_SECONDS = 60.0
"""An address may spend a minute's worth of votes at once, then one every 60/vote_rate s."""
DAY_SECONDS = 24 * 3600.0
HOUR_SECONDS = 3600.0

WEB_VOTER = "web:"
"""A voter id from the site's cookie is stored under this prefix (a `panel vote --voter`
name is stored as typed, normalised): the two never meet."""


@dataclass(frozen=True)
class Voted:
    """What became of a vote: counted (community is the tool's new summary), or not."""

    community: dict[str, Any] | None = None
    your_vote: str | None = None
    unknown: bool = False
    """No such tool (nothing was counted)."""


class Refused(PanelError):
    """A vote or card past one of its limits: nothing of it was stored; `wait` is the seconds
    before the same request may be taken."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


class _NoSuchTool(Exception):
    """Raised inside a vote's transaction to roll it back: the tool is not stored."""


def store_fault(exc: BaseException) -> bool:
    """Return whether exc is the store failing (locked, read-only, full, gone), not a bug."""
    if isinstance(exc, StoreUnavailable | sqlite3.Error | OSError):
        return True
    return type(exc).__module__.split(".")[0] in ("psycopg", "psycopg_pool")


def fault_reason(exc: BaseException) -> str:
    """Return one line saying what went wrong with the store (secrets scrubbed)."""
    if isinstance(exc, PanelError):
        return exc.message
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return scrub(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)


class Lane:
    """One thread and the store it uses (its own, or one shared by every lane)."""

    def __init__(self, name: str) -> None:
        self.thread = ThreadPoolExecutor(1, thread_name_prefix=name)
        self.store: Store | None = None
        self._waiting = 0
        self._lock = threading.Lock()
        self._busy_since: float | None = None
        self._busy_ms = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    def stuck(self) -> bool:
        """Return whether the call running in this lane has run past CALL_SECONDS."""
        since = self._busy_since
        return since is not None and time.monotonic() - since > CALL_SECONDS

    def submit(self, deadline: float, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run fn(store, *args) in this lane's thread, to be done by deadline (time.monotonic)."""
        with self._lock:
            self._waiting += 1
        future = self.thread.submit(self._call, deadline, fn, *args)
        future.add_done_callback(self._done)
        return future

    def _call(self, deadline: float, fn: Callable[..., T], *args: Any) -> T:
        """Run fn; on SQLite, wait for another process's lock only as long as the deadline
        leaves (a call that cannot be done in time fails before it, with nothing written)."""
        store = self.store
        if store is None:
            raise RuntimeError("the desk is not open")
        if not is_url(store.location):
            left = int((deadline - time.monotonic() - DEADLINE_MARGIN) * 1000)
            if left <= 0:
                raise StoreUnavailable("the store is busy: this call's time ran out in line")
            if abs(left - self._busy_ms) > 100:  # most calls begin at once: set it seldom
                store.db.execute(f"PRAGMA busy_timeout = {left}")
                self._busy_ms = left
        self._busy_since = time.monotonic()
        try:
            return fn(store, *args)
        finally:
            self._busy_since = None

    def _done(self, _: Future[Any]) -> None:
        with self._lock:
            self._waiting -= 1


def open_store(location: str, busy_seconds: float) -> Store:
    """Open a store for the desk: on SQLite, one that waits busy_seconds for a lock, not 30."""
    store = Store(location)
    if not is_url(location):
        store.db.execute(f"PRAGMA busy_timeout = {int(busy_seconds * 1000)}")
    return store


class Desk:
    """The store, in lanes of their own, and what the API does with it."""

    def __init__(self, settings: Settings, personas: list[Persona]) -> None:
        self.settings = settings
        self.personas = personas
        if is_url(settings.db):
            self._writers = [Lane("panel-store") for _ in range(POSTGRES_LANES)]
            self._readers = self._writers
        else:
            self._writers = [Lane("panel-store")]
            self._readers = [Lane("panel-read") for _ in range(SQLITE_READ_LANES)]
        self._prober = Lane("panel-health")
        self._probe: asyncio.Future[None] | None = None
        self._probed_at = 0.0
        self._probe_name = f"{socket.gethostname()}:{os.getpid()}"[:200]
        token = settings.submit_token.get_secret_value() if settings.submit_token else ""
        self._token_budget = "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]
        """The token's budget: named by a hash of it (a new token starts afresh)."""

    @property
    def _lanes(self) -> list[Lane]:
        return list({id(lane): lane for lane in [*self._writers, *self._readers]}.values())

    async def open(self) -> None:
        """Open the stores, each in its lane's thread (a SQLite connection stays in the thread
        that made it); on PostgreSQL the lanes share one store and its pool."""
        loop = asyncio.get_running_loop()
        location = self.settings.db
        if is_url(location):
            shared = await loop.run_in_executor(
                self._writers[0].thread, open_store, location, CALL_SECONDS
            )
            for lane in self._writers:
                lane.store = shared
            return
        for lane in self._lanes:
            lane.store = await loop.run_in_executor(lane.thread, open_store, location, CALL_SECONDS)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        closed: set[int] = set()
        for lane in [*self._lanes, self._prober]:
            if lane.store is not None and id(lane.store) not in closed:
                closed.add(id(lane.store))
                await loop.run_in_executor(lane.thread, lane.store.close)
            lane.thread.shutdown(wait=True)

    async def _run(self, lanes: list[Lane], fn: Callable[..., T], *args: Any) -> T:
        """Return fn(store, *args) run in the least busy of lanes, given up after CALL_SECONDS;
        a store fault is raised as StoreUnavailable (see the module docstring)."""
        lane = min(lanes, key=lambda lane: lane.waiting)
        future = lane.submit(time.monotonic() + CALL_SECONDS, fn, *args)
        answer = asyncio.wrap_future(future)  # cancelling it cancels a call not begun
        late = asyncio.get_running_loop().call_later(CALL_SECONDS, answer.cancel)
        try:
            return await answer
        except asyncio.CancelledError:
            if not late.cancelled() and answer.cancelled() and not _cancelling():
                raise _given_up(future) from None
            raise
        except Exception as exc:
            if isinstance(exc, StoreUnavailable) or not store_fault(exc):
                raise
            raise StoreUnavailable(fault_reason(exc), written=False) from exc
        finally:
            late.cancel()

    # --- what the API asks ----------------------------------------------------------------

    async def vote(self, tool: str, voter: str, verdict: str, networks: tuple[str, str]) -> Voted:
        """Count voter's vote on tool, unless the client's network is past one of its vote
        limits (Refused); networks: the client's address (or IPv6 /64) and its /48."""
        return await self._run(self._writers, self._vote, tool, voter, verdict, networks)

    async def tool(self, slug: str, voter: str | None) -> dict[str, Any] | None:
        """Return a tool's review summary with its community votes, None if there is no such tool."""
        return await self._run(self._readers, self._tool, slug, voter)

    async def submit(self, card: ToolCard, compare_with: list[str], address: str) -> dict[str, Any]:
        """Store a card, queue its reviews and its comparison with each tool named; return what
        was queued. Refused when the queue is full or the token or address has sent its cards."""
        return await self._run(self._writers, self._submit, card, compare_with, address)

    async def health(self) -> str | None:
        """Return why the store cannot take a write now, None if it can: every lane that
        writes held by a stuck call, or a failed write probe (one at a time, given
        HEALTH_SECONDS, its answer reused for HEALTH_FRESH_SECONDS)."""
        if all(lane.stuck() for lane in self._writers):
            return f"every store lane is held by a call of more than {CALL_SECONDS:g} s"
        loop = asyncio.get_running_loop()
        stale = loop.time() - self._probed_at > HEALTH_FRESH_SECONDS
        if self._probe is None or (self._probe.done() and stale):
            self._probe = asyncio.wrap_future(self._prober.thread.submit(self._write_probe))
            self._probe.add_done_callback(self._probed)
        try:
            await asyncio.wait_for(asyncio.shield(self._probe), HEALTH_SECONDS)
        except TimeoutError:
            return f"the store did not take a write within {HEALTH_SECONDS:g} s"
        except Exception as exc:
            return fault_reason(exc)
        return None

    def _probed(self, probe: asyncio.Future[None]) -> None:
        self._probed_at = asyncio.get_running_loop().time()
        _forget(probe)

    # --- in the desk's threads ----------------------------------------------------------------

    def _vote(
        self, store: Store, tool: str, voter: str, verdict: str, networks: tuple[str, str]
    ) -> Voted:
        # The spend, the day's caps and the vote are one transaction: a vote past a limit, or
        # on no stored tool, is not stored (and spends nothing); a vote stored has been paid for.
        cost = 60.0 / self.settings.vote_rate
        cast = functools.partial(
            self._cast, tool=tool, voter=WEB_VOTER + voter, verdict=verdict, networks=networks
        )
        try:
            wait = store.reserve(
                VOTE_BUDGET + networks[0], "", [("votes", cost, VOTE_BURST_SECONDS)], then=cast
            )
        except _NoSuchTool:
            return Voted(unknown=True)
        if wait > 0:
            raise Refused("too many votes from your address", wait)
        try:
            return Voted(community=community(store, tool), your_vote=verdict)
        except Exception as exc:
            if not store_fault(exc):
                raise
            raise StoreUnavailable(
                f"the vote was stored, but not the summary read back ({fault_reason(exc)})",
                written=True,
            ) from exc

    def _cast(
        self, db: Connection, *, tool: str, voter: str, verdict: str, networks: tuple[str, str]
    ) -> None:
        """Store the vote, unless the tool is not stored or the vote would add one past the
        day's cap of the client's network or wider network on this tool (a voter changing
        their vote adds none)."""
        now = time.time()
        standing = vote_standing(db, tool, voter, networks, now - DAY_SECONDS)
        if not standing.tool_known:
            raise _NoSuchTool
        caps = (self.settings.network_votes, self.settings.wide_network_votes)
        for (count, oldest), cap in zip(standing.recent, caps, strict=True):
            if count >= cap and not standing.voted:
                raise Refused(
                    f"your network has added {cap} votes to this tool in 24 h, the most it may",
                    oldest + DAY_SECONDS - now,
                )
        insert_vote(db, tool, voter, verdict, networks)

    def _tool(self, store: Store, slug: str, voter: str | None) -> dict[str, Any] | None:
        card = store.get_tool(slug)
        if card is None:
            return None
        keys = {p.key for p in self.personas}
        latest = store.latest_reviews(slug)
        reviews = [r for key, found in latest.items() if key in keys for r in found]
        document = tool_document(card, reviews, self.personas)
        return {
            "tool": document["tool"],
            "panel": document["panel"],
            "community": community(store, slug),
            "your_vote": None if voter is None else store.vote_of(slug, WEB_VOTER + voter),
        }

    def _submit(
        self, store: Store, card: ToolCard, compare_with: list[str], address: str
    ) -> dict[str, Any]:
        others = []
        for slug in compare_with:
            other = store.get_tool(slug)
            if other is None:
                raise InputError("no such tool in the store to compare with", tool=slug)
            if other.slug == card.slug:
                raise InputError("a tool cannot be compared with itself", tool=slug)
            others.append(other)
        queue = QueueStore(store)
        self._take_card(store, queue, address)
        added = add_card(queue, self.personas, card, others, self.settings.samples)
        pages = [f"compare/{comparison_slug(card.slug, other.slug)}.html" for other in others]
        return {
            "tool": card.slug,
            "queued": asdict(added),
            "pages": [f"tools/{card.slug}.html", *pages],
        }

    def _take_card(self, store: Store, queue: QueueStore, address: str) -> None:
        """Spend one card from the address's and the token's hourly budgets, or raise Refused
        (the queue full, a budget spent)."""
        waiting, most = queue.waiting_tools(), self.settings.card_queue
        if waiting >= most:
            raise Refused(f"the review queue is full ({waiting} tools wait, at most {most})", 60)
        settings = self.settings
        for budget, rate, whose in (
            (address, settings.card_address_rate, "your address"),
            (self._token_budget, settings.card_rate, "the submit token"),
        ):
            spend = ("cards", HOUR_SECONDS / rate, HOUR_SECONDS)
            wait = store.reserve(CARD_BUDGET + budget, "", [spend])
            if wait > 0:
                raise Refused(f"{whose} has sent {rate} cards in an hour, the most it may", wait)

    def _write_probe(self) -> None:
        """Write the probe row through the health lane's own store (opened on first use)."""
        lane = self._prober
        if lane.store is None:
            lane.store = open_store(self.settings.db, HEALTH_SECONDS - DEADLINE_MARGIN)
        lane.store.probe(self._probe_name)


def _cancelling() -> bool:
    """Return whether the running task itself is being cancelled (not just a call given up)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _given_up(future: Future[Any]) -> StoreUnavailable:
    """Return the error of a call given up after CALL_SECONDS: nothing written if it never
    began (it never will), else not known (it may still land)."""
    if future.cancelled():
        return StoreUnavailable(
            f"the store is busy: not reached within {CALL_SECONDS:g} s", written=False
        )
    return StoreUnavailable(f"the store did not answer within {CALL_SECONDS:g} s", written=None)


def _forget(future: asyncio.Future[Any]) -> None:
    """Take a given-up call's outcome, so that asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()
