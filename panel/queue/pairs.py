"""`panel queue add`: a file of pairs (CSV or JSONL) read and validated, then queued.

Every card is checked before anything is queued; a pair already queued or done adds nothing.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from panel.cards import ToolCard, resolve_card
from panel.errors import CardError, InputError
from panel.files import read_capped
from panel.parsing import ParseError, load_json
from panel.personas import Persona
from panel.queue.store import QueueStore, ReviewKey
from panel.store import Store

MAX_PAIRS_BYTES = 8 * 2**20
MAX_PAIRS = 50_000
"""A queue file holds at most this many pairs (each may cost eight model calls)."""


def read_pairs(path: Path, store: Store) -> list[tuple[ToolCard, ToolCard]]:
    """Read a CSV (`a,b` per line) or JSONL (`{"a": ..., "b": ...}`) file of pairs; validate all."""
    try:
        text = read_capped(path, MAX_PAIRS_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise CardError(str(path), "is not UTF-8 text") from None
    raw: list[tuple[int, str, str]] = []
    if path.suffix.lower() in (".jsonl", ".json"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = load_json(line)
            except ParseError as exc:
                raise CardError(f"{path}:{number}", f"not valid JSON ({exc})") from None
            if (
                not isinstance(record, dict)
                or not isinstance(record.get("a"), str)
                or not isinstance(record.get("b"), str)
            ):
                raise CardError(
                    f"{path}:{number}", 'each line must be {"a": ..., "b": ...} with two strings'
                )
            raw.append((number, record["a"], record["b"]))
    else:
        for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].startswith("#") or (number == 1 and cells == ["a", "b"]):
                continue
            if len(cells) != 2 or not all(cells):
                raise CardError(f"{path}:{number}", "each line must be two tools: a,b")
            raw.append((number, cells[0], cells[1]))
    if not raw:
        raise CardError(str(path), "no pairs in file")
    if len(raw) > MAX_PAIRS:
        raise CardError(f"{path}:{raw[MAX_PAIRS][0]}", f"more than {MAX_PAIRS} pairs in one file")
    cards: dict[str, ToolCard] = {}
    pairs = []
    for number, a, b in raw:
        pair = []
        for ref in (a, b):
            # A relative card path is read from the working directory, else beside the queue file.
            candidate = (
                ref
                if Path(ref).exists() or not (path.parent / ref).exists()
                else str(path.parent / ref)
            )
            try:
                card = cards.get(ref) or resolve_card(candidate, store.get_tool)
            except InputError as exc:
                raise CardError(f"{path}:{number}", str(exc)) from None
            cards[ref] = card
            pair.append(card)
        if pair[0].slug == pair[1].slug:
            raise CardError(f"{path}:{number}", f"both sides are {pair[0].slug}")
        pairs.append((pair[0], pair[1]))
    slugs: dict[str, ToolCard] = {}
    for card in cards.values():
        if card.slug in slugs and slugs[card.slug] != card:
            raise CardError(str(path), f"two different cards share the slug '{card.slug}'", "slug")
        slugs[card.slug] = card
    return pairs


@dataclass
class Added:
    jobs: int = 0
    already: int = 0
    tools: int = 0
    tasks: int = 0


def add_pairs(
    queue: QueueStore,
    personas: list[Persona],
    pairs: list[tuple[ToolCard, ToolCard]],
    samples: int = 1,
) -> Added:
    """Queue every pair not queued or done yet, and the review tasks they need (`samples`
    answers from each persona)."""
    added = Added()
    added.jobs, added.already = queue.add_jobs(pairs)
    queue.reopen_stale_jobs()  # a card given again with new content: its pages are written anew
    tools = {card.slug: card for pair in pairs for card in pair}
    for slug, card in tools.items():
        latest = queue.store.latest_reviews(slug)
        reviewed = {
            key for key, found in latest.items() if {r.sample for r in found} >= set(range(samples))
        }
        keys = {p.key: ReviewKey(card.content_hash()) for p in personas}
        added.tasks += queue.add_tasks(
            slug, {p.key: p.key in reviewed for p in personas}, samples, keys
        )
    added.tools = len(tools)
    return added
