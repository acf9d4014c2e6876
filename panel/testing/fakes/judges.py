"""Judges whose behaviour is known, as content rules for the loopback OpenAI server: what the
pairwise tests (compare, eval and queue --pairwise, rank) measure panel's judged head-to-head
against.

Each answers a review with a score and a pair judgment (a request whose schema has "prefers")
with "first", "second" or "tie". The cards' names are read from the prompt, in the order it
shows them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from .openai import answer_for, prompt_text

Judge = Callable[[dict[str, Any]], str]

_NAME = re.compile(r"^Name: (.+)$", re.MULTILINE)


def schema_of(body: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON schema a request asks its answer to follow."""
    fmt = body.get("response_format") or {}
    schema: dict[str, Any] = fmt.get("json_schema", {}).get("schema") or fmt.get("schema") or {}
    return schema


def is_pair(body: dict[str, Any]) -> bool:
    """Return whether a request asks for a pair judgment rather than a review."""
    return "prefers" in schema_of(body).get("properties", {})


def names_shown(body: dict[str, Any]) -> list[str]:
    """Return the names of the cards a request shows, in the order it shows them."""
    return _NAME.findall(prompt_text(body["messages"]))


def _digest(body: dict[str, Any]) -> int:
    text = f"{body.get('seed')}{body.get('temperature')}{prompt_text(body['messages'])}"
    return hashlib.sha256(text.encode()).digest()[0]


def review(body: dict[str, Any], score: int) -> str:
    return json.dumps(answer_for(schema_of(body), score=max(0, min(100, score))))


def pair(prefers: str, reason: str = "It ships the primitive that matters on day one.") -> str:
    return json.dumps({"reason": reason, "prefers": prefers})


def prefers_better(quality: dict[str, int], crowd: int = 61) -> Judge:
    """A judge that knows each tool's quality (by name): shown two, it picks the better whatever
    the order; asked to score one, it gives a crowded score (crowd - 1 to crowd + 1) that does
    not follow the quality, as absolute scores on a small model do."""

    def judge(body: dict[str, Any]) -> str:
        shown = names_shown(body)
        if is_pair(body):
            first, second = (quality[name] for name in shown[:2])
            return pair("first" if first > second else "second" if second > first else "tie")
        return review(body, crowd - 1 + _digest(body) % 3)

    return judge


def always_first(body: dict[str, Any]) -> str:
    """A judge with a pure position bias: shown two, it always picks the one shown first."""
    if is_pair(body):
        return pair("first", "The first card is the one I would ship with on Tuesday.")
    return review(body, 55 + _digest(body) % 20)


def noisy(body: dict[str, Any]) -> str:
    """A judge that only adds noise: its pick moves with the seed and the order, at random."""
    if is_pair(body):
        return pair(("first", "second", "tie")[_digest(body) % 3])
    return review(body, 45 + _digest(body) % 31)
