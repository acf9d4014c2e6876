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

from panel.errors import scrub
from panel.files import write_atomic
from panel.providers.base import Generation, Request

NONCE_PLACEHOLDER = "NONCE"
FORMAT = "panel.cassette/1"


def normalise(request: Request) -> dict[str, Any]:
    """Return what was asked, stable across calls (the nonce replaced) and free of secrets."""
    messages = [
        {
            **m,
            "content": m["content"].replace(request.nonce, NONCE_PLACEHOLDER)
            if request.nonce
            else m["content"],
        }
        for m in request.messages
    ]
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
        },
    }
    write_atomic(path, scrub(json.dumps(cassette, indent=2, ensure_ascii=False)) + "\n")
    return path


def _answer_body(text: str) -> dict[str, Any]:
    """Return {"json": object} when text is exactly that object's JSON (readable diffs), else {"text": text}."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return {"text": text}
    if isinstance(parsed, dict) and json.dumps(parsed, ensure_ascii=False) == text:
        return {"json": parsed}
    return {"text": text}


def read_answer(path: Path) -> tuple[dict[str, Any], Generation]:
    """Return the recorded request and answer of a cassette file."""
    cassette = json.loads(path.read_text(encoding="utf-8"))
    answer = cassette["answer"]
    generation = Generation(
        text=json.dumps(answer["json"], ensure_ascii=False) if "json" in answer else answer["text"],
        input_tokens=answer["input_tokens"],
        cached_tokens=answer.get("cached_tokens", 0),
        output_tokens=answer["output_tokens"],
        finish_reason=answer["finish_reason"],
        refusal=answer["refusal"],
    )
    return cassette["request"], generation
