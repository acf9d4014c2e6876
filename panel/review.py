"""Reviews: one persona reads one tool card and returns a validated answer, or a typed error.
A pair judgment is the second kind of ask: one persona reads two cards, one shown first, and
says which it would ship with; it goes through the same nets, store and call log.

This is where the three safety nets live, each in one place:
- transient provider failures (429, 5xx, timeouts) are retried with backoff that honours
  Retry-After: the only retry layer (the SDKs are told not to retry);
- an answer that fails validation is re-asked once with the problems, then raises AnswerError;
- a stored review for the same card, question, model, mitigations and temperature is reused
  instead of calling again.
Every call, failed or not, lands in the call log.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from panel.cards import ToolCard
from panel.errors import (
    AnswerError,
    MalformedAnswerError,
    PanelError,
    ProviderError,
    RefusalError,
    TransientProviderError,
    error_field,
)
from panel.mitigations import Mitigations
from panel.parsing import ParseError, load_json
from panel.personas import Answer, Checked, PairAnswer, Persona
from panel.prompts import Prompts
from panel.providers.base import Generation, Provider, Request, counted_tokens
from panel.rules import MAX_RETRY_AFTER, SAMPLES_TEMPERATURE
from panel.spending import Spending, estimate_usd
from panel.store import CallRecord, Store, StoredPair, StoredReview
from panel.store.sql import Connection

REASKS = 1
"""How many times an invalid answer is re-asked before AnswerError."""

A = TypeVar("A", bound=Checked)


class InvalidAnswer(Exception):
    """An answer that failed parsing or validation; carries the problems to re-ask with."""

    def __init__(self, problems: list[str], generation: Generation) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.generation = generation


@dataclass(frozen=True)
class Reviewer:
    """Everything a review needs besides the card and the persona."""

    providers: dict[str, Provider]
    """Provider by name; a persona naming a provider gets that one, the rest get `default`."""
    default: str
    default_model: str | None
    prompts: Prompts
    store: Store
    max_tokens: int = 1200
    temperature: float | None = None
    """The temperature set by the user; None: 0 for one sample, SAMPLES_TEMPERATURE for more."""
    seed: int = 7
    """Sample i is asked with seed + i (+ the card's seed_shift: eval's probes have seeds of
    their own), where the provider takes a seed."""
    max_attempts: int = 4
    spending: Spending = field(default_factory=Spending)
    mitigations: Mitigations = field(default_factory=Mitigations)
    """What the judges are kept from seeing (--rotate-fields, --blind-names, --strip-injection)."""

    def provider_for(self, persona: Persona) -> Provider:
        return self.providers[persona.provider or self.default]

    def model_for(self, persona: Persona) -> str:
        provider = self.provider_for(persona)
        if persona.model:
            return persona.model
        if persona.provider and persona.provider != self.default:
            return provider.model
        return self.default_model or provider.model

    def cached_reviews(self, card: ToolCard, persona: Persona, samples: int) -> list[StoredReview]:
        """Return the stored samples of this card by persona with today's prompt, model and
        mitigations, at the temperature of a set of `samples`: those below `samples`, by index;
        some may be missing."""
        return self.store.find_samples(
            card.content_hash(),
            persona.key,
            self.prompts.version(persona),
            self.provider_for(persona).name,
            self.model_for(persona),
            samples,
            mitigations=self.mitigations.shaping(card),
            temperature=self.temperature_for(samples),
        )

    def missing_samples(self, card: ToolCard, persona: Persona, samples: int) -> list[int]:
        """Return the sample indexes below `samples` of persona's review of card not stored yet."""
        stored = {r.sample for r in self.cached_reviews(card, persona, samples)}
        return [sample for sample in range(samples) if sample not in stored]

    async def review(
        self,
        card: ToolCard,
        persona: Persona,
        *,
        sample: int = 0,
        samples: int = 1,
        fresh: bool = False,
        then: Callable[[Connection], None] | None = None,
    ) -> StoredReview:
        """Return sample `sample` (of `samples`) of persona's validated review of card, from the
        store unless fresh.

        A new review is stored together with the log entry of the call that gave it, and
        `then` (e.g. the queue marking its task done), in one transaction; with a stored review,
        `then` runs in a transaction of its own.
        """
        provider = self.provider_for(persona)
        card_hash = card.content_hash()
        if not fresh:
            stored = self.cached_reviews(card, persona, samples)
            cached = next((review for review in stored if review.sample == sample), None)
            if cached:
                if then is not None:
                    with self.store.transaction() as db:
                        then(db)
                return cached

        request, prompt_hash = self.request_for(card, persona, sample, samples)
        try:
            answer, attempts, call = await self._answer(
                provider, request, prompt_hash, persona.answer_model
            )
        except PanelError as exc:
            raise exc.about(tool=card.slug, persona=persona.key) from None

        review = stored_review(card_hash, provider.name, request, answer, attempts, call.cost_usd)
        self.store.save_review(card, review, call=call, then=then)
        return review

    # --- pair judgments ----------------------------------------------------------------------

    def cached_pairs(
        self, first: ToolCard, second: ToolCard, persona: Persona, samples: int
    ) -> list[StoredPair]:
        """Return the stored samples of persona's judgment of the two cards, `first` shown
        first, with today's prompt and model: those below `samples`, by index."""
        return self.store.find_pair_samples(
            (first.content_hash(), second.content_hash()),
            persona.key,
            self.prompts.pair_version(persona),
            self.provider_for(persona).name,
            self.model_for(persona),
            samples,
        )

    def missing_pair_samples(
        self, first: ToolCard, second: ToolCard, persona: Persona, samples: int
    ) -> list[int]:
        """Return the sample indexes below `samples` of that judgment not stored yet."""
        stored = {j.sample for j in self.cached_pairs(first, second, persona, samples)}
        return [sample for sample in range(samples) if sample not in stored]

    def pair_request_for(
        self, first: ToolCard, second: ToolCard, persona: Persona, sample: int = 0, samples: int = 1
    ) -> tuple[Request, str]:
        """Return the request asking persona which of two cards it would ship with, `first`
        shown first (sample `sample` of `samples`), and the hash of its prompt."""
        prompt = self.prompts.pair(persona, first, second)
        request = Request(
            messages=list(prompt.messages),
            schema=persona.pair_schema,
            schema_name=f"{persona.key}_pair",
            model=self.model_for(persona),
            max_tokens=self.max_tokens,
            temperature=self.temperature_for(samples),
            seed=self.seed + sample,
            persona=persona.key,
            tool=pair_label(first.slug, second.slug),
            sample=sample,
            prompt_version=prompt.version,
            nonce=prompt.nonce,
        )
        return request, prompt.hash

    async def judge(
        self,
        first: ToolCard,
        second: ToolCard,
        persona: Persona,
        *,
        sample: int = 0,
        samples: int = 1,
        fresh: bool = False,
        then: Callable[[Connection], None] | None = None,
    ) -> StoredPair:
        """Return sample `sample` of persona's validated judgment of two cards, `first` shown
        first, from the store unless fresh; a new one is stored with its call's log entry and
        `then`, in one transaction (as `review` does)."""
        if not fresh:
            stored = self.cached_pairs(first, second, persona, sample + 1)
            cached = next((j for j in stored if j.sample == sample), None)
            if cached:
                if then is not None:
                    with self.store.transaction() as db:
                        then(db)
                return cached
        provider = self.provider_for(persona)
        request, prompt_hash = self.pair_request_for(first, second, persona, sample, samples)
        try:
            answer, attempts, call = await self._answer(
                provider, request, prompt_hash, persona.pair_model, "judgment"
            )
        except PanelError as exc:
            raise exc.about(tool=request.tool, persona=persona.key) from None
        cards = ((first.slug, first.content_hash()), (second.slug, second.content_hash()))
        judgment = stored_pair(cards, provider.name, request, answer, attempts)
        self.store.save_pair((first, second), judgment, call=call, then=then)
        return judgment

    # --- the calls -----------------------------------------------------------------------------

    async def _answer(
        self,
        provider: Provider,
        request: Request,
        prompt_hash: str,
        answer_model: type[A],
        noun: str = "review",
    ) -> tuple[A, int, CallRecord]:
        """Return a valid answer to request, the attempts it took and the log entry of the call
        that gave it (not logged yet); re-ask an invalid one once."""
        attempts = 0
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(1 + REASKS),
                retry=retry_if_exception_type(InvalidAnswer),
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    try:
                        answer, call = await self._call(
                            provider, request, prompt_hash, answer_model
                        )
                    except InvalidAnswer as bad:
                        reask = [
                            {"role": "assistant", "content": bad.generation.text or "(empty)"},
                            {"role": "user", "content": self.prompts.reask(bad.problems)},
                        ]
                        request = replace(request, messages=[*request.messages, *reask])
                        raise
        except InvalidAnswer as bad:
            raise AnswerError(
                f"gave no valid {noun} after {attempts} attempts: {bad.problems[0]}",
                provider=provider.name,
                attempts=attempts,
                raw=bad.generation.text,
                input_tokens=bad.generation.input_tokens,
                output_tokens=bad.generation.output_tokens,
            ) from None

        return answer, attempts, call

    def temperature_for(self, samples: int) -> float:
        """Return the temperature of a review asked `samples` times (see `temperature`)."""
        if self.temperature is not None:
            return self.temperature
        return SAMPLES_TEMPERATURE if samples > 1 else 0.0

    def request_for(
        self, card: ToolCard, persona: Persona, sample: int = 0, samples: int = 1
    ) -> tuple[Request, str]:
        """Return the request asking persona for sample `sample` of its review of card (one of
        `samples`: the count sets the temperature), as the run's mitigations show the card, and
        the hash of its prompt. A live review sends it (and re-asks from it); a batch sends it as
        one of many.
        """
        prompt = self.prompts.review(persona, card, sample=sample, mitigations=self.mitigations)
        request = Request(
            messages=list(prompt.messages),
            schema=persona.answer_schema,
            schema_name=f"{persona.key}_review",
            model=self.model_for(persona),
            max_tokens=self.max_tokens,
            temperature=self.temperature_for(samples),
            seed=self.seed + card.seed_shift + sample,
            persona=persona.key,
            tool=card.slug,
            sample=sample,
            prompt_version=prompt.version,
            nonce=prompt.nonce,
            mitigations=self.mitigations.shaping(card),
        )
        return request, prompt.hash

    async def _call(
        self, provider: Provider, request: Request, prompt_hash: str, answer_model: type[A]
    ) -> tuple[A, CallRecord]:
        """Send request with transient-failure retries; return a valid answer and the log entry
        of its call. Every failed attempt is logged here; the answered one is the caller's to log
        (with the review it gives)."""
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            retry=retry_if_exception_type(TransientProviderError),
            wait=_wait_honouring_retry_after,
            reraise=True,
        ):
            with attempt:
                reserved = await self.spending.admit(provider, request)
                sent = Sent(provider, request, prompt_hash, reserved)
                try:
                    generation = await provider.generate(request)
                except ProviderError as exc:
                    # A malformed answer was answered (and maybe billed): it counts at its
                    # estimate, so a server that lies in its usage cannot lower what is spent.
                    billed = isinstance(exc, MalformedAnswerError)
                    self._log(sent, "error", None, str(exc), billed=billed)
                    last = attempt.retry_state.attempt_number >= self.max_attempts
                    if isinstance(exc, TransientProviderError) and last:
                        raise ProviderError(
                            f"{provider.name} still failing after {self.max_attempts} attempts: "
                            f"{exc.message}",
                            provider=provider.name,
                        ) from None
                    raise
                except BaseException:  # cancelled, or a bug: nothing to log, free its reservation
                    self.spending.release(sent.reserved)
                    raise
                try:
                    answer = parse_answer(request, generation, answer_model)
                except InvalidAnswer as bad:
                    self._log(sent, "invalid", generation, str(bad))
                    raise
                except RefusalError as refusal:
                    self._log(sent, "refusal", generation, refusal.raw)
                    raise
                return answer, self._record(sent, "ok", generation, None)
        raise AssertionError("unreachable")  # pragma: no cover

    def _log(
        self,
        sent: Sent,
        outcome: str,
        generation: Generation | None,
        error: str | None,
        *,
        billed: bool = False,
    ) -> None:
        """Append one call to the call log."""
        self.store.log_call(self._record(sent, outcome, generation, error, billed=billed))

    def _record(
        self,
        sent: Sent,
        outcome: str,
        generation: Generation | None,
        error: str | None,
        *,
        billed: bool = False,
    ) -> CallRecord:
        """Return the call log entry of one call that ended, and count it in the run's spending.

        Its cost is that of the usage the provider reported, if believable (counted_tokens);
        a call answered with nothing usable (billed) counts at its estimate."""
        tokens_in = generation.input_tokens if generation else 0
        tokens_out = generation.output_tokens if generation else 0
        cached = generation.cached_tokens if generation else 0
        model = sent.request.model
        cost = None
        if generation is not None:
            cost = sent.provider.cost_usd(model, *counted_tokens(sent.request, generation))
        elif billed:
            cost = estimate_usd(sent.provider, sent.request)
        record = CallRecord(
            provider=sent.provider.name,
            model=model,
            tool=sent.request.tool,
            persona=sent.request.persona,
            prompt_hash=sent.prompt_hash,
            latency_ms=int((time.monotonic() - sent.started) * 1000),
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cached_tokens=cached,
            cost_usd=cost,
            outcome=outcome,
            error=error[:500] if error else None,
        )
        self.spending.settle(sent.reserved, record)
        return record


