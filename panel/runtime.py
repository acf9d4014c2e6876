"""The runtime: from settings to a ready panel, and the one place a run's plan is made.

A run (review, compare, eval, queue run) opens a Runtime, asks it for a Plan (every question it
needs, what is stored of each, and the calls still to make) and carries the plan out: exactly
the plan's calls are made (`answer`), none looked up again. A run reaches what it needs directly:
the reviewer (keys, stored answers, a call's request, asking) and the spending (the ceiling,
what was spent). Nothing here talks to a model by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from panel.cards import ToolCard
from panel.compare import comparison_document, comparison_for
from panel.config import Settings
from panel.errors import ProviderError
from panel.mitigations import Mitigations
from panel.personas import Persona, load_personas, with_models
from panel.prompts import Prompts
from panel.providers import make_provider
from panel.providers.base import Provider
from panel.questions import KINDS, PAIR_KIND, REVIEW_KIND, Question, S
from panel.review import Call, Planned, Reviewer, answer_all, call_limits, make_calls
from panel.spending import Estimate, Spending, estimate, unpriced_error
from panel.store import Key, Store, StoredPair, StoredReview


@dataclass(frozen=True)
class Plan:
    """What a run must do: every question it asks, what is stored of each, and the calls
    still to make for the rest."""

    planned: list[Planned[Any]]

    @property
    def calls(self) -> list[Call[Any]]:
        """Every call still to make, once per key (two questions of a run may share one: a
        review no mitigation shaped is the same in both arms of an eval)."""
        return list({call.key: call for p in self.planned for call in p.calls}.values())

    @property
    def answers(self) -> int:
        """Every sample asked for, stored or not: the total a run's progress counts to."""
        return sum(p.question.samples for p in self.planned)

    def about(self, *cards: ToolCard) -> list[Planned[Any]]:
        """Return the planned questions about exactly these cards, in this order."""
        wanted = tuple(card.slug for card in cards)
        return [p for p in self.planned if tuple(c.slug for c in p.question.cards) == wanted]


