"""Asking a judge: one persona asked one question (a card to review, a pair of cards to judge:
panel.questions) returns a validated answer, or a typed error. Every kind of question goes
through the one path here: key, prompt, ask, validate, re-ask, retry, store, call log.

This is where the three safety nets live, each in one place:
- transient provider failures (429, 5xx, timeouts) are retried with backoff that honours
  Retry-After: the only retry layer (the SDKs are told not to retry);
- an answer that fails validation is re-asked once with the problems, then raises AnswerError;
- a stored answer under the same key (panel.store.Key: cards, question, model, mitigations,
  temperature, sample) is reused instead of calling again: the run's plan leaves it out.
Every call, failed or not, lands in the call log.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

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
from panel.personas import Checked, Persona
from panel.prompts import Prompts
from panel.providers.base import Generation, Provider, Request
from panel.questions import Question, S, asked
from panel.rules import MAX_RETRY_AFTER, SAMPLES_TEMPERATURE
from panel.spending import Spending, call_record
from panel.store import CallRecord, Key, Store
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
class Call(Generic[S]):
    """One sample of a question still to ask: whom, the request as it is sent, and its key."""

    question: Question[S]
    sample: int
    provider: Provider
    request: Request
    prompt_hash: str
    key: Key


@dataclass(frozen=True)
class Planned(Generic[S]):
    """One question of a run: its samples stored already, and the calls for the others."""

    question: Question[S]
    stored: list[S]
    calls: list[Call[S]]


@dataclass(frozen=True)
class Reviewer:
    """Everything a question needs besides its cards and persona."""

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
    """What the judges are kept from seeing (--rotate-fields, --blind-names, --strip-injection),
    in every kind of question."""

    def provider_for(self, persona: Persona) -> Provider:
        return self.providers[persona.provider or self.default]

    def model_for(self, persona: Persona) -> str:
        provider = self.provider_for(persona)
        if persona.model:
            return persona.model
        if persona.provider and persona.provider != self.default:
            return provider.model
        return self.default_model or provider.model

    def temperature_for(self, samples: int) -> float:
        """Return the temperature of a question asked `samples` times (see `temperature`)."""
        if self.temperature is not None:
            return self.temperature
        return SAMPLES_TEMPERATURE if samples > 1 else 0.0

    def key(self, question: Question[Any], sample: int = 0) -> Key:
        """Return the key sample `sample` of question is stored under with today's prompts,
        model, mitigations and temperature: the one place a key is built."""
        persona = question.persona
        return Key(
            question.kind.name,
            tuple(card.content_hash() for card in question.cards),
            persona.key,
            question.kind.version(self.prompts, persona),
            self.provider_for(persona).name,
            self.model_for(persona),
            question.kind.shaping(self.mitigations, question.cards),
            self.temperature_for(question.samples),
            sample,
        )

    def stored(self, question: Question[S]) -> list[S]:
        """Return the stored samples of question that a run would reuse now, by index (some may
        be missing)."""
        return self._found(question, self.key(question))

    def _found(self, question: Question[S], key: Key) -> list[S]:
        found = self.store.find(key, question.samples)
        return [answer for answer in found if isinstance(answer, question.kind.record_type)]

    def plan(self, question: Question[S], fresh: bool = False) -> Planned[S]:
        """Return question's stored samples and the calls for the others (every one with
        fresh)."""
        key = self.key(question)
        stored = [] if fresh else self._found(question, key)
        have = {answer.sample for answer in stored}
        calls = [
            self._call_of(question, replace(key, sample=n))
            for n in range(question.samples)
            if n not in have
        ]
        return Planned(question, stored, calls)

    def call(self, question: Question[S], sample: int) -> Call[S]:
        """Return the call asking sample `sample` of question, as the mitigations show its
        cards; a live run sends its request (and re-asks from it), a batch sends it as one of
        many."""
        return self._call_of(question, self.key(question, sample))

    def _call_of(self, question: Question[S], key: Key) -> Call[S]:
        persona, kind, sample = question.persona, question.kind, key.sample
        prompt = kind.render(self.prompts, persona, question.cards, sample, self.mitigations)
        request = Request(
            messages=list(prompt.messages),
            schema=kind.schema(persona),
            schema_name=f"{persona.key}_{kind.name}",
            model=key.model,
            max_tokens=self.max_tokens,
            temperature=key.temperature,
            seed=self.seed + sum(card.seed_shift for card in question.cards) + sample,
            persona=persona.key,
            tool=question.label,
            sample=sample,
            prompt_version=prompt.version,
            nonce=prompt.nonce,
            mitigations=key.mitigations,
        )
        return Call(question, sample, self.provider_for(persona), request, prompt.hash, key)

    async def ask(self, call: Call[S], then: Callable[[Connection], None] | None = None) -> S:
        """Ask one call, validate (re-asking once) and store the answer with the log entry of
        the call that gave it and what `then` writes (e.g. the queue finishing its unit), in
        one transaction; return the stored answer."""
        question = call.question
        try:
            answer, attempts, record = await self._answer(call)
        except PanelError as exc:
            raise exc.about(tool=question.label, persona=question.persona.key) from None
        kind, cards = question.kind, question.cards
        how = asked(call.provider.name, call.request, attempts)
        stored = kind.record(cards, answer, how, record.cost_usd)
        self.store.save(cards, stored, call=record, then=then)
        return stored

    # --- the calls -----------------------------------------------------------------------------

    async def _answer(self, call: Call[Any]) -> tuple[Checked, int, CallRecord]:
        """Return a valid answer to call, the attempts it took and the log entry of the call
        that gave it (not logged yet); re-ask an invalid one once."""
        attempts, request = 0, call.request
        answer_model = call.question.kind.answer_model(call.question.persona)
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(1 + REASKS),
                retry=retry_if_exception_type(InvalidAnswer),
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    try:
                        answer, record = await self._call(
                            call.provider, request, call.prompt_hash, answer_model
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
                f"gave no valid {call.question.kind.noun} after {attempts} attempts: "
                f"{bad.problems[0]}",
                provider=call.provider.name,
                attempts=attempts,
                raw=bad.generation.text,
                input_tokens=bad.generation.input_tokens,
                output_tokens=bad.generation.output_tokens,
            ) from None
        return answer, attempts, record

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
                    self.store.log_call(self._record(sent, "error", None, str(exc), billed=billed))
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
                    self.store.log_call(self._record(sent, "invalid", generation, str(bad)))
                    raise
                except RefusalError as refusal:
                    self.store.log_call(self._record(sent, "refusal", generation, refusal.raw))
                    raise
                return answer, self._record(sent, "ok", generation, None)
        raise AssertionError("unreachable")  # pragma: no cover

    def _record(
        self,
        sent: Sent,
        outcome: str,
        generation: Generation | None,
        error: str | None,
        *,
        billed: bool = False,
    ) -> CallRecord:
        """Return the call log entry of one call that ended (spending.call_record prices it),
        and count it in the run's spending."""
        latency = int((time.monotonic() - sent.started) * 1000)
        record = call_record(
            sent.provider,
            sent.request,
            sent.prompt_hash,
            generation,
            outcome,
            error,
            latency,
            billed=billed,
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


_JSON_KINDS = {
    type(None): "null",
    list: "an array",
    str: "a string",
    bool: "true or false",
    int: "a number",
    float: "a number",
}
_FENCE = re.compile(r"^```(?:json)?\s*\n?(.*?)\n?```$", re.DOTALL)


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


async def answer_all(
    reviewer: Reviewer,
    planned: Sequence[Planned[S]],
    limits: Limits,
    on_done: Callable[[str], None] | None = None,
) -> tuple[list[S], dict[str, ProviderError]]:
    """Carry out the planned questions: their stored samples as they are, and their calls made
    now (see make_calls). Returns every answer there is, by question and sample, and by persona
    the first error of the calls that failed; a failure of one never discards another's
    stored answer."""
    made = await make_calls(reviewer, planned, limits, on_done)
    return answers_of(planned, made)


async def make_calls(
    reviewer: Reviewer,
    planned: Sequence[Planned[Any]],
    limits: Limits,
    on_done: Callable[[str], None] | None = None,
) -> dict[Key, object]:
    """Make the calls of the planned questions, concurrently up to each provider's limit
    (`limits`, shared by every question of a run under way; a question's calls in order, so a
    local prompt cache keeps its prompt), and once per key where two questions share one.
    Return each key's stored answer, or the ProviderError its call ended with. `on_done` hears
    of every planned sample as it is done, the stored ones first."""
    served: dict[Key, list[Call[Any]]] = {}
    for question in planned:
        for _ in question.stored:
            if on_done:
                on_done(question.question.persona.key)
        for call in question.calls:
            served.setdefault(call.key, []).append(call)

    async def one(calls: list[Call[Any]]) -> object:
        async with limits[calls[0].provider.name]:
            try:
                return await reviewer.ask(calls[0])
            except ProviderError as exc:
                return exc
            finally:
                for call in calls if on_done else []:
                    on_done(call.question.persona.key)  # type: ignore[misc]

    results = await asyncio.gather(*(one(calls) for calls in served.values()))
    return dict(zip(served, results, strict=True))


def answers_of(
    planned: Sequence[Planned[S]], made: dict[Key, object]
) -> tuple[list[S], dict[str, ProviderError]]:
    """Return the answers of the planned questions, stored or `made` (by question and sample),
    and by persona the first error of the calls that failed."""
    answers: list[S] = []
    errors: dict[str, ProviderError] = {}
    for question in planned:
        by_sample = {answer.sample: answer for answer in question.stored}
        for call in question.calls:
            result = made[call.key]
            if isinstance(result, question.question.kind.record_type):
                by_sample[call.sample] = result
            elif isinstance(result, ProviderError):
                errors.setdefault(question.question.persona.key, result)
        answers += [by_sample[n] for n in sorted(by_sample)]
    return answers, errors