@dataclass(frozen=True)
class Sent:
    """One call under way: what was sent to whom, the cost reserved for it, and since when."""

    provider: Provider
    request: Request
    prompt_hash: str
    reserved: float
    started: float = field(default_factory=time.monotonic)


_backoff = wait_exponential_jitter(multiplier=0.5, max=20, jitter=0.5)


def _wait_honouring_retry_after(state: RetryCallState) -> float:
    """Wait what the server asked for (Retry-After), else exponential backoff with jitter."""
    exc = state.outcome.exception() if state.outcome else None
    wait = exc.retry_after if isinstance(exc, TransientProviderError) else None
    if wait is not None and math.isfinite(wait):
        return min(max(wait, 0.0), MAX_RETRY_AFTER)
    return float(_backoff(state))


def stored_review(
    card_hash: str,
    provider: str,
    request: Request,
    answer: Answer,
    attempts: int,
    cost_usd: float | None = None,
) -> StoredReview:
    """Return the review to store for a valid answer to request (which cost cost_usd)."""
    return StoredReview(
        tool=request.tool,
        card_hash=card_hash,
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
        probabilities=answer.probabilities,
    )


_JSON_KINDS = {
    type(None): "null",
    list: "an array",
    str: "a string",
    bool: "true or false",
    int: "a number",
    float: "a number",
}
_FENCE = re.compile(r"^```(?:json)?\s*\n?(.*?)\n?```$", re.DOTALL)


