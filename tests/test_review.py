"""The reviewer: validation, re-ask, typed failures, transient retries, caching, aggregation."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from panel.aggregate import Judged, panel_result
from panel.cards import ToolCard
from panel.errors import ProviderError, TransientProviderError
from panel.personas import Persona
from panel.providers.base import Generation, Provider, Request, price, retry_after_seconds
from panel.review import Reviewer
from panel.store import Store
from panel.testing.asking import ask_review, review_card
from panel.testing.fakes.openai import answer_for
from panel.testing.fakes.scripted import ScriptedProvider

MakeReviewer = Callable[..., Reviewer]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def answer_text(persona: Persona, **changes: Any) -> str:
    return json.dumps({**answer_for(persona.answer_schema, score=80), **changes})


def test_a_valid_answer_is_stored_and_logged(
    make_reviewer: MakeReviewer, store: Store, card: ToolCard, personas: list[Persona]
) -> None:
    provider = ScriptedProvider()
    review = run(ask_review(make_reviewer(provider), card, personas[1]))
    assert review.score == 80 and review.verdict == "ship"
    assert review.fields["competitors"] == ["Moondream", "PaliGemma"]
    assert review.attempts == 1
    assert list(store.latest_reviews(card.slug)) == ["skeptic"]
    calls = store.recent_calls()
    assert [(c.outcome, c.persona, c.input_tokens, c.output_tokens) for c in calls] == [
        ("ok", "skeptic", 4000, 200)
    ]
    assert calls[0].cost_usd == pytest.approx(4200 / 1_000_000)


def test_transient_failures_are_retried_honouring_retry_after(
    make_reviewer: MakeReviewer, store: Store, card: ToolCard, personas: list[Persona]
) -> None:
    script: list[Any] = [
        TransientProviderError("HTTP 429", retry_after=0.3),
        TransientProviderError("HTTP 529"),
        answer_text(personas[0]),
    ]
    started = time.monotonic()
    review = run(
        ask_review(make_reviewer(ScriptedProvider(script), max_attempts=3), card, personas[0])
    )
    assert review.score == 80
    assert time.monotonic() - started >= 0.3
    assert [c.outcome for c in store.recent_calls()] == ["error", "error", "ok"]


def test_retries_are_capped(
    make_reviewer: MakeReviewer, card: ToolCard, personas: list[Persona]
) -> None:
    provider = ScriptedProvider(lambda r: TransientProviderError("HTTP 500", retry_after=0))
    with pytest.raises(ProviderError, match="still failing after 3 attempts"):
        run(ask_review(make_reviewer(provider, max_attempts=3), card, personas[0]))
    assert len(provider.requests) == 3


def test_a_permanent_error_is_not_retried(
    make_reviewer: MakeReviewer, card: ToolCard, personas: list[Persona]
) -> None:
    provider = ScriptedProvider(lambda r: ProviderError("HTTP 401: bad key"))
    with pytest.raises(ProviderError, match="401"):
        run(ask_review(make_reviewer(provider), card, personas[0]))
    assert len(provider.requests) == 1


def test_an_unchanged_card_is_served_from_the_store(
    make_reviewer: MakeReviewer, store: Store, card: ToolCard, personas: list[Persona]
) -> None:
    provider = ScriptedProvider()
    reviewer = make_reviewer(provider)
    store.save_tool(card)
    first, errors = run(review_card(reviewer, card, personas, concurrency=4))
    assert len(first) == 4 and errors == {} and len(provider.requests) == 4
    again, _ = run(review_card(reviewer, card, personas, concurrency=4))
    assert len(provider.requests) == 4
    assert [r.created_at for r in again] == [r.created_at for r in first]
    run(review_card(reviewer, card, personas, concurrency=4, fresh=True))
    assert len(provider.requests) == 8
    changed = card.model_copy(update={"tagline": "Now with video"})
    run(review_card(reviewer, changed, personas, concurrency=4))
    assert len(provider.requests) == 12


def test_one_failing_persona_keeps_the_others(
    make_reviewer: MakeReviewer, store: Store, card: ToolCard, personas: list[Persona]
) -> None:
    def script(request: Request) -> Generation | ProviderError:
        if request.persona == "founder":
            return ProviderError("HTTP 400: nope")
        return Generation(json.dumps(answer_for(request.schema, score=80)))

    store.save_tool(card)
    reviews, errors = run(
        review_card(make_reviewer(ScriptedProvider(script)), card, personas, concurrency=4)
    )
    assert sorted(r.persona for r in reviews) == ["builder", "futurist", "skeptic"]
    assert list(errors) == ["founder"]
    assert set(store.latest_reviews(card.slug)) == {"builder", "futurist", "skeptic"}


def test_personas_run_concurrently_up_to_the_limit(
    make_reviewer: MakeReviewer, card: ToolCard, personas: list[Persona]
) -> None:
    class Slow(ScriptedProvider):
        in_flight = 0
        peak = 0

        async def generate(self, request: Request) -> Generation:
            Slow.in_flight += 1
            Slow.peak = max(Slow.peak, Slow.in_flight)
            await asyncio.sleep(0.1)
            Slow.in_flight -= 1
            return await super().generate(request)

    started = time.monotonic()
    run(review_card(make_reviewer(Slow()), card, personas, concurrency=2))
    assert Slow.peak == 2
    assert 0.2 <= time.monotonic() - started < 0.35


def test_a_persona_can_name_its_own_provider_and_model(
    store: Store, card: ToolCard, personas: list[Persona], prompts: Any
) -> None:
    class Other(ScriptedProvider):
        name = "other"

    main, other = ScriptedProvider(), Other()
    mixed = [personas[0], personas[1].model_copy(update={"provider": "other", "model": "judge-2"})]
    reviewer = Reviewer(
        providers={"scripted": main, "other": other},
        default="scripted",
        default_model=None,
        prompts=prompts,
        store=store,
    )
    reviews, _ = run(review_card(reviewer, card, mixed, concurrency=4))
    assert {(r.persona, r.provider, r.model) for r in reviews} == {
        ("builder", "scripted", "scripted-1"),
        ("skeptic", "other", "judge-2"),
    }


@pytest.mark.parametrize(
    ("scores", "label", "pct"),
    [
        ([(85, "ship"), (78, "ship"), (82, "ship"), (52, "skip")], "Ship · 3 ship / 1 skip", 75),
        ([(85, "ship"), (78, "ship"), (40, "skip"), (52, "skip")], "Split · 2 ship / 2 skip", 50),
        ([(10, "skip"), (20, "skip"), (82, "ship")], "Skip · 1 ship / 2 skip", 33),
        ([(90, "ship")] * 4, "Ship · 4 ship / 0 skip", 100),
    ],
)
def test_the_aggregator(scores: list[tuple[int, str]], label: str, pct: int) -> None:
    result = panel_result([Judged(f"persona-{n}", (s,)) for n, (s, _) in enumerate(scores)])
    assert result.label == label
    assert result.ship_pct == pct
    assert result.score_min == min(s for s, _ in scores)
    assert result.score_max == max(s for s, _ in scores)


def test_the_aggregator_of_nothing() -> None:
    assert panel_result([]).label == "Split · 0 ship / 0 skip"


def test_retry_after_parsing() -> None:
    assert retry_after_seconds({"retry-after": "2"}) == 2
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_prices() -> None:
    table = {"gpt-4o": (2.5, 1.25, 10.0), "gpt-4o-mini": (0.15, 0.075, 0.6)}
    assert price(table, "gpt-4o-mini-2024-07-18", 1_000_000, 0) == 0.15
    assert price(table, "gpt-4o", 0, 1_000_000) == 10.0
    assert price(table, "llama3", 10, 10) is None
    # Cached input tokens are billed at the cached rate: half of 2.5 for gpt-4o.
    assert price(table, "gpt-4o", 1_000_000, 0, cached=400_000) == 1.5 + 0.5


def test_a_price_is_the_exact_name_or_the_name_and_a_date() -> None:
    """Finding 9 of issue 22: prices matched by prefix, so gpt-5-pro was priced as gpt-5, many
    times below its list price, and a ceiling let far more through than it should."""
    table = {"gpt-5": (1.25, 0.125, 10.0), "claude-sonnet-4": (3.0, 0.3, 15.0)}
    assert price(table, "gpt-5-pro", 1_000_000, 0) is None
    assert price(table, "gpt-5.1", 1_000_000, 0) is None
    assert price(table, "gpt-5-2025-08-07", 1_000_000, 0) == 1.25
    assert price(table, "claude-sonnet-4-20250514", 1_000_000, 0) == 3.0
    assert price(table, "claude-sonnet-4-9", 1_000_000, 0) is None
    assert price({"": (0.0, 0.0, 0.0)}, "any-local-model", 10, 10) == 0.0


def test_retry_after_is_capped_and_nonsense_is_none() -> None:
    """Finding 1 of issue 22: a Retry-After of 31 years, NaN, a negative or infinite wait."""
    assert retry_after_seconds({"retry-after": "999999999"}) == 60.0
    assert retry_after_seconds({"retry-after-ms": "1e12"}) == 60.0
    for nonsense in ("nan", "-5", "inf", "-inf", "1e400"):
        assert retry_after_seconds({"retry-after": nonsense}) is None, nonsense


def test_the_provider_interface_is_small() -> None:
    abstract = {
        name
        for name, value in vars(Provider).items()
        if getattr(value, "__isabstractmethod__", False)
    }
    assert abstract == {"generate"}
