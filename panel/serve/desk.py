"""The server's desk: what the API asks of the store, done in threads of its own so the event
loop never waits on the database.

A SQLite store is one connection, used by one thread (its writes go one at a time anyway); a
PostgreSQL store is a pool shared by as many threads as it has connections. Everything here is
what the command line does already, reused: votes and voter ids (`panel vote`, panel.store),
the community summary (panel.compare), the review document (panel.results), the queue
(`panel queue add`, panel.queue.pairs) and the shared rate limiter (Store.reserve).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from panel.cards import ToolCard
from panel.compare import community, comparison_slug
from panel.config import Settings
from panel.errors import InputError
from panel.personas import Persona
from panel.queue.pairs import add_card
from panel.queue.store import QueueStore
from panel.results import tool_document
from panel.store import Store, insert_vote
from panel.store.sql import is_url

T = TypeVar("T")

POSTGRES_THREADS = 4
"""Threads on a PostgreSQL store: one per connection of its pool (panel.store.sql)."""

VOTE_BUDGET = "votes@"
"""The shared limiter's budgets of votes are named this, then the client's address."""

VOTE_BURST_SECONDS = 60.0
"""An address may spend a minute's worth of votes at once, then one every 60/vote_rate s."""

WEB_VOTER = "web:"
"""A voter id from the site's cookie is stored under this prefix (a `panel vote --voter`
name is stored as typed, normalised): the two never meet."""


@dataclass(frozen=True)
class Voted:
    """What became of a vote: counted (community is the tool's new summary), or not."""

    community: dict[str, Any] | None = None
    your_vote: str | None = None
    wait: float = 0.0
    """Seconds before this address may vote again (the vote was not counted)."""
    unknown: bool = False
    """No such tool (nothing was counted)."""


class Desk:
    """The store, in threads of its own, and what the API does with it."""

    def __init__(self, settings: Settings, personas: list[Persona]) -> None:
        self.settings = settings
        self.personas = personas
        threads = POSTGRES_THREADS if is_url(settings.db) else 1
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="panel-store")
        self._store: Store | None = None

    async def open(self) -> None:
        """Open the store (in the desk's thread: a SQLite connection stays in the thread that
        made it)."""
        self._store = await self._run(Store, self.settings.db)

    async def close(self) -> None:
        if self._store is not None:
            await self._run(self._store.close)
        self._threads.shutdown(wait=True)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(fn, *args))

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the desk is not open")
        return self._store

    # --- what the API asks ----------------------------------------------------------------

    async def vote(self, tool: str, voter: str, verdict: str, address: str) -> Voted:
        """Count voter's vote on tool, unless address has spent its budget of votes."""
        return await self._run(self._vote, tool, voter, verdict, address)

    async def tool(self, slug: str, voter: str | None) -> dict[str, Any] | None:
        """Return a tool's review summary with its community votes, None if there is no such tool."""
        return await self._run(self._tool, slug, voter)

    async def submit(self, card: ToolCard, compare_with: list[str]) -> dict[str, Any]:
        """Store a card, queue its reviews and its comparison with each tool named; return what
        was queued."""
        return await self._run(self._submit, card, compare_with)

    async def healthy(self) -> bool:
        """Return whether the store answers."""
        return await self._run(self._healthy)

    # --- in the desk's threads ----------------------------------------------------------------

    def _vote(self, tool: str, voter: str, verdict: str, address: str) -> Voted:
        store = self.store
        if not store.has_tool(tool):
            return Voted(unknown=True)
        # The spend and the vote are one transaction: a vote past the budget is not stored,
        # and a vote stored has been paid for.
        cost = 60.0 / self.settings.vote_rate
        wait = store.reserve(
            VOTE_BUDGET + address,
            "",
            [("votes", cost, VOTE_BURST_SECONDS)],
            then=functools.partial(insert_vote, tool=tool, voter=WEB_VOTER + voter, vote=verdict),
        )
        if wait > 0:
            return Voted(wait=wait)
        return Voted(community=community(store, tool), your_vote=verdict)

    def _tool(self, slug: str, voter: str | None) -> dict[str, Any] | None:
        store = self.store
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

    def _submit(self, card: ToolCard, compare_with: list[str]) -> dict[str, Any]:
        store = self.store
        others = []
        for slug in compare_with:
            other = store.get_tool(slug)
            if other is None:
                raise InputError("no such tool in the store to compare with", tool=slug)
            if other.slug == card.slug:
                raise InputError("a tool cannot be compared with itself", tool=slug)
            others.append(other)
        added = add_card(QueueStore(store), self.personas, card, others, self.settings.samples)
        pages = [f"compare/{comparison_slug(card.slug, other.slug)}.html" for other in others]
        return {
            "tool": card.slug,
            "queued": asdict(added),
            "pages": [f"tools/{card.slug}.html", *pages],
        }

    def _healthy(self) -> bool:
        self.store.db.execute("SELECT 1").fetchone()
        return True