def pair_label(first: str, second: str) -> str:
    """Return how a pair judgment names its two tools in the call log, errors and cassettes:
    "a-vs-b", the one shown first first."""
    return f"{first}-vs-{second}"


def stored_pair(
    cards: tuple[tuple[str, str], tuple[str, str]],
    provider: str,
    request: Request,
    answer: PairAnswer,
    attempts: int,
) -> StoredPair:
    """Return the judgment to store for a valid pair answer to request; `cards` are the
    (slug, content hash) of the card shown first, then of the other."""
    (first, first_hash), (second, second_hash) = cards
    return StoredPair(
        first=first,
        second=second,
        first_hash=first_hash,
        second_hash=second_hash,
        persona=request.persona,
        prompt_version=request.prompt_version,
        provider=provider,
        model=request.model,
        prefers=answer.prefers,
        reason=answer.reason,
        attempts=attempts,
        created_at=time.time(),
        sample=request.sample,
        probabilities=answer.probabilities,
    )


def parse_answer(request: Request, generation: Generation, answer_model: type[A]) -> A:
    """Return the validated answer in generation, or raise InvalidAnswer / RefusalError."""
    if generation.refusal or generation.finish_reason == "refusal":
        raise RefusalError(
            "refused to review",
            tool=request.tool,
            persona=request.persona,
            raw=generation.refusal or generation.text,
        )
    problems: list[str] = []
    text = generation.text.strip()
    if generation.finish_reason == "length":
        problems.append("the answer was cut off at the token limit; answer more briefly")
    elif not text:
        problems.append("the answer was empty")
    else:
        fenced = _FENCE.match(text)
        data = _load_json(fenced.group(1) if fenced else text, problems)
        if not isinstance(data, dict):
            if not problems:  # valid JSON, but null, a list, a string or a number
                kind = _JSON_KINDS.get(type(data), "something else")
                problems.append(f"the answer must be one JSON object, not {kind}")
        else:
            try:
                answer = answer_model.model_validate(data)
            except ValidationError as exc:
                problems.extend(_explain(exc))
            else:
                problems.extend(answer.check_rules())
                if not problems:
                    answer.weighed(generation.probabilities)
                    return answer
    raise InvalidAnswer(problems, generation)


