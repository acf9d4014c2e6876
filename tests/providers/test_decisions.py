"""Decisions read as probabilities (panel.providers.decisions), and the OpenAI provider's reading
of a server's logprobs, which are as untrusted as the rest of its answer."""

from __future__ import annotations

import asyncio
import json
import math
from types import SimpleNamespace
from typing import Any

import pytest

from panel.config import Settings
from panel.personas import PAIR_SCHEMA
from panel.providers.base import Request
from panel.providers.decisions import (
    checked_probabilities,
    decision_fields,
    expected_score,
    probe_texts,
    read_probabilities,
)
from panel.providers.openai import OpenAIProvider, alternatives_of
from panel.testing.fakes import judges
from panel.testing.fakes.openai import FakeOpenAI

REVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "review": {"type": "string"},
        "score": {"type": "integer"},
        "verdict": {"type": "string", "enum": ["ship", "skip"]},
    },
}


def at(text: str, marker: str) -> int:
    return text.index(marker) + len(marker)


def test_the_decision_fields_are_the_pick_and_the_score_not_the_verdict() -> None:
    assert decision_fields(PAIR_SCHEMA) == {"prefers": ["first", "second", "tie"]}
    assert decision_fields(REVIEW_SCHEMA) == {"score": None}
    assert probe_texts(PAIR_SCHEMA) == ('"prefers": "',)
    assert probe_texts(REVIEW_SCHEMA) == ('"score": ',)


def test_a_pick_is_read_over_its_options_and_renormalised() -> None:
    text = '{"reason": "The first tool ships.", "prefers": "first"}'
    alternatives = [
        (3, [("reason", 1.0)]),  # not at a decision: not read
        (at(text, '"prefers": "'), [("first", 0.5), ("second", 0.2), ("t", 0.1), ("zzz", 0.2)]),
    ]
    read = read_probabilities(text, alternatives, PAIR_SCHEMA)
    assert read == {"prefers": {"first": 0.625, "second": 0.25, "tie": 0.125}}


def test_a_score_in_digit_tokens_is_completed_with_the_sampled_units() -> None:
    text = '{"review": "Fine tool.", "score": 72, "verdict": "ship"}'
    alternatives = [(at(text, '"score": '), [("7", 0.5), ("8", 0.25), ("6", 0.25), ("x", 0.3)])]
    read = read_probabilities(text, alternatives, REVIEW_SCHEMA)
    assert read == {"score": {"72": 0.5, "82": 0.25, "62": 0.25}}
    assert expected_score(read) == 72.0


def test_a_score_in_whole_number_tokens_is_read_as_it_is() -> None:
    text = '{"review": "Fine tool.", "score": 100, "verdict": "ship"}'
    alternatives = [(at(text, '"score": '), [("100", 0.5), ("90", 0.5), ("400", 0.9)])]
    read = read_probabilities(text, alternatives, REVIEW_SCHEMA)
    assert read == {"score": {"100": 0.5, "90": 0.5}}
    assert expected_score(read) == 95.0


def test_no_alternatives_at_a_decision_is_no_reading() -> None:
    text = '{"review": "Fine tool.", "score": 72, "verdict": "ship"}'
    assert read_probabilities(text, [], REVIEW_SCHEMA) is None
    assert read_probabilities(text, [(5, [("x", 1.0)])], REVIEW_SCHEMA) is None
    assert expected_score(None) is None


def token(text: str, logprob: float = 0.0, top: list[Any] | None = None) -> Any:
    return SimpleNamespace(token=text, logprob=logprob, top_logprobs=top or [])


def choice(*tokens: Any) -> Any:
    return SimpleNamespace(logprobs=SimpleNamespace(content=list(tokens)))


@pytest.mark.parametrize(
    "tokens",
    [
        [token('{"a'), token("WRONG")],  # tokens that do not add up to the text
        [token('{"a": '), token("1", top=[SimpleNamespace(token="1", logprob=None)])],
        [SimpleNamespace(nothing=1)],
    ],
)
def test_logprobs_that_do_not_fit_the_answer_are_left_unread(tokens: list[Any]) -> None:
    assert alternatives_of(choice(*tokens), '{"a": 1}') == []


def test_logprobs_with_impossible_figures_drop_those_alternatives() -> None:
    top = [SimpleNamespace(token="1", logprob=0.5), SimpleNamespace(token="2", logprob=-0.7)]
    found = alternatives_of(choice(token('{"a": '), token("1", top=top), token("}")), '{"a": 1}')
    assert found == [(6, [("2", pytest.approx(math.exp(-0.7)))])]


def ask(server: FakeOpenAI, schema: dict[str, Any], logprobs: bool) -> Any:
    settings = Settings(
        provider="openai", base_url=server.base_url, model="fake", logprobs=logprobs
    )
    provider = OpenAIProvider(settings)
    messages = [{"role": "user", "content": "Name: Tool A\nName: Tool B"}]
    request = Request(messages=messages, schema=schema, schema_name="x", model="fake")

    async def go() -> Any:
        try:
            return await provider.generate(request)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def test_the_openai_provider_reads_a_pick_from_a_servers_logprobs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-decisions-000000000000")
    with FakeOpenAI(content=judges.position_prior(0.7)) as server:
        generation = ask(server, PAIR_SCHEMA, logprobs=True)
        plain = ask(server, PAIR_SCHEMA, logprobs=False)
    assert json.loads(generation.text)["prefers"] == "first"
    assert generation.probabilities == {"prefers": {"first": 0.7, "second": 0.25, "tie": 0.05}}
    assert server.bodies[0]["logprobs"] is True and server.bodies[0]["top_logprobs"] == 20
    assert "logprobs" not in server.bodies[1] and plain.probabilities is None


@pytest.mark.parametrize(
    "value",
    [
        ["first"],
        {"prefers": ["first"]},
        {"prefers": {"first": 1.5}},
        {"prefers": {"first": True}},
        {"prefers": {"first": "0.5"}},
        {f"f{i}": {} for i in range(9)},
    ],
)
def test_probabilities_read_back_from_a_cassette_must_have_their_shape(value: Any) -> None:
    with pytest.raises(TypeError):
        checked_probabilities(value)


def test_probabilities_read_back_from_a_cassette_keep_their_values() -> None:
    assert checked_probabilities(None) is None
    assert checked_probabilities({"score": {"72": 0.5, "82": 1}}) == {
        "score": {"72": 0.5, "82": 1.0}
    }
