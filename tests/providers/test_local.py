"""The embedded model's decoder and provider: answers that do not depend on their batch, the
grammar-first token at every step, forced text not sampled, and requests gathered into batches.

The slow tests load the embedded model (SmolLM2-135M); the batcher's tests use a stand-in model.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from panel.cards import ToolCard, load_card
from panel.errors import ProviderError
from panel.personas import Persona
from panel.prompts import Prompts
from panel.providers.base import Request
from panel.providers.local import LocalProvider, _Batcher, default_model_path, loaded_model
from panel.providers.local_decode import (
    MAX_SEQUENCES,
    Decoded,
    Job,
    Model,
    Sampler,
    Stats,
    common_length,
)
from panel.providers.local_grammar import schema_to_gbnf

REPO = Path(__file__).resolve().parents[2]


def jobs_for(
    model: Model, prompts: Prompts, personas: list[Persona], card: ToolCard, **kw: float
) -> list[Job]:
    jobs = []
    for persona in personas:
        prompt, head = model.chat_prompt(prompts.review(persona, card).messages)
        grammar = schema_to_gbnf(persona.answer_schema)
        jobs.append(Job(prompt, grammar, head, **kw))  # type: ignore[arg-type]
    return jobs


def decode(model: Model, jobs: Sequence[Job]) -> list[Decoded]:
    answers: dict[int, Decoded] = {}
    model.run(jobs, answers.__setitem__)
    return [answers[i] for i in range(len(jobs))]


@pytest.fixture(scope="module")
def model() -> Model:
    return loaded_model(default_model_path())


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_a_panel_decoded_again_or_in_another_order_gives_the_same_answers(
    model: Model, prompts: Prompts, personas: list[Persona], card: ToolCard, temperature: float
) -> None:
    jobs = jobs_for(model, prompts, personas, card, temperature=temperature, seed=11)
    first = decode(model, jobs)
    again = decode(model, jobs)
    arrived_the_other_way = decode(model, jobs[::-1])[::-1]
    assert [a.text for a in first] == [a.text for a in again]
    assert [a.text for a in first] == [a.text for a in arrived_the_other_way]
    for answer in first:
        assert {"review", "score", "verdict"} <= set(json.loads(answer.text))
        assert answer.finish_reason == "stop"


@pytest.mark.slow
def test_an_answer_does_not_depend_on_what_the_model_decoded_before(
    model: Model, prompts: Prompts, personas: list[Persona], card: ToolCard
) -> None:
    other = load_card(REPO / "examples" / "mistral-8x22b-v2.yaml")
    jobs = jobs_for(model, prompts, personas, card)
    first = [a.text for a in decode(model, jobs)]
    decode(model, jobs_for(model, prompts, personas, other))  # the cache now holds another card
    after_another = [a.text for a in decode(model, jobs)]
    model.ceiling(1, steps=2)  # leaves the cache empty
    from_nothing = [a.text for a in decode(model, jobs)]
    alone = decode(model, jobs[:1])[0].text  # a re-ask runs alone: the same prompt, alone
    assert first == after_another == from_nothing
    assert json.loads(alone)


@pytest.mark.slow
def test_the_card_is_evaluated_once_for_a_panel_and_counted_as_cached(
    model: Model, prompts: Prompts, personas: list[Persona], card: ToolCard
) -> None:
    jobs = jobs_for(model, prompts, personas, card)
    head = jobs[0].head
    assert head > 200, "the card's part of the prompt comes first"
    assert all(job.prompt[:head] == jobs[0].prompt[:head] for job in jobs)
    model.ceiling(1, steps=2)  # an empty cache
    before = model.stats.copy()
    answers = decode(model, jobs)
    used = model.stats.since(before)
    # One answer's call evaluated the card's part (which one: the jobs' canonical order).
    assert sorted(a.cached_tokens for a in answers) == [0] + [head] * (len(jobs) - 1)
    own = sum(len(job.prompt) - head for job in jobs)
    openings = sum(len(model.tokenize('{"review": "', special=False)) for _ in jobs)
    assert used.prompt_tokens == head + own + openings
    again = decode(model, jobs[:1])[0]
    assert again.cached_tokens == head, "the next call on the same card reuses its part"


@pytest.mark.slow
def test_forced_text_is_evaluated_not_sampled(
    model: Model, prompts: Prompts, personas: list[Persona], card: ToolCard
) -> None:
    builder = personas[0]
    before = model.stats.copy()
    (answer,) = decode(model, jobs_for(model, prompts, [builder], card))
    used = model.stats.since(before)
    document = json.loads(answer.text)
    assert list(document) == ["review", *builder.fields, "score", "verdict"]
    assert answer.text.startswith('{"review": "')
    keys = len(document)
    assert answer.forced_tokens >= 2 * keys, "every key and its quotes are forced"
    assert used.sampled + used.forced == answer.output_tokens
    assert used.forced == answer.forced_tokens


@pytest.mark.slow
def test_the_token_chosen_is_the_one_a_grammar_first_chain_chooses(
    model: Model, prompts: Prompts, personas: list[Persona], card: ToolCard
) -> None:
    """Greedy: our draw (the grammar checks the best token, masks only on a refusal) against
    the grammar applied to the whole vocabulary before the argmax, on logits made to be
    refused at the top."""
    (job,) = jobs_for(model, prompts, personas[:1], card)
    ours, reference = Sampler(model, job), Sampler(model, job)
    rng = np.random.default_rng(5)
    stats = Stats()
    for text in ['{"review": "', "The"]:
        for token in model.tokenize(text, special=False):
            for sampler in (ours, reference):
                model._llama.llama_sampler_accept(sampler.grammar, token)
    for _ in range(40):
        logits = rng.normal(size=model.n_vocab).astype(np.float32)
        logits[model.tokenize("{", special=False)[0]] = 50.0  # never allowed mid-review
        chosen = ours.sample(logits, stats)
        allowed = reference._mask(reference._ids, logits.copy())
        expected = int(allowed[np.argmax(logits[allowed])])
        assert chosen == expected
        model._llama.llama_sampler_accept(reference.grammar, chosen)
    assert stats.rejected == 40
    ours.close()
    reference.close()


@pytest.mark.slow
def test_a_prompt_too_long_for_the_context_is_one_provider_error(
    prompts: Prompts, personas: list[Persona], card: ToolCard
) -> None:
    provider = LocalProvider(default_model_path(), seed=7)
    persona = personas[0]
    messages = prompts.review(persona, card).messages
    huge = [messages[0], {"role": "user", "content": "word " * 20_000}]
    request = Request(huge, persona.answer_schema, "builder_review", provider.model)
    with pytest.raises(ProviderError, match="leaves no room for an answer"):
        asyncio.run(provider.generate(request))


# --- the batcher, with a stand-in model ---------------------------------------------------------


class StandIn:
    """Records the batches it is given; answers each job with its first prompt token."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.fail: Exception | None = None
        self.release = threading.Event()
        self.release.set()

    def run(self, jobs: Sequence[Job], done: Callable[[int, Decoded], None]) -> None:
        self.release.wait(5)
        self.batches.append([job.prompt[0] for job in jobs])
        if self.fail is not None:
            raise self.fail
        for index, job in enumerate(jobs):
            done(index, Decoded(str(job.prompt[0]), len(job.prompt), 0, 1, 0, "stop"))