def _load_json(text: str, problems: list[str]) -> Any:
    try:
        return load_json(text)
    except ParseError as exc:
        problems.append(f"the answer is {exc}")
        return None


def _explain(exc: ValidationError) -> list[str]:
    return [f"field '{error_field(err) or 'answer'}': {err['msg']}" for err in exc.errors()[:6]]


Limits = dict[str, asyncio.Semaphore]
"""Calls in flight allowed per provider name, shared by every review of a run."""


def call_limits(reviewer: Reviewer, concurrency: int) -> Limits:
    """Return the limits of a run: --concurrency calls per provider, or fewer if it takes fewer."""
    return {
        name: asyncio.Semaphore(min(concurrency, provider.max_concurrency))
        for name, provider in reviewer.providers.items()
    }


async def review_tool(
    reviewer: Reviewer,
    card: ToolCard,
    personas: list[Persona],
    *,
    concurrency: int,
    samples: int = 1,
    fresh: bool = False,
    on_done: Callable[[str], None] | None = None,
    limits: Limits | None = None,
) -> tuple[list[StoredReview], dict[str, ProviderError]]:
    """Run every persona on card, each for `samples` answers, concurrently up to the providers'
    limits (a persona's samples one after the other, so a local prompt cache keeps its prompt);
    `limits` shares them with other cards' reviews under way (default: this card's own).

    Returns the reviews (samples) that succeeded and, by persona, the first error of those that
    did not; a failure of one never discards another's stored review.
    """
    limits = limits if limits is not None else call_limits(reviewer, concurrency)
    asked = [
        (persona, partial(reviewer.review, card, persona, sample=n, samples=samples, fresh=fresh))
        for persona in personas
        for n in range(samples)
    ]
    return await _each(reviewer, asked, limits, on_done)


