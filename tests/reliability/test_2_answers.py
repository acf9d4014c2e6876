"""Battery 2: malformed model answers, in the reviewer and end to end through the CLI.

Every kind is re-asked once with its problems (then stored if the second answer is valid) or
fails with a typed error (AnswerError, RefusalError, ProviderError); a refusal is recorded as a
refusal and never re-asked; no invalid review is ever stored; nothing escapes as a traceback.
Code fences around a valid answer are the one salvage: the JSON inside is validated like any other.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from panel.cards import ToolCard
from panel.config import data_dir
from panel.errors import AnswerError, ProviderError, RefusalError
from panel.personas import Persona, load_personas
from panel.providers.base import Generation
from panel.review import Reviewer
from panel.store import Store
from panel.testing.asking import ask_review
from panel.testing.fakes.openai import FakeOpenAI, answer_for, completion, prompt_text
from panel.testing.fakes.scripted import ScriptedProvider
from tests.reliability.conftest import Tally


def _answer(schema: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**answer_for(schema, score=80), **changes}


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


# kind -> (what the model says, given the answer schema; what the panel must do with it)
Bad = Callable[[dict[str, Any]], "str | Generation"]
KINDS: dict[str, tuple[Bad, str]] = {
    "invalid-json": (lambda s: "{review: nope, score: 80}", "reask"),
    "truncated-json": (lambda s: json.dumps(_answer(s))[:60], "reask"),
    "code-fences": (lambda s: "```json\n" + json.dumps(_answer(s)) + "\n```", "accept"),
    "code-fences-around-bad": (
        lambda s: "```json\n" + json.dumps(_answer(s, score=101)) + "\n```",
        "reask",
    ),
    "prose-around": (
        lambda s: f"Here is my review: {json.dumps(_answer(s))} Hope it helps!",
        "reask",
    ),
    "score-as-string": (lambda s: json.dumps(_answer(s, score="80")), "reask"),
    "score-101": (lambda s: json.dumps(_answer(s, score=101)), "reask"),
    "score-minus-1": (lambda s: json.dumps(_answer(s, score=-1, verdict="skip")), "reask"),
    "score-nan": (lambda s: json.dumps(_answer(s)).replace('"score": 80', '"score": NaN'), "reask"),
    "score-float": (lambda s: json.dumps(_answer(s, score=80.5)), "reask"),
    "verdict-ship!": (lambda s: json.dumps(_answer(s, verdict="Ship!")), "reask"),
    "verdict-disagrees": (lambda s: json.dumps(_answer(s, score=40)), "reask"),
    "missing-field": (lambda s: json.dumps(_without(_answer(s), "review")), "reask"),
    "extra-field": (lambda s: json.dumps(_answer(s, confidence=0.9)), "reask"),
    "review-too-short": (lambda s: json.dumps(_answer(s, review="Good.")), "reask"),
    "review-too-long": (lambda s: json.dumps(_answer(s, review="word " * 900)), "reask"),
    "a-json-list": (lambda s: json.dumps([_answer(s)]), "reask"),
    "json-null": (lambda s: "null", "reask"),
    "nested-too-deep": (lambda s: "[" * 50_000 + "]" * 50_000, "reask"),
    "empty-answer": (lambda s: "", "reask"),
    "stop-at-max-tokens": (
        lambda s: Generation(json.dumps(_answer(s))[:80], finish_reason="length"),
        "reask",
    ),
    "refusal": (
        lambda s: Generation("", refusal="I can't help with that.", finish_reason="refusal"),
        "refusal",
    ),
}
IDS = list(KINDS)


def _reviews(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as con:
        return con.execute(
            "SELECT tool, persona, score, verdict, review, fields FROM reviews"
        ).fetchall()


def invalid_stored(db: Path, personas: list[Persona]) -> int:
    """Return how many stored reviews would fail the validation a model answer must pass."""
    by_key = {p.key: p for p in personas}
    bad = 0
    for _tool, persona, score, verdict, review, fields in _reviews(db):
        data = {"score": score, "verdict": verdict, "review": review, **json.loads(fields)}
        try:
            answer = by_key[persona].answer_model.model_validate(data)
            bad += bool(answer.check_rules())
        except ValueError:
            bad += 1
    return bad


# --- in the reviewer --------------------------------------------------------------------------


@pytest.mark.parametrize("twice", [False, True], ids=["then-valid", "twice"])
@pytest.mark.parametrize("kind", IDS)
def test_the_reviewer_reasks_or_fails_typed(
    make_reviewer: Callable[..., Reviewer],
    store: Store,
    card: ToolCard,
    personas: list[Persona],
    tally: Tally,
    kind: str,
    twice: bool,
) -> None:
    make_bad, expect = KINDS[kind]
    persona = personas[1]  # the Skeptic: its answer has a list field too
    bad = make_bad(persona.answer_schema)
    good = json.dumps(_answer(persona.answer_schema))
    provider = ScriptedProvider([bad, bad if twice else good])
    outcome: Any
    try:
        outcome = asyncio.run(ask_review(make_reviewer(provider), card, persona))
    except Exception as exc:  # a typed ProviderError is expected; anything else is what we hunt
        outcome = exc
    calls = [c.outcome for c in store.recent_calls()]
    stored = store.db.execute("SELECT count(*) FROM reviews").fetchone()[0]
    if expect == "accept":
        ok = not isinstance(outcome, Exception) and outcome.attempts == 1 and calls == ["ok"]
    elif expect == "refusal":
        logged = [c.error for c in store.recent_calls()]
        ok = isinstance(outcome, RefusalError) and calls == ["refusal"] and stored == 0
        ok = ok and logged == ["I can't help with that."]
    elif twice:
        ok = (
            isinstance(outcome, AnswerError)
            and outcome.attempts == 2
            and calls == ["invalid", "invalid"]
            and stored == 0
        )
    else:
        reask = provider.requests[1].messages[-1]["content"] if len(provider.requests) > 1 else ""
        ok = (
            not isinstance(outcome, Exception)
            and outcome.attempts == 2
            and calls == ["invalid", "ok"]
            and "could not be accepted" in reask
        )
    uncaught = isinstance(outcome, Exception) and not isinstance(outcome, ProviderError)
    lost = invalid_stored(Path(store.location), personas) + int(uncaught)
    tally.add("answers", survived=ok and not lost, lost=lost)
    assert not uncaught, repr(outcome)
    assert lost == 0
    assert ok, (outcome, calls)


# --- end to end: `panel review` against an OpenAI-compatible loopback server ------------------

TRANSPORT_KINDS = {
    "not-a-chat-completion": {"object": "error", "detail": "upstream said no"},
    "no-choices": {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [],
    },
}


def _served(kind: str, body: dict[str, Any]) -> str | dict[str, Any]:
    """Return what the loopback server answers for kind: text, or a whole completion."""
    if kind in TRANSPORT_KINDS:
        return TRANSPORT_KINDS[kind]
    schema = body["response_format"]["json_schema"]["schema"]
    bad = KINDS[kind][0](schema)
    if isinstance(bad, str):
        return bad
    if bad.refusal:
        return completion(body, None, refusal=bad.refusal)
    return completion(body, bad.text, finish_reason=bad.finish_reason)


def test_end_to_end_no_invalid_review_lands_and_nothing_escapes(
    tmp_path: Path, tally: Tally
) -> None:
    kinds = [*IDS, *TRANSPORT_KINDS]
    cards = []
    for kind in kinds:
        for mode in ("once", "always"):
            path = tmp_path / f"{kind}-{mode}.yaml".replace("!", "")
            name = f"answer {kind} {mode}"
            path.write_text(
                yaml.safe_dump({"name": name, "tagline": "t", "description": "A tool."})
            )
            cards.append((path, kind, mode))

    def content(body: dict[str, Any]) -> str | dict[str, Any] | None:
        user = prompt_text(body["messages"])
        kind, mode = next((k, m) for _, k, m in cards if f"Name: answer {k} {m}\n" in user)
        first_ask = len(body["messages"]) == 2
        return _served(kind, body) if first_ask or mode == "always" else None

    db = tmp_path / "panel.db"
    with FakeOpenAI(content=content) as server:
        argv = ["review", *(str(c[0]) for c in cards), "--persona", "skeptic", "--json"]
        argv += ["--provider", "openai", "--base-url", server.base_url, "--model", "fake"]
        argv += ["--db", str(db), "--out", str(tmp_path / "out")]
        result = subprocess.run(
            [sys.executable, "-m", "panel", *argv],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "OPENAI_API_KEY": "sk-test-answers-0000000000000000"},
        )
    personas = load_personas(data_dir("personas"))
    lines = result.stderr.splitlines()
    uncaught = "Traceback" in result.stderr or not all(line.startswith("panel: ") for line in lines)
    documents = {doc["tool"]["name"]: doc for doc in json.loads(result.stdout)}
    with sqlite3.connect(db) as con:
        outcomes = dict(
            con.execute("SELECT tool, group_concat(outcome) FROM calls GROUP BY tool").fetchall()
        )
    lost = invalid_stored(db, personas) + int(uncaught)
    for _, kind, mode in cards:
        doc = documents[f"answer {kind} {mode}"]
        reviewed = bool(doc["reviews"])
        expect = KINDS[kind][1] if kind in KINDS else "fail"
        if expect == "refusal":
            ok = not reviewed and outcomes[doc["tool"]["slug"]] == "refusal"
        elif expect == "accept" or (mode == "once" and kind in KINDS):
            ok = reviewed and doc["reviews"][0]["attempts"] == (1 if expect == "accept" else 2)
        else:
            ok = not reviewed and len(doc["errors"]) == 1
        tally.add("answers", survived=ok and not uncaught, lost=0)
        assert ok, (kind, mode, doc["errors"], outcomes.get(doc["tool"]["slug"]))
    tally.add("answers", survived=not lost, lost=lost, tried=0)
    assert result.returncode == 1, result.stderr
    assert not uncaught, result.stderr
    assert lost == 0
