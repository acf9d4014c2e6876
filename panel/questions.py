"""Questions: what a judge is asked, of every kind, through one path.

A question is one persona asked about one card (a review) or two cards, one shown first (a pair
judgment), `samples` times. Its kind says what differs: the prompt it renders, the answer model
it validates, and the record a valid answer becomes. Everything else (the key it is stored
under, the mitigations that shape what the judge sees, the ask, re-ask, retry and store, the call
log) is the same for every kind and written once, in panel.review. A new kind of question is a
new Kind here, not a copy of the path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from panel.cards import ToolCard
from panel.mitigations import Mitigations
from panel.personas import Answer, Checked, PairAnswer, Persona
from panel.prompts import Prompt, Prompts
from panel.providers.base import Request
from panel.store import PAIR, REVIEW, StoredPair, StoredReview

S = TypeVar("S", StoredReview, StoredPair)


class Kind(Generic[S]):
    """What one kind of question renders, validates and stores."""

    name: str
    """As the store names the kind (panel.store.REVIEW, PAIR)."""
    noun: str
    """How an error names its answer: "no valid review"."""
    record_type: type[S]

    def version(self, prompts: Prompts, persona: Persona) -> str:
        """Return the prompt version of persona's question of this kind."""
        raise NotImplementedError

    def prompt(
        self,
        prompts: Prompts,
        persona: Persona,
        cards: tuple[ToolCard, ...],
        sample: int,
        mitigations: Mitigations,
    ) -> Prompt:
        """Return the messages asking persona about the cards, as the mitigations show them."""
        raise NotImplementedError

    def answer_model(self, persona: Persona) -> type[Checked]:
        raise NotImplementedError

    def schema(self, persona: Persona) -> dict[str, Any]:
        raise NotImplementedError

    def record(
        self,
        cards: tuple[ToolCard, ...],
        provider: str,
        request: Request,
        answer: Checked,
        attempts: int,
        cost_usd: float | None,
    ) -> S:
        """Return what a valid answer to request is stored as."""
        raise NotImplementedError


class _Review(Kind[StoredReview]):
    name, noun, record_type = REVIEW, "review", StoredReview

    def version(self, prompts: Prompts, persona: Persona) -> str:
        return prompts.version(persona)

    def prompt(
        self,
        prompts: Prompts,
        persona: Persona,
        cards: tuple[ToolCard, ...],
        sample: int,
        mitigations: Mitigations,
    ) -> Prompt:
        return prompts.review(persona, cards[0], sample=sample, mitigations=mitigations)

    def answer_model(self, persona: Persona) -> type[Checked]:
        return persona.answer_model

    def schema(self, persona: Persona) -> dict[str, Any]:
        return persona.answer_schema

    def record(
        self,
        cards: tuple[ToolCard, ...],
        provider: str,
        request: Request,
        answer: Checked,
        attempts: int,
        cost_usd: float | None,
    ) -> StoredReview:
        assert isinstance(answer, Answer)
        return StoredReview(
            tool=cards[0].slug,
            card_hash=cards[0].content_hash(),
            persona=request.persona,
            prompt_version=request.prompt_version,
            provider=provider,
            model=request.model,
            score=answer.score,
            verdict=answer.verdict,
            review=answer.review,
            fields=answer.model_dump(exclude=set(Answer.model_fields)),
            attempts=attempts,
            created_at=time.time(),
            sample=request.sample,
            mitigations=request.mitigations,
            temperature=request.temperature,
            cost_usd=cost_usd,
        )


class _Pair(Kind[StoredPair]):
    name, noun, record_type = PAIR, "judgment", StoredPair

    def version(self, prompts: Prompts, persona: Persona) -> str:
        return prompts.pair_version(persona)

    def prompt(
        self,
        prompts: Prompts,
        persona: Persona,
        cards: tuple[ToolCard, ...],
        sample: int,
        mitigations: Mitigations,
    ) -> Prompt:
        first, second = cards
        return prompts.pair(persona, first, second, sample=sample, mitigations=mitigations)

    def answer_model(self, persona: Persona) -> type[Checked]:
        return persona.pair_model

    def schema(self, persona: Persona) -> dict[str, Any]:
        return persona.pair_schema

    def record(
        self,
        cards: tuple[ToolCard, ...],
        provider: str,
        request: Request,
        answer: Checked,
        attempts: int,
        cost_usd: float | None,
    ) -> StoredPair:
        assert isinstance(answer, PairAnswer)
        first, second = cards
        return StoredPair(
            first=first.slug,
            second=second.slug,
            first_hash=first.content_hash(),
            second_hash=second.content_hash(),
            persona=request.persona,
            prompt_version=request.prompt_version,
            provider=provider,
            model=request.model,
            prefers=answer.prefers,
            reason=answer.reason,
            attempts=attempts,
            created_at=time.time(),
            sample=request.sample,
            mitigations=request.mitigations,
            temperature=request.temperature,
        )


REVIEW_KIND: Kind[StoredReview] = _Review()
PAIR_KIND: Kind[StoredPair] = _Pair()
KINDS: dict[str, Kind[Any]] = {kind.name: kind for kind in (REVIEW_KIND, PAIR_KIND)}


@dataclass(frozen=True)
class Question(Generic[S]):
    """One persona asked about one or two cards (the one shown first first): samples 0 to
    `samples` - 1."""

    kind: Kind[S]
    cards: tuple[ToolCard, ...]
    persona: Persona
    samples: int

    @property
    def label(self) -> str:
        """Return how the call log, errors and cassettes name what is asked about: a tool's
        slug, or a pair's "first-vs-second"."""
        return label_of(tuple(card.slug for card in self.cards))


def label_of(slugs: tuple[str, ...]) -> str:
    """Return how the call log names what was asked about: "a", or "a-vs-b" for a pair (the one
    shown first first)."""
    return "-vs-".join(slugs)


def review_of(card: ToolCard, persona: Persona, samples: int) -> Question[StoredReview]:
    return Question(REVIEW_KIND, (card,), persona, samples)


def pair_of(
    first: ToolCard, second: ToolCard, persona: Persona, samples: int
) -> Question[StoredPair]:
    return Question(PAIR_KIND, (first, second), persona, samples)