async def judge_pair(
    reviewer: Reviewer,
    pair: tuple[ToolCard, ToolCard],
    personas: list[Persona],
    *,
    concurrency: int,
    samples: int = 1,
    fresh: bool = False,
    on_done: Callable[[str], None] | None = None,
) -> tuple[list[StoredPair], dict[str, ProviderError]]:
    """Ask every persona which of the pair it would ship with, in both orders (the first card
    shown first, then the other), `samples` answers each, concurrently up to the providers'
    limits; one order's calls before the other's, so a local prompt cache keeps the cards.

    Returns the judgments that succeeded and, by persona, the first error of those that did not.
    """
    asked = [
        (
            persona,
            partial(reviewer.judge, first, second, persona, sample=n, samples=samples, fresh=fresh),
        )
        for first, second in (pair, pair[::-1])
        for persona in personas
        for n in range(samples)
    ]
    return await _each(reviewer, asked, call_limits(reviewer, concurrency), on_done)


T = TypeVar("T")


async def _each(
    reviewer: Reviewer,
    asked: Sequence[tuple[Persona, Callable[[], Awaitable[T]]]],
    limits: Limits,
    on_done: Callable[[str], None] | None,
) -> tuple[list[T], dict[str, ProviderError]]:
    """Run each persona's asks concurrently up to its provider's limit (`limits`); return the
    answers that came and, by persona, the first error of those that did not."""

    async def one(persona: Persona, ask: Callable[[], Awaitable[T]]) -> T | ProviderError:
        async with limits[reviewer.provider_for(persona).name]:
            try:
                return await ask()
            except ProviderError as exc:
                return exc
            finally:
                if on_done:
                    on_done(persona.key)

    results = await asyncio.gather(*(one(persona, ask) for persona, ask in asked))
    answers = [r for r in results if not isinstance(r, ProviderError)]
    errors: dict[str, ProviderError] = {}
    for (persona, _), result in zip(asked, results, strict=True):
        if isinstance(result, ProviderError):
            errors.setdefault(persona.key, result)
    return answers, errors
