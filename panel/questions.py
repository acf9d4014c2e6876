"""Questions: what a judge is asked, of every kind, through one path.

A question is one persona asked about one card (a review), two cards, one shown first (a pair
judgment), or a launch page read into a card (a reading, by the READER), `samples` times. Its kind says what differs: the prompt it renders, the answer model
it validates, and the record a valid answer becomes. Everything else (the key it is stored
under, the mitigations that shape what the judge sees, the ask, re-ask, retry and store, the call
log) is the same for every kind and written once, in panel.review. A new kind of question is a
new Kind here, not a copy of the path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Generic, TypeVar

from panel.cards import ToolCard
from panel.mitigations import Mitigations
from panel.personas import CARD_SCHEMA, Answer, CardAnswer, Checked, PairAnswer, Persona
from panel.prompts import Prompt, Prompts
from panel.providers.base import Request
from panel.sources import Page
from panel.store import CARD, PAIR, REVIEW, StoredCard, StoredPair, StoredReview

S = TypeVar("S", StoredReview, StoredPair, StoredCard)

Subject = ToolCard | Page
"""What a question is about: tool cards (a review, a pair judgment) or a page (a reading)."""

Record = Callable[[tuple[Subject, ...], Checked, dict[str, Any], "float | None"], S]
"""(cards, answer, asked, cost) -> what a valid answer is stored as (`asked`: see `asked`)."""


@dataclass(frozen=True)
class Kind(Generic[S]):
    """What one kind of question renders, validates and stores."""

    name: str
    """As the store names the kind (panel.store.REVIEW, PAIR)."""
    noun: str
    """How an error names its answer: "no valid review"."""
    record_type: type[S]
    version: Callable[[Prompts, Persona], str]
    """The prompt version of persona's question of this kind."""
    render: Callable[[Prompts, Persona, tuple[Subject, ...], int, Mitigations], Prompt]
    """The messages asking persona about the cards (sample n), as the mitigations show them."""
    answer_model: Callable[[Persona], type[Checked]]
    schema: Callable[[Persona], dict[str, Any]]
    record: Record[S]
    shaped: bool = True
    """Whether the mitigations shape what the judge sees (not a page being read: the reader
    must see names, and its answer is checked against the page in code)."""

    def shaping(self, mitigations: Mitigations, subjects: tuple[Subject, ...]) -> tuple[str, ...]:
        """Return the mitigations that shape this kind's question about subjects (its key)."""
        return mitigations.shaping(*cards_of(subjects)) if self.shaped else ()


def cards_of(subjects: tuple[Subject, ...]) -> tuple[ToolCard, ...]:
    """Return the subjects of a question about tool cards, as cards."""
    cards = tuple(card for card in subjects if isinstance(card, ToolCard))
    assert len(cards) == len(subjects), "a question about tool cards"
    return cards


def asked(provider: str, request: Request, attempts: int) -> dict[str, Any]:
    """Return what any answer records of how it was asked: persona, prompt version, provider,
    model, sample, mitigations and temperature (with its card hashes, its key), the attempts it
    took and when."""
    return {
        "attempts": attempts,
        "created_at": time.time(),
        "persona": request.persona,
        "prompt_version": request.prompt_version,
        "provider": provider,
        "model": request.model,
        "sample": request.sample,
        "mitigations": request.mitigations,
        "temperature": request.temperature,
    }


def _review(
    subjects: tuple[Subject, ...], answer: Checked, how: dict[str, Any], cost: float | None
) -> StoredReview:
    assert isinstance(answer, Answer)
    cards = cards_of(subjects)
    return StoredReview(
        tool=cards[0].slug,
        card_hash=cards[0].content_hash(),
        score=answer.score,
        verdict=answer.verdict,
        review=answer.review,
        fields=answer.model_dump(exclude=set(Answer.model_fields)),
        cost_usd=cost,
        probabilities=answer.probabilities,
        **how,
    )


def _pair(
    subjects: tuple[Subject, ...], answer: Checked, how: dict[str, Any], cost: float | None
) -> StoredPair:
    assert isinstance(answer, PairAnswer)
    first, second = cards_of(subjects)
    return StoredPair(
        first=first.slug,
        second=second.slug,
        first_hash=first.content_hash(),
        second_hash=second.content_hash(),
        prefers=answer.prefers,
        reason=answer.reason,
        probabilities=answer.probabilities,
        **how,
    )


def _reading(
    subjects: tuple[Subject, ...], answer: Checked, how: dict[str, Any], cost: float | None
) -> StoredCard:
    assert isinstance(answer, CardAnswer)
    (page,) = subjects
    assert isinstance(page, Page)
    one = {k: v for k, v in how.items() if k not in ("sample", "mitigations")}
    return StoredCard(page.url, page.content_hash(), answer.model_dump(), cost_usd=cost, **one)


def _render_review(
    prompts: Prompts, persona: Persona, cards: tuple[Subject, ...], n: int, shown: Mitigations
) -> Prompt:
    return prompts.review(persona, cards_of(cards)[0], sample=n, mitigations=shown)


def _render_pair(
    prompts: Prompts, persona: Persona, cards: tuple[Subject, ...], n: int, shown: Mitigations
) -> Prompt:
    return prompts.pair(persona, *cards_of(cards), sample=n, mitigations=shown)


def _render_reading(
    prompts: Prompts, persona: Persona, pages: tuple[Subject, ...], n: int, shown: Mitigations
) -> Prompt:
    (page,) = pages
    assert isinstance(page, Page)
    return prompts.reading(persona, page)


REVIEW_KIND = Kind(
    REVIEW,
    "review",
    StoredReview,
    Prompts.version,
    _render_review,
    attrgetter("answer_model"),
    attrgetter("answer_schema"),
    _review,
)
PAIR_KIND = Kind(
    PAIR,
    "judgment",
    StoredPair,
    Prompts.pair_version,
    _render_pair,
    attrgetter("pair_model"),
    attrgetter("pair_schema"),
    _pair,
)
CARD_KIND = Kind(
    CARD,
    "card",
    StoredCard,
    Prompts.reading_version,
    _render_reading,
    lambda _persona: CardAnswer,
    lambda _persona: CARD_SCHEMA,
    _reading,
    shaped=False,
)
KINDS: dict[str, Kind[Any]] = {kind.name: kind for kind in (REVIEW_KIND, PAIR_KIND, CARD_KIND)}


@dataclass(frozen=True)
class Question(Generic[S]):
    """One persona asked about one or two cards (the one shown first first): samples 0 to
    `samples` - 1."""

    kind: Kind[S]
    cards: tuple[Subject, ...]
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


def reading_of(page: Page, reader: Persona) -> Question[StoredCard]:
    """Return the question that reads page into a card (one sample)."""
    return Question(CARD_KIND, (page,), reader, 1)
