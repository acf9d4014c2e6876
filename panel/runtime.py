"""The runtime: from settings to a ready panel, and the one place a run's plan is made.

A run (review, compare, eval, queue run) opens a Runtime, asks it for a Plan (every persona's
review it needs, and the calls for the samples not stored yet), and carries the plan out through
the runtime's methods. The store, the reviewer and the spending are the runtime's own: nothing
outside this module reaches into them. Nothing here talks to a model by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
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
from panel.providers.base import Provider, Request
from panel.review import Reviewer, call_limits, judge_pair, review_tool
from panel.spending import Estimate, Spending, estimate, unpriced_error
from panel.store import CallRecord, Store, StoredPair, StoredReview
from panel.store.sql import Connection


@dataclass(frozen=True)
class Ask:
    """One persona's review of one card: samples 0 to `samples` - 1."""

    card: ToolCard
    persona: Persona
    samples: int


@dataclass(frozen=True)
class PairAsk:
    """One persona's judgment of two cards, `first` shown first: samples 0 to `samples` - 1."""

    first: ToolCard
    second: ToolCard
    persona: Persona
    samples: int


@dataclass(frozen=True)
class Plan:
    """What a run must do: every review and pair judgment it asks for, and the calls still to
    make for them."""

    asks: list[Ask]
    calls: list[tuple[Provider, Request]]
    pairs: list[PairAsk] = field(default_factory=list)

    @property
    def answers(self) -> int:
        """Every sample asked for, stored or not: the total a run's progress counts to."""
        return sum(ask.samples for ask in self.asks) + sum(p.samples for p in self.pairs)


