"""The site keeper: `panel serve` brings the site up to date (panel site build: the pages whose
inputs changed, with the options of its last build) when the store holds tools, reviews or
comparisons the pages do not show yet, e.g. a card sent to POST /api/cards
once `queue run` has reviewed and compared it.

Votes do not rebuild anything: the pages' script reads the counts live from the API, and a page
without script shows the counts of its last build. The keeper looks every few seconds; the
workers of one machine share the work through a lock file and a mark of the store version the
site was built from (both dotfiles in the output folder, which the server never serves). The
keeper also forgets the vote and card budgets of addresses that have been quiet for long
enough.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from panel.config import Settings
from panel.files import write_atomic
from panel.personas import Persona
from panel.serve.desk import CARD_BUDGET, VOTE_BUDGET
from panel.site import update_site
from panel.store import Store

LOCK_FILE = ".panel-serve.lock"
MARK_FILE = ".panel-serve-built"
FORGET_EVERY = 600.0
"""Seconds between two sweeps of spent vote budgets."""

log = logging.getLogger("uvicorn.error")  # uvicorn's own log: our lines show beside its own


class Keeper:
    """Rebuilds the site under out when the store changed (see the module docstring)."""

    def __init__(self, settings: Settings, personas: list[Persona], every: float) -> None:
        """every: seconds between two looks at the store (0: never rebuild, only forget the
        spent vote budgets, every FORGET_EVERY seconds)."""
        self.settings = settings
        self.personas = personas
        self.every = every
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="panel-keeper")
        self._store: Store | None = None
        self._forgotten_at = 0.0

    async def run(self) -> None:
        """Look, rebuild if needed, wait, again: until cancelled. A failed rebuild is logged
        and tried again at the next look."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    await loop.run_in_executor(self._thread, self.look)
                except Exception as exc:  # a full disk, a store gone away: say so, keep serving
                    log.error("panel: the site was not rebuilt: %s", exc)
                await asyncio.sleep(self.every or FORGET_EVERY)
        finally:
            await loop.run_in_executor(self._thread, self.close)
            self._thread.shutdown(wait=False)

    def look(self) -> bool:
        """Rebuild the site if the store changed since it was built; return whether it was."""
        if self._store is None:
            self._store = Store(self.settings.db)
        self._forget_budgets(self._store)
        if not self.every:
            return False
        out = self.settings.out
        out.mkdir(parents=True, exist_ok=True)
        with _held(out / LOCK_FILE) as held:
            if not held:
                return False  # another worker of this machine is at it
            version = self._store.site_version()
            mark = out / MARK_FILE
            if mark.exists() and mark.read_text(encoding="utf-8").strip() == version:
                return False
            started = time.monotonic()
            counts = update_site(self._store, self.personas, out)
            write_atomic(mark, version + "\n")
        log.info(
            "panel: site rebuilt in %.1f s: %d comparison(s), %d tool page(s)",
            time.monotonic() - started,
            counts["comparisons"],
            counts["tools"],
        )
        return True

    def _forget_budgets(self, store: Store) -> None:
        if time.monotonic() - self._forgotten_at >= FORGET_EVERY:
            store.forget_budgets(VOTE_BUDGET)
            store.forget_budgets(CARD_BUDGET)
            self._forgotten_at = time.monotonic()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


@contextlib.contextmanager
def _held(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on path if no other process does: yield True, else False."""
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
