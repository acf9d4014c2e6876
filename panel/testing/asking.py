"""Asking a reviewer directly, as the tests do: one review, or a card's panel, planned and
carried out on the one path every run takes (panel.review)."""

from __future__ import annotations

from panel.cards import ToolCard
from panel.errors import ProviderError
from panel.personas import Persona
from panel.questions import review_of
from panel.review import Reviewer, answer_all, call_limits
from panel.store import StoredReview


async def ask_review(reviewer: Reviewer, card: ToolCard, persona: Persona) -> StoredReview:
    """Return persona's review of card, asked now (one sample)."""
    return await reviewer.ask(reviewer.call(review_of(card, persona, 1), 0))


async def review_card(
    reviewer: Reviewer,
    card: ToolCard,
    personas: list[Persona],
    *,
    concurrency: int,
    fresh: bool = False,
) -> tuple[list[StoredReview], dict[str, ProviderError]]:
    """Return every persona's review of card (stored ones reused unless fresh) and the first
    error of each persona that failed."""
    planned = [reviewer.plan(review_of(card, persona, 1), fresh) for persona in personas]
    return await answer_all(reviewer, planned, call_limits(reviewer, concurrency))
