"""Cassettes: model calls recorded at the provider boundary, replayed by the `replay` provider.

A cassette is one JSON file: the normalised request (what was asked: persona, prompt version,
messages with the per-call delimiter nonce replaced, schema, parameters; plus who answered) and
the answer. It is named by a hash of "what was asked", so the same question finds the same
answer whichever provider recorded it, and a changed persona, prompt or card finds none.
Requests never carry credentials; answers are scrubbed of anything shaped like a key anyway.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from panel.errors import ConfigError, MalformedAnswerError, scrub
from panel.files import read_capped, write_atomic
from panel.parsing import ParseError, load_json
from panel.providers.base import Generation, Request, checked_generation
from panel.providers.decisions import checked_probabilities

NONCE_PLACEHOLDER = "NONCE"
FORMAT = "panel.cassette/1"
MAX_CASSETTE_BYTES = 4 * 2**20


def _without_nonces(text: str, nonces: list[str]) -> str:
    for nonce in nonces:
        text = text.replace(nonce, NONCE_PLACEHOLDER)
    return text


def normalise(request: Request) -> dict[str, Any]:
    """Return what was asked, stable across calls (the nonces replaced: a pair judgment has
    one per card, space-separated) and free of secrets."""
    nonces = request.nonce.split()
    messages = [{**m, "content": _without_nonces(m["content"], nonces)} for m in request.messages]
    return {
        "persona": request.persona,
        "tool": request.tool,
        "prompt_version": request.prompt_version,
        "schema_name": request.schema_name,
        "schema": request.schema,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "seed": request.seed,
        "messages": messages,
    }


def request_hash(request: Request) -> str:
    canonical = json.dumps(normalise(request), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def cassette_path(folder: Path, request: Request) -> Path:
    """Return the cassette file of request: readable prefix, named by the request hash."""
    return folder / f"{request.tool}.{request.persona}.{request_hash(request)}.json"


def write_cassette(
    folder: Path, request: Request, provider: str, model: str, answer: Generation
) -> Path:
    path = cassette_path(folder, request)
    asked = normalise(request)
    # One line of prompt per JSON string, so a changed sentence shows as a one-line diff.
    asked["messages"] = [
        {"role": m["role"], "lines": m["content"].split("\n")} for m in asked["messages"]
    ]
    cassette = {
        "format": FORMAT,
        "request": {"provider": provider, "model": model, **asked},
        "answer": {
            **_answer_body(answer.text),
            "finish_reason": answer.finish_reason,
            "refusal": answer.refusal,
            "input_tokens": answer.input_tokens,
            "output_tokens": answer.output_tokens,
            "cached_tokens": answer.cached_tokens,
            "probabilities": answer.probabilities,
        },
    }
    write_atomic(path, scrub(json.dumps(cassette, indent=2, ensure_ascii=False)) + "\n")
    return path


def _answer_body(text: str) -> dict[str, Any]:
    """Return {"json": object} when text is exactly that object's JSON (readable diffs), else {"text": text}."""
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return {"text": text}
    if isinstance(parsed, dict) and json.dumps(parsed, ensure_ascii=False) == text:
        return {"json": parsed}
    return {"text": text}


def read_answer(path: Path) -> tuple[dict[str, Any], Generation]:
    """Return the recorded request and answer of a cassette file."""
    try:
        cassette = load_json(read_capped(path, MAX_CASSETTE_BYTES, "cassette").decode("utf-8"))
        answer = cassette["answer"]
        text = (
            json.dumps(answer["json"], ensure_ascii=False) if "json" in answer else answer["text"]
        )
        # A cassette may come from anyone (a pull request): its answer is checked as a live
        # server's would be (types, token counts in bounds, cached ≤ input).
        generation = checked_generation(
            "replay",
            text=_typed(text, str),
            input_tokens=_typed(answer["input_tokens"], int),
            cached_tokens=_typed(answer.get("cached_tokens", 0), int),
            output_tokens=_typed(answer["output_tokens"], int),
            finish_reason=_typed(answer["finish_reason"], str),
            refusal=_typed(answer["refusal"], str, optional=True),
        )
        generation.probabilities = checked_probabilities(answer.get("probabilities"))
        request = _typed(cassette["request"], dict)
    except MalformedAnswerError as exc:
        problem = exc.message.removeprefix("replay: malformed answer: ")
        raise ConfigError(f"not a panel cassette ({problem})", path=str(path)) from None
    except (ParseError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"not a panel cassette ({_problem(exc)})", path=str(path)) from None
    return request, generation


def _typed(value: Any, kind: type, *, optional: bool = False) -> Any:
    """Return value if it is of kind (None too when optional), else raise TypeError."""
    if (value is None and optional) or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")


def _problem(exc: Exception) -> str:
    """Return what is wrong with a cassette in a few words: "missing finish_reason"."""
    return f"missing {exc.args[0]}" if isinstance(exc, KeyError) else str(exc)
