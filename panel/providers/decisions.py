"""An answer's decisions read as probabilities, from the tokens a provider says it weighed.

A small judge's sampled "first" or "72" is one draw from what it weighed; its judgment lives in
the probabilities (issue #33: asked for one digit, the 1.5B model's expected digit ordered real
launches where its sampled answers did not). Wherever a provider reports the alternatives of the
tokens it wrote (llama.cpp in-process: every token; OpenAI-compatible servers: `top_logprobs`),
the decision fields of an answer are read here the same way:

- a choice (a string field with an enum, such as a pair answer's "prefers"): the probability of
  each option, from the alternatives of the token that starts the value, renormalised over the
  options (an alternative that starts no option, or more than one, counts for none);
- the score: the probability of each value, from the alternatives of the score's first token. A
  tokenizer that writes a number in one token ("72") gives each value directly; one that writes
  digits one by one ("7", "2") gives the tens, each completed with the sampled units digit (the
  sampled "100" keeps its "1" as 100). The expected score is the mean over those values.

Alternatives are (offset, [(token text, probability), ...]): where the sampled token starts in
the answer text, in characters.
"""

from __future__ import annotations

import re
from typing import Any

Alternatives = list[tuple[int, list[tuple[str, float]]]]
Probabilities = dict[str, dict[str, float]]
"""By decision field: each value it could take, with its probability (summing to 1)."""

_KEY = re.compile(r'"([A-Za-z_][A-Za-z0-9_]*)": ?"?$')
_NUMBER = re.compile(r"-?\d+")


def decision_fields(schema: dict[str, Any]) -> dict[str, list[str] | None]:
    """Return the fields of schema read as probabilities: a choice's options, or None for the
    score."""
    fields: dict[str, list[str] | None] = {}
    for name, prop in schema.get("properties", {}).items():
        if name == "score" and prop.get("type") == "integer":
            fields[name] = None
        elif prop.get("type") == "string" and "enum" in prop and name != "verdict":
            fields[name] = [str(option) for option in prop["enum"]]
    return fields


def probe_texts(schema: dict[str, Any]) -> tuple[str, ...]:
    """Return the texts after which a decision's first token is written, in panel's fixed JSON
    layout (`"prefers": "`, `"score": `)."""
    return tuple(
        f'"{name}": "' if options is not None else f'"{name}": '
        for name, options in decision_fields(schema).items()
    )


def read_probabilities(
    text: str, alternatives: Alternatives, schema: dict[str, Any]
) -> Probabilities | None:
    """Return the decisions of the answer `text` as probabilities (None where no alternatives
    fall at a decision)."""
    fields = decision_fields(schema)
    found: Probabilities = {}
    for offset, options in alternatives:
        key = _KEY.search(text[:offset])
        if key is None or key.group(1) not in fields or key.group(1) in found:
            continue
        name = key.group(1)
        choices = fields[name]
        if choices is None:
            spread = _score_values(text[offset:], options)
        else:
            spread = _choice_values(choices, options)
        if spread:
            found[name] = spread
    return found or None


def _normalised(weights: dict[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    if total <= 0:
        return {}
    return {value: round(weight / total, 6) for value, weight in weights.items()}


def _choice_values(choices: list[str], options: list[tuple[str, float]]) -> dict[str, float]:
    weights = dict.fromkeys(choices, 0.0)
    for token, p in options:
        piece = token.lstrip('"')
        matches = [c for c in choices if piece and c.startswith(piece)]
        if len(matches) == 1:
            weights[matches[0]] += p
    return _normalised(weights)


def _score_values(rest: str, options: list[tuple[str, float]]) -> dict[str, float]:
    sampled = _NUMBER.match(rest)
    if sampled is None:
        return {}
    number = sampled.group(0)
    weights: dict[str, float] = {}
    for token, p in options:
        value = _score_of(token.strip(), number)
        if value is not None:
            weights[str(value)] = weights.get(str(value), 0.0) + p
    return _normalised(weights)


def _score_of(token: str, sampled: str) -> int | None:
    """Return the score a first token stands for, given the score sampled in full."""
    if not token.isdigit():
        return None
    if sampled.startswith(token):
        value = int(sampled)
    elif len(token) > 1 or len(sampled) == 1:
        value = int(token)
    else:  # a tens digit: completed with the sampled units
        value = int(token) * 10 + int(sampled[-1])
    return value if 0 <= value <= 100 else None


def expected_score(probabilities: Probabilities | None) -> float | None:
    """Return the mean score over a read score's values, or None without one."""
    spread = (probabilities or {}).get("score")
    if not spread:
        return None
    return round(sum(int(value) * p for value, p in spread.items()), 2)


def checked_probabilities(value: object) -> Probabilities | None:
    """Return probabilities read back from a file (a cassette) if they have their shape: by
    field, values with probabilities from 0 to 1; raise TypeError if not (None stays None)."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > 8:
        raise TypeError("probabilities must be an object of a few fields")
    checked: Probabilities = {}
    for name, spread in value.items():
        if not isinstance(name, str) or not isinstance(spread, dict) or len(spread) > 101:
            raise TypeError(f"probabilities of {name!r} must be an object of values")
        checked[name] = {}
        for option, p in spread.items():
            if not isinstance(option, str) or isinstance(p, bool) or not isinstance(p, float | int):
                raise TypeError(f"probability of {name} {option!r} must be a number")
            if not 0 <= p <= 1:
                raise TypeError(f"probability of {name} {option!r} must be from 0 to 1")
            checked[name][option] = float(p)
    return checked