def job(n: int) -> Job:
    return Job(prompt=[n, 1, 2], grammar='root ::= "x"')


def test_requests_that_arrive_together_are_one_batch() -> None:
    stand_in = StandIn()

    async def main() -> list[str]:
        batcher = _Batcher(stand_in)  # type: ignore[arg-type]
        answers = await asyncio.gather(*(batcher.submit(job(n)) for n in range(6)))
        return [a.text for a in answers]

    assert asyncio.run(main()) == [str(n) for n in range(6)]
    assert stand_in.batches == [[0, 1, 2, 3], [4, 5]]
    assert MAX_SEQUENCES == 4


def test_a_request_alone_is_decoded_after_a_short_wait_and_the_next_one_joins_the_next_batch() -> (
    None
):
    stand_in = StandIn()
    stand_in.release.clear()

    async def main() -> None:
        batcher = _Batcher(stand_in)  # type: ignore[arg-type]
        first = asyncio.create_task(batcher.submit(job(1)))
        await asyncio.sleep(0.1)  # the first batch has started (and waits to be released)
        second = asyncio.create_task(batcher.submit(job(2)))
        await asyncio.sleep(0.05)
        stand_in.release.set()
        assert (await first).text == "1" and (await second).text == "2"

    asyncio.run(main())
    assert stand_in.batches == [[1], [2]]


def test_a_failed_batch_fails_every_request_in_it() -> None:
    stand_in = StandIn()
    stand_in.fail = RuntimeError("llama_decode failed (-3)")

    async def main() -> list[BaseException | Decoded]:
        batcher = _Batcher(stand_in)  # type: ignore[arg-type]
        return await asyncio.gather(
            *(batcher.submit(job(n)) for n in range(3)), return_exceptions=True
        )

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) for r in results)


def test_a_cancelled_request_marks_its_job_abandoned() -> None:
    stand_in = StandIn()
    stand_in.release.clear()
    lone = job(1)

    async def main() -> None:
        batcher = _Batcher(stand_in)  # type: ignore[arg-type]
        task = asyncio.create_task(batcher.submit(lone))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stand_in.release.set()

    asyncio.run(main())
    assert lone.abandoned.is_set()


def test_common_length_counts_the_leading_tokens_two_prompts_share() -> None:
    assert common_length([1, 2, 3, 4], [1, 2, 3, 5]) == 3
    assert common_length([1, 2], [1, 2, 3]) == 2
    assert common_length([9], [1, 2]) == 0


def test_the_model_path_is_checked_before_anything_loads(tmp_path: Path) -> None:
    from panel.errors import ConfigError

    with pytest.raises(ConfigError, match="local model file not found"):
        loaded_model(tmp_path / "missing.gguf")