class Runtime:
    """A ready panel: its settings and personas, and the store, reviewer and spending of a run."""

    def __init__(
        self,
        settings: Settings,
        personas: list[Persona],
        store: Store,
        reviewer: Reviewer,
        *,
        owns_store: bool = True,
        owns_providers: bool = True,
    ) -> None:
        self.settings = settings
        self.personas = personas
        self.reviewer = reviewer
        """Keys, stored answers, a call's request, asking: what a run's calls need."""
        self.spending: Spending = reviewer.spending
        """What the run spent, and the --max-cost ceiling."""
        self._store = store
        self._owns_store = owns_store
        self._owns_providers = owns_providers

    @property
    def mitigations(self) -> Mitigations:
        """What this runtime's judges are kept from seeing."""
        return self.reviewer.mitigations

    def with_mitigations(self, mitigations: Mitigations) -> Runtime:
        """Return this runtime judging with other mitigations: the same settings otherwise, the
        same store, providers and spending (closing it closes nothing: this one owns them)."""
        reviewer = replace(self.reviewer, mitigations=mitigations)
        return Runtime(
            self.settings,
            self.personas,
            self._store,
            reviewer,
            owns_store=False,
            owns_providers=False,
        )

    def temperature(self) -> float:
        """Return the temperature the run's sample sets are asked at."""
        return self.reviewer.temperature_for(self.settings.samples)

    # --- the plan --------------------------------------------------------------------------

    def reviews(
        self, cards: Iterable[ToolCard], samples: int | None = None
    ) -> list[Question[StoredReview]]:
        """Return every persona's review of each card, `samples` each (default: the run's)."""
        count = self.settings.samples if samples is None else samples
        return [Question(REVIEW_KIND, (card,), p, count) for card in cards for p in self.personas]

    def pairs(
        self, pairs: Iterable[tuple[ToolCard, ToolCard]], samples: int | None = None
    ) -> list[Question[StoredPair]]:
        """Return every persona's judgment of each pair in both orders (the pair's first card
        shown first, then the other), `samples` each (default: the run's)."""
        count = self.settings.samples if samples is None else samples
        return [
            Question(PAIR_KIND, shown, persona, count)
            for a, b in pairs
            for shown in ((a, b), (b, a))
            for persona in self.personas
        ]

    def questions(
        self, kind: str, cards: tuple[ToolCard, ...], persona_key: str, samples: int
    ) -> list[Question[Any]]:
        """Return one persona's questions of a kind about the cards (a pair: both orders); []
        if that persona is not on this panel."""
        persona = next((p for p in self.personas if p.key == persona_key), None)
        if persona is None:
            return []
        orders = [cards] if len(cards) == 1 else [cards, cards[::-1]]
        return [Question(KINDS[kind], shown, persona, samples) for shown in orders]

    def plan(self, questions: Iterable[Question[Any]], *, fresh: bool = False) -> Plan:
        """Return the plan of the questions: what is stored of each (nothing with fresh) and
        the calls for the rest."""
        return Plan([self.reviewer.plan(question, fresh) for question in questions])

    def estimate(self, plan: Plan) -> Estimate:
        """Return what the plan's calls will cost; raise ConfigError if a ceiling is set and a
        model's price is unknown (the ceiling could not be kept)."""
        calls = ((call.provider, call.request) for call in plan.calls)
        found = estimate(calls, self._store.output_tokens_seen)
        if found.unpriced and self.settings.max_cost is not None:
            raise unpriced_error(found.unpriced[0], self.settings.named_as("max_cost"))
        return found

    # --- the calls -------------------------------------------------------------------------

    async def answer(
        self, planned: list[Planned[S]], on_done: Callable[[str], None] | None = None
    ) -> tuple[list[S], dict[str, ProviderError]]:
        """Carry out planned questions (a part of a plan): their stored answers, and their
        calls made now up to the run's --concurrency per provider; return the answers and the
        first error of each persona that failed."""
        limits = call_limits(self.reviewer, self.settings.concurrency)
        return await answer_all(self.reviewer, planned, limits, on_done)

    async def make(
        self, plan: Plan, on_done: Callable[[str], None] | None = None
    ) -> dict[Key, object]:
        """Make every call of the plan (once per key), up to the run's --concurrency per
        provider; return each key's answer, or the ProviderError its call ended with."""
        limits = call_limits(self.reviewer, self.settings.concurrency)
        return await make_calls(self.reviewer, plan.planned, limits, on_done)

    async def review(
        self, card: ToolCard, *, fresh: bool = False
    ) -> tuple[list[StoredReview], dict[str, ProviderError]]:
        """Return the panel's reviews of card (stored ones reused unless fresh) and the first
        error of each persona that failed: a plan of one card, carried out."""
        return await self.answer(self.plan(self.reviews([card]), fresh=fresh).planned)

    def providers(self) -> dict[str, Provider]:
        """Return the provider of each provider name the panel's personas use."""
        return {(provider := self.reviewer.provider_for(p)).name: provider for p in self.personas}

    # --- what is stored --------------------------------------------------------------------

    def tool(self, slug: str) -> ToolCard | None:
        """Return the stored card of a tool, or None."""
        return self._store.get_tool(slug)

    def latest_reviews(self, slug: str) -> list[StoredReview]:
        """Return the newest stored reviews (with their samples) of the tool by this panel."""
        keys = {p.key for p in self.personas}
        latest = self._store.latest_reviews(slug)
        return [review for key, found in latest.items() if key in keys for review in found]

    def comparison(
        self,
        cards: tuple[ToolCard, ToolCard],
        reviews_of: Callable[[ToolCard], list[StoredReview]] | None = None,
        pairs: list[StoredPair] | None = None,
    ) -> dict[str, Any]:
        """Return the comparison document of two tools (panel.compare), from the reviews
        `reviews_of` gives for a card, by default each persona's latest, and with the pair
        judgments given (none: no pairwise head-to-head)."""
        return comparison_for(self._store, self.personas, cards, reviews_of, pairs)

    def latest_pairs(self, pair: tuple[str, str]) -> list[StoredPair]:
        """Return the newest stored judgments of two tools' current cards, whoever made them."""
        keys = {p.key for p in self.personas}
        return [j for j in self._store.latest_pairs(pair) if j.persona in keys]

    def reusable_pairs(self, pair: tuple[ToolCard, ToolCard], samples: int) -> list[StoredPair]:
        """Return the stored judgments of a pair (both orders, `samples` each) that a run with
        these settings would reuse."""
        return [j for q in self.pairs([pair], samples) for j in self.reviewer.stored(q)]

    def comparison_of(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        """Return the comparison document of two review documents."""
        return comparison_document(a, b, self.personas, self._store)

    def comparisons_showing(self, slug: str) -> list[dict[str, Any]]:
        """Return the comparison document of every stored comparison that shows tool slug:
        its comparisons found through the store's index, one card read per other tool."""
        card = self._store.get_tool(slug)
        found = []
        for a, b, _ in self._store.comparisons_of(slug) if card else []:
            other = self._store.get_tool(b if a == slug else a)
            if card and other:
                pair = (card, other) if a == slug else (other, card)
                found.append(self.comparison(pair, None, self.latest_pairs((a, b))))
        return found

    def site_personas(self) -> list[Persona]:
        """Return the personas the site shows: every persona of the settings' folder, as
        `panel site build` loads them (a run may ask only some)."""
        return load_personas(self.settings.personas_dir())

    def save_comparison(self, a: str, b: str) -> None:
        self._store.save_comparison(a, b)

    def import_records(self, path: Path) -> tuple[int, int]:
        """Import a JSONL file of tools and reviews (panel.records); return their counts."""
        from panel.records import import_file  # only `panel import` reads records

        return import_file(path, self.personas, self._store)

    # --- closing ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every provider and the store, those of them the runtime opened."""
        if self._owns_providers:
            for provider in self.reviewer.providers.values():
                await provider.aclose()
        if self._owns_store:
            self._store.close()


def open_runtime(
    settings: Settings,
    only: list[str] | None = None,
    *,
    personas: list[Persona] | None = None,
    store: Store | None = None,
    offline: bool = False,
) -> Runtime:
    """Load personas and prompts, open the store and make every provider the panel needs.

    `personas` and `store` reuse what a run already loaded or opened (a store given here is
    the caller's to close). An offline runtime makes no provider: it reads the store only.
    """
    personas = personas if personas is not None else load_personas(settings.personas_dir(), only)
    personas = with_models(personas, settings.persona_model)
    prompts = Prompts(settings.prompts_dir())
    for persona in personas:
        _ = persona.answer_model  # fail on a broken persona before any call
    names = set() if offline else {settings.provider} | {p.provider for p in personas if p.provider}
    opened = store is None
    store = store or Store(settings.db)
    try:
        providers = {
            name: make_provider(_for(settings, name), name, store) for name in sorted(names)
        }
    except BaseException:
        if opened:
            store.close()
        raise
    reviewer = Reviewer(
        providers=providers,
        default=settings.provider,
        default_model=settings.model,
        prompts=prompts,
        store=store,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        seed=settings.seed,
        max_attempts=settings.max_attempts,
        spending=Spending(max_usd=settings.max_cost, ceiling_from=settings.named_as("max_cost")),
        mitigations=mitigations_of(settings),
    )
    return Runtime(settings, personas, store, reviewer, owns_store=opened)


def mitigations_of(settings: Settings) -> Mitigations:
    """Return the mitigations the settings switch on."""
    return Mitigations(
        rotate_fields=settings.rotate_fields,
        blind_names=settings.blind_names,
        strip_injection=settings.strip_injection,
    )


def _for(settings: Settings, provider: str) -> Settings:
    """Return the settings a provider is made with: --model and --base-url belong to the run's
    own provider; another provider a persona names gets its own default model and endpoint."""
    if provider == settings.provider:
        return settings
    own = settings.model_copy(update={"model": None, "base_url": None})
    own._base_url_from_file = settings._base_url_from_file
    return own
