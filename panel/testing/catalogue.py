"""A catalogue in a store without a model: tools with every persona's review and comparisons
between them, written straight into the store, each at a time of its own. What the site's
tests and timings need (a site build reads the store, not the models)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import replace

from panel.cards import ToolCard
from panel.store import Store, StoredPair, StoredReview, insert_answer, insert_comparison

PERSONAS = ("builder", "skeptic", "futurist", "founder")
CATEGORIES = ("Developer Tools", "Productivity", "Design", "Writing")
START = 1_780_000_000.0
"""The time of the first tool of a catalogue (epoch seconds)."""


def card(number: int, categories: tuple[str, ...] = CATEGORIES, tagline: str = "") -> ToolCard:
    """Return the card of tool number `number` (slug tool-00042), in one of categories."""
    return ToolCard(
        name=f"Tool {number:05d}",
        slug=f"tool-{number:05d}",
        tagline=tagline or f"Does thing {number} quickly",
        description=f"Tool number {number} does one thing well. " * 8,
        category=categories[number % len(categories)],
        entry="Free",
        pricing="Free tier",
    )


def reviews(tool: ToolCard, at: float, seed: int = 0) -> list[StoredReview]:
    """Return every persona's review of a card, made at `at`, with scores drawn from seed."""
    draw = random.Random(f"{tool.slug}/{seed}")
    asked = StoredReview(
        tool.slug, tool.content_hash(), "", "v1", "openai", "loopback", 0, "skip", "", {}, 1, at
    )
    found = []
    for index, persona in enumerate(PERSONAS):
        score = draw.randint(20, 95)
        found.append(
            replace(
                asked,
                persona=persona,
                score=score,
                verdict="ship" if score >= 60 else "skip",
                review=f"The {persona} on {tool.name}: " + "a measured view. " * 12,
                created_at=at + index / 100,
            )
        )
    return found


def add_tools(
    store: Store, numbers: Iterable[int], categories: tuple[str, ...] = CATEGORIES
) -> None:
    """Store the tools numbered `numbers` with their reviews, tool n at START + n."""
    numbered = list(numbers)
    cards = [card(n, categories) for n in numbered]
    made = [r for c, n in zip(cards, numbered, strict=True) for r in reviews(c, START + n)]
    store.import_records(cards, made)


def add_comparisons(store: Store, pairs: Iterable[tuple[int, int]], at: float) -> None:
    """Store comparisons of the numbered tools, one a second from `at`, in one transaction."""
    with store.transaction() as db:
        for offset, (a, b) in enumerate(pairs):
            insert_comparison(db, f"tool-{a:05d}", f"tool-{b:05d}", at=at + offset)


def judge(store: Store, pairs: Iterable[tuple[int, int]], at: float) -> int:
    """Store every persona's judgment of each pair of numbered tools in both orders, made at
    `at`, as one run with one model would have: the tool whose number is larger modulo 7 is
    preferred four times in five (of their stored cards). Return how many were stored."""
    stored = 0
    with store.transaction() as db:
        for n, (a, b) in enumerate(pairs):
            stored_cards = {n: store.get_tool(f"tool-{n:05d}") for n in (a, b)}
            for first, second in ((a, b), (b, a)):
                one, two = stored_cards[first], stored_cards[second]
                assert one is not None and two is not None, "judge stored tools only"
                shown = (one.slug, two.slug, one.content_hash(), two.content_hash())
                for persona in PERSONAS:
                    won = (n + len(persona)) % 5 != 0
                    prefers = "first" if (first % 7 > second % 7) == won else "second"
                    why = f"The {persona} prefers the {prefers} card."
                    answer = StoredPair(*shown, persona, "v1", "openai", "m", prefers, why, 1, at)
                    insert_answer(db, (one, two), answer)
                    stored += 1
    return stored


def random_pairs(tools: int, count: int, seed: int = 1) -> list[tuple[int, int]]:
    """Return `count` distinct pairs of tools numbered below `tools`, drawn from seed."""
    draw = random.Random(seed)
    found: dict[tuple[int, int], None] = {}
    while len(found) < count:
        a, b = draw.sample(range(tools), 2)
        found.setdefault((a, b))
    return list(found)


def make(store: Store, tools: int, comparisons: int, seed: int = 1) -> None:
    """Fill store with a catalogue: `tools` tools, `comparisons` comparisons among them."""
    for start in range(0, tools, 2000):
        add_tools(store, range(start, min(tools, start + 2000)))
    add_comparisons(store, random_pairs(tools, comparisons, seed), START + tools)


def edit(store: Store, number: int, tagline: str) -> None:
    """Change tool number's card (its tagline) and store the panel's new reviews of it, as
    `panel review` of the edited card would."""
    changed = card(number, tagline=tagline)
    stored = store.get_tool(changed.slug)
    if stored is not None:
        changed = changed.model_copy(update={"category": stored.category})
    store.import_records([changed], reviews(changed, time.time(), seed=1))