class Runtime:
    """A ready panel: its settings and personas, and the store, providers and spending of a run."""

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
        self._store = store
        self._reviewer = reviewer
        self._owns_store = owns_store
        self._owns_providers = owns_providers

    @property
    def mitigations(self) -> Mitigations:
        """What this runtime's judges are kept from seeing."""
        return self._reviewer.mitigations

    def with_mitigations(self, mitigations: Mitigations) -> Runtime:
        """Return this runtime judging with other mitigations: the same settings otherwise, the
        same store, providers and spending (closing it closes nothing: this one owns them)."""
        reviewer = replace(self._reviewer, mitigations=mitigations)
        return Runtime(
            self.settings,
            self.personas,
            self._store,
            reviewer,
            owns_store=False,
            owns_providers=False,
        )

    def shaping(self, card: ToolCard) -> tuple[str, ...]:
        """Return the mitigations that shape the reviews of card in this runtime."""
        return self._reviewer.mitigations.shaping(card)

    def temperature(self, samples: int | None = None) -> float:
        """Return the temperature a set of `samples` (default: the run's) is asked at."""
        return self._reviewer.temperature_for(self.settings.samples if samples is None else samples)

    # --- the plan --------------------------------------------------------------------------

    def asks(self, cards: Iterable[ToolCard], samples: int | None = None) -> list[Ask]:
        """Return every persona's review of each card, `samples` each (default: the run's)."""
        count = self.settings.samples if samples is None else samples
        return [Ask(card, persona, count) for card in cards for persona in self.personas]

    def ask(self, card: ToolCard, persona_key: str, samples: int) -> Ask | None:
        """Return the ask of one persona by key (None if that persona is not on this panel)."""
        persona = next((p for p in self.personas if p.key == persona_key), None)
        return None if persona is None else Ask(card, persona, samples)

    def pair_asks(
        self, pairs: Iterable[tuple[ToolCard, ToolCard]], samples: int | None = None
    ) -> list[PairAsk]:
        """Return every persona's judgment of each pair in both orders (the pair's first card
        shown first, then the other), `samples` each (default: the run's)."""
        count = self.settings.samples if samples is None else samples
        return [
            PairAsk(first, second, persona, count)
            for a, b in pairs
            for first, second in ((a, b), (b, a))
            for persona in self.personas
        ]

    def pair_ask(
        self, pair: tuple[ToolCard, ToolCard], persona_key: str, samples: int
    ) -> list[PairAsk]:
        """Return one persona's judgment of a pair in both orders ([] if that persona is not on
        this panel)."""
        persona = next((p for p in self.personas if p.key == persona_key), None)
        if persona is None:
            return []
        a, b = pair
        return [PairAsk(a, b, persona, samples), PairAsk(b, a, persona, samples)]

    def plan(
        self, asks: list[Ask], *, pairs: list[PairAsk] | None = None, fresh: bool = False
    ) -> Plan:
        """Return the plan of asks and pair judgments: the calls for the samples not stored
        (every one with fresh)."""
        reviewer, calls = self._reviewer, []
        for ask in asks:
            card, persona = ask.card, ask.persona
            needed = range(ask.samples) if fresh else self.missing(ask)
            for sample in needed:
                request, _ = reviewer.request_for(card, persona, sample, ask.samples)
                calls.append((reviewer.provider_for(persona), request))
        for pair in pairs or []:
            needed = range(pair.samples) if fresh else self.missing_pair(pair)
            for sample in needed:
                provider, request, _ = self.pair_request(pair, sample)
                calls.append((provider, request))
        return Plan(asks, calls, pairs or [])

    def estimate(self, plan: Plan) -> Estimate:
        """Return what the plan's calls will cost; raise ConfigError if a ceiling is set and a
        model's price is unknown (the ceiling could not be kept)."""
        found = estimate(plan.calls, self._store.output_tokens_seen)
        if found.unpriced and self.settings.max_cost is not None:
            raise unpriced_error(found.unpriced[0], self.settings.named_as("max_cost"))
        return found

    def missing(self, ask: Ask) -> list[int]:
        """Return the sample indexes of ask not stored yet."""
        return self._reviewer.missing_samples(ask.card, ask.persona, ask.samples)

    def review_key(self, ask: Ask) -> tuple[str, str, str, str]:
        """Return what a stored review of ask must match to be reused: (card hash, prompt
        version, provider, model)."""
        reviewer, persona = self._reviewer, ask.persona
        return (
            ask.card.content_hash(),
            reviewer.prompts.version(persona),
            reviewer.provider_for(persona).name,
            reviewer.model_for(persona),
        )

    def stored(self, ask: Ask) -> list[StoredReview]:
        """Return the stored samples of ask that `panel review` would reuse now."""
        return self._reviewer.cached_reviews(ask.card, ask.persona, ask.samples)

    def missing_pair(self, pair: PairAsk) -> list[int]:
        """Return the sample indexes of a pair judgment not stored yet."""
        return self._reviewer.missing_pair_samples(
            pair.first, pair.second, pair.persona, pair.samples
        )

    def stored_pair(self, pair: PairAsk) -> list[StoredPair]:
        """Return the stored samples of a pair judgment that a run would reuse now."""
        return self._reviewer.cached_pairs(pair.first, pair.second, pair.persona, pair.samples)

    # --- the calls -------------------------------------------------------------------------

    async def review(
        self,
        card: ToolCard,
        *,
        fresh: bool = False,
        on_done: Callable[[str], None] | None = None,
        personas: list[Persona] | None = None,
        samples: int | None = None,
    ) -> tuple[list[StoredReview], dict[str, ProviderError]]:
        """Return the panel's reviews of card (stored ones reused unless fresh), `samples` each
        (default: the run's), and the first error of each persona that failed.

        `personas` narrows the panel, e.g. to the personas a stored review set lacks.
        """
        return await review_tool(
            self._reviewer,
            card,
            self.personas if personas is None else personas,
            concurrency=self.settings.concurrency,
            samples=self.settings.samples if samples is None else samples,
            fresh=fresh,
            on_done=on_done,
        )

    async def review_all(
        self, cards: list[ToolCard], *, on_done: Callable[[str], None] | None = None
    ) -> list[tuple[list[StoredReview], dict[str, ProviderError]]]:
        """Return the panel's reviews of every card, as `review` gives them, the calls of all
        cards in flight together up to the run's --concurrency (per provider)."""
        import asyncio

        limits = call_limits(self._reviewer, self.settings.concurrency)
        return list(
            await asyncio.gather(
                *(
                    review_tool(
                        self._reviewer,
                        card,
                        self.personas,
                        concurrency=self.settings.concurrency,
                        samples=self.settings.samples,
                        on_done=on_done,
                        limits=limits,
                    )
                    for card in cards
                )
            )
        )

    async def review_sample(
        self, ask: Ask, sample: int, then: Callable[[Connection], None] | None = None
    ) -> StoredReview:
        """Return sample `sample` of ask, stored or asked now; `then` writes in its transaction."""
        return await self._reviewer.review(
            ask.card, ask.persona, sample=sample, samples=ask.samples, then=then
        )

    async def judge_pair(
        self,
        pair: tuple[ToolCard, ToolCard],
        *,
        fresh: bool = False,
        on_done: Callable[[str], None] | None = None,
        samples: int | None = None,
    ) -> tuple[list[StoredPair], dict[str, ProviderError]]:
        """Return every persona's judgments of the pair in both orders (stored ones reused
        unless fresh), `samples` each (default: the run's), and the first error of each
        persona that failed."""
        return await judge_pair(
            self._reviewer,
            pair,
            self.personas,
            concurrency=self.settings.concurrency,
            samples=self.settings.samples if samples is None else samples,
            fresh=fresh,
            on_done=on_done,
        )

    async def judge_sample(
        self, pair: PairAsk, sample: int, then: Callable[[Connection], None] | None = None
    ) -> StoredPair:
        """Return sample `sample` of a pair judgment, stored or asked now; `then` writes in its
        transaction."""
        return await self._reviewer.judge(
            pair.first, pair.second, pair.persona, sample=sample, samples=pair.samples, then=then
        )

    def pair_request(self, pair: PairAsk, sample: int) -> tuple[Provider, Request, str]:
        """Return the provider, the request and its prompt hash of one sample of a pair
        judgment, as a live run would send it (a provider batch sends it as one of many)."""
        request, prompt_hash = self._reviewer.pair_request_for(
            pair.first, pair.second, pair.persona, sample, pair.samples
        )
        return self._reviewer.provider_for(pair.persona), request, prompt_hash

    def request(self, ask: Ask, sample: int) -> tuple[Provider, Request, str]:
        """Return the provider, the request and its prompt hash of one sample of ask, as a live
        review would send it (a provider batch sends it as one of many)."""
        request, prompt_hash = self._reviewer.request_for(
            ask.card, ask.persona, sample, ask.samples
        )
        return self._reviewer.provider_for(ask.persona), request, prompt_hash

    def providers(self) -> dict[str, Provider]:
        """Return the provider of each provider name the panel's personas use."""
        return {(provider := self._reviewer.provider_for(p)).name: provider for p in self.personas}

    def provider_name(self, persona: Persona) -> str:
        return self._reviewer.provider_for(persona).name

    def model_name(self, persona: Persona) -> str:
        return self._reviewer.model_for(persona)

    # --- what the run spent ----------------------------------------------------------------

    def reserve(self, provider: Provider, request: Request, share: float) -> float | None:
        """Reserve a call's estimate at `share` of its price under the ceiling (None: no room)."""
        return self._reviewer.spending.reserve(provider, request, share)

    def release(self, reserved: float) -> None:
        """Give back a reservation whose call never started."""
        self._reviewer.spending.release(reserved)

    def settle(self, reserved: float, call: CallRecord) -> None:
        """Replace a reservation by the cost of the call that ended."""
        self._reviewer.spending.settle(reserved, call)

    def stop_line(self) -> str:
        """Return the line a run stopped by the ceiling ends with (once its calls have ended)."""
        return self._reviewer.spending.stop_line()

    def spent(self) -> dict[str, object]:
        """Return what the run's calls cost, as JSON."""
        return self._reviewer.spending.to_json()

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
        return [j for ask in self.pair_asks([pair], samples) for j in self.stored_pair(ask)]

    def comparison_of(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        """Return the comparison document of two review documents."""
        return comparison_document(a, b, self.personas, self._store)

    def comparisons_showing(self, slug: str) -> list[dict[str, Any]]:
        """Return the comparison document of every stored comparison that shows tool slug."""
        found = []
        for a, b, _ in self._store.comparisons():
            card_a, card_b = self._store.get_tool(a), self._store.get_tool(b)
            if slug in (a, b) and card_a and card_b:
                found.append(self.comparison((card_a, card_b), None, self.latest_pairs((a, b))))
        return found

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
            for provider in self._reviewer.providers.values():
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
