"""`panel queue add`: a file of pairs (CSV or JSONL) read and validated, then queued; and a card
sent to `panel serve`, queued with the comparisons named with it.

Every card is checked before anything is queued; a pair already queued or done adds nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from panel.cards import ToolCard, category_slug, resolve_card
from panel.errors import CardError, InputError, PageError, ProviderError
from panel.feeds import MAX_ENTRIES, read_feed
from panel.files import read_capped
from panel.intake import card_from
from panel.parsing import ParseError, load_json
from panel.personas import Persona
from panel.queue.store import QueueStore
from panel.runtime import Runtime
from panel.store import PAIR, REVIEW, Store

MAX_PAIRS_BYTES = 8 * 2**20
MAX_PAIRS = 50_000
"""A queue file holds at most this many pairs (each may cost eight model calls)."""


def read_refs(path: Path) -> list[tuple[int, str, str]]:
    """Return the pairs a CSV (`a,b` per line) or JSONL (`{"a": ..., "b": ...}`) file names,
    as (line, a, b): card paths, slugs or URLs."""
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
    return raw


def read_pairs(
    path: Path, store: Store, read: Mapping[str, ToolCard] | None = None
) -> list[tuple[ToolCard, ToolCard]]:
    """Read a file of pairs (read_refs) and validate every card; a URL's card is the one
    `read` holds (panel.intake reads them first)."""
    raw = read_refs(path)
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
                card = cards.get(ref) or resolve_card(candidate, store.get_tool, read)
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
    """What `queue add` did (its JSON): jobs added, pairs queued before, tools, and the units
    that are new work."""

    jobs: int = 0
    already: int = 0
    tools: int = 0
    tasks: int = 0
    """Review tasks."""
    pair_tasks: int = 0

    def count(self, more: Added) -> None:
        """Add what another `queue add` step did to this one's counts."""
        for name, value in vars(more).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class Fed:
    """What `queue add --feed` did: what it queued, and the feed's entries queued, seen
    before, and skipped (each with its reason)."""

    added: Added = field(default_factory=Added)
    entries: int = 0
    seen: int = 0
    skipped: list[str] = field(default_factory=list)


def add_pairs(
    queue: QueueStore,
    personas: list[Persona],
    pairs: list[tuple[ToolCard, ToolCard]],
    samples: int = 1,
    *,
    pairwise: bool = False,
) -> Added:
    """Queue every pair not queued or done yet, and the review tasks they need (`samples`
    answers from each persona); with pairwise, each persona's judgment of each pair too (both
    orders, `samples` answers each), run once both tools are reviewed."""
    added = Added()
    added.jobs, added.already = queue.add_jobs(pairs, pairwise)
    queue.reopen_stale_jobs()  # a card given again with new content: its pages are written anew
    tools = {card.slug: card for pair in pairs for card in pair}
    added.tasks = _add_reviews(queue, personas, tools, samples)
    added.tools = len(tools)
    if pairwise:
        for a, b in {(a.slug, b.slug) for a, b in pairs}:
            judged = _judged(queue, (a, b), samples)
            added.pair_tasks += queue.add_units(
                PAIR, (a, b), {p.key: p.key in judged for p in personas}, samples
            )
    return added


def add_card(
    queue: QueueStore,
    personas: list[Persona],
    card: ToolCard,
    others: list[ToolCard],
    samples: int = 1,
) -> Added:
    """Store a card and queue its reviews, and its comparison with each of others (stored
    tools): what a card sent to `panel serve` asks for."""
    if others:
        return add_pairs(queue, personas, [(card, other) for other in others], samples)
    queue.store.save_tool(card)
    return Added(tools=1, tasks=_add_reviews(queue, personas, {card.slug: card}, samples))


def others_named(store: Store, spec: str | None) -> list[ToolCard]:
    """Return the stored tools `--compare-with` names: a slug, or every tool of a category
    (`category:NAME`, matched as its slug); none named, none."""
    if spec is None:
        return []
    if spec.startswith("category:"):
        wanted = category_slug(spec.removeprefix("category:"))
        found = [card for card in store.tools() if category_slug(card.category) == wanted]
    else:
        found = [card] if (card := store.get_tool(spec)) else []
    if not found:
        raise InputError("names no stored tool", field="--compare-with", path=spec)
    return found


async def add_feed(
    queue: QueueStore,
    runtime: Runtime,
    url: str,
    others: list[ToolCard],
    *,
    pairwise: bool = False,
) -> Fed:
    """Queue a review of each new entry of the feed at url (its link read into a card), and
    its comparison with each of others; an entry seen before is skipped, and so is one whose
    page cannot be read (with its reason: it is tried again next time). Idempotent."""
    feed = await read_feed(url, runtime.settings)
    fed = Fed(skipped=list(feed.problems))
    if feed.total > MAX_ENTRIES:
        fed.skipped.append(f"{feed.total - MAX_ENTRIES} entries past the first {MAX_ENTRIES}")
    personas, samples = runtime.personas, runtime.settings.samples
    for entry in feed.entries:
        if queue.store.seen_entry(entry.names) is not None:
            fed.seen += 1
            continue
        try:
            card = (await card_from(runtime, entry.link)).card
        except PageError as exc:
            fed.skipped.append(str(exc))
            continue
        except ProviderError as exc:
            fed.skipped.append(f"{entry.link}: {exc}")
            continue
        pairs = [(card, other) for other in others if other.slug != card.slug]
        if pairs:
            done = add_pairs(queue, personas, pairs, samples, pairwise=pairwise)
        else:
            done = add_card(queue, personas, card, [], samples)
        queue.store.remember_entry(feed.url, entry.names, card.slug)
        fed.entries += 1
        fed.added.count(done)
    return fed


def _add_reviews(
    queue: QueueStore, personas: list[Persona], tools: dict[str, ToolCard], samples: int
) -> int:
    """Queue each persona's review of each tool that lacks one of `samples` answers; return
    how many are new work."""
    pending = 0
    for slug in tools:
        latest = queue.store.latest_reviews(slug)
        reviewed = {
            key for key, found in latest.items() if {r.sample for r in found} >= set(range(samples))
        }
        # The keys the look found stored go along: add_units looks again under them inside
        # its transaction (a review stored since by a worker keeps its task done).
        keys = {key: [found[0].key] for key, found in latest.items()}
        pending += queue.add_units(
            REVIEW, (slug,), {p.key: p.key in reviewed for p in personas}, samples, keys
        )
    return pending


def _judged(queue: QueueStore, pair: tuple[str, str], samples: int) -> set[str]:
    """Return the personas whose newest stored judgments of the pair's current cards hold
    every sample below `samples` in both orders."""
    found: dict[tuple[str, str], set[int]] = {}
    for judgment in queue.store.latest_pairs(pair):
        found.setdefault((judgment.persona, judgment.first), set()).add(judgment.sample)
    wanted = set(range(samples))
    return {
        persona
        for persona, _ in found
        if all(found.get((persona, first), set()) >= wanted for first in pair)
    }
