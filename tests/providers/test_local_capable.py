"""The default embedded judge, Qwen2.5-Coder-1.5B-Instruct, for real: a panel's four reviews and
a pair judged by its four personas, on the model `make install` pulls (a real model, no fake).

What the capable grammar promises (panel.providers.local_grammar): valid answers, whole words,
a name that keeps its capitals, a pair's reason that weighs both cards before the pick; and what
the decoder reads beside the sampled answer: the pick and the score as probabilities. It loads
a 1.1 GB model and takes most of both cores for about half a minute: run it alone."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from panel.cards import load_card
from panel.models.resolve import resolve_local_model
from panel.personas import PAIR_SCHEMA, Answer, PairAnswer, load_personas
from panel.prompts import Prompts
from panel.providers.base import Generation, Request
from panel.providers.local import LocalProvider
from panel.review import parse_answer

REPO = Path(__file__).resolve().parents[2]
JUDGE = "qwen2.5-coder-1.5b"


@pytest.fixture(scope="module")
def provider() -> LocalProvider:
    model = resolve_local_model(JUDGE)  # `make install` pulled it; else one line says how
    assert model.profile == "capable"
    return LocalProvider(model.path, seed=7, profile=model.profile)


def ask(provider: LocalProvider, requests: list[Request]) -> list[Generation]:
    async def together() -> list[Generation]:
        return list(await asyncio.gather(*(provider.generate(r) for r in requests)))

    return asyncio.run(together())


def words(answer: dict[str, Any]) -> list[str]:
    texts = [v for v in answer.values() if isinstance(v, str)]
    texts += [item for v in answer.values() if isinstance(v, list) for item in v]
    return [word for text in texts for word in text.split()]


def test_a_review_by_each_persona_is_valid_whole_and_keeps_the_names_capitals(
    provider: LocalProvider,
) -> None:
    card = load_card(REPO / "examples" / "smolvlm-3b.yaml")
    personas = load_personas(REPO / "personas")
    prompts = Prompts(REPO / "prompts")
    requests = [
        Request(
            messages=prompts.review(p, card).messages,
            schema=p.answer_schema,
            schema_name="review",
            model=provider.model,
            persona=p.key,
        )
        for p in personas
    ]
    generations = ask(provider, requests)
    texts = []
    for request, persona, generation in zip(requests, personas, generations, strict=True):
        answer = parse_answer(request, generation, persona.answer_model)  # valid, or it raises
        assert isinstance(answer, Answer)
        data = json.loads(generation.text)
        texts.append(data["review"])
        for word in words(data):
            # No glue: no camelCase run-on ("edgedeployment" shows as a long lower-case word)
            # and no word cut by a cap ("stateofm."): every word is at most 24 characters.
            assert len(word) <= 24, word
        for value in data.values():  # a text field ends on a whole sentence or a whole word
            if isinstance(value, str) and len(value.split()) > 3:
                assert re.search(r"[\w).!?%'\"]$", value), value
        read = generation.probabilities or {}
        assert abs(sum(read["score"].values()) - 1) < 1e-3
        assert answer.probabilities == generation.probabilities
    assert any("SmolVLM-3B" in text for text in texts), texts  # the name keeps its capitals
    assert "Smol VLM" not in " ".join(texts) and "Smolvlm" not in " ".join(texts)


def test_a_pair_judgment_weighs_both_cards_then_picks_with_its_probabilities(
    provider: LocalProvider,
) -> None:
    first = load_card(REPO / "examples" / "smolvlm-3b.yaml")
    second = load_card(REPO / "examples" / "mistral-8x22b-v2.yaml")
    personas = load_personas(REPO / "personas")
    prompts = Prompts(REPO / "prompts")
    requests = [
        Request(
            messages=prompts.pair(p, first, second).messages,
            schema=PAIR_SCHEMA,
            schema_name="pair",
            model=provider.model,
            persona=p.key,
        )
        for p in personas
    ]
    for request, generation in zip(requests, ask(provider, requests), strict=True):
        answer = parse_answer(request, generation, PairAnswer)
        assert answer.reason.startswith("The first tool") and " The second tool" in answer.reason
        read = (generation.probabilities or {})["prefers"]
        assert set(read) == {"first", "second", "tie"} and abs(sum(read.values()) - 1) < 1e-3
        assert max(len(word) for word in answer.reason.split()) <= 24
