"""A hostile OpenAI-compatible server: it answers what a broken or compromised model server
might (issue 22), and a valid review whenever its `mischief` says nothing.

The wire-level tricks are Replies of the shared loopback server (http.py): a gzip bomb (a few
hundred KiB on the wire that inflate to gigabytes), a body trickled one byte at a time, raw
JSON that no `json.dumps` would write (1e400, nesting 200,000 deep), and chat completions with
fields of the wrong type or absurd token counts.
"""

from __future__ import annotations

import functools
import json
import threading
import zlib
from collections.abc import Callable
from typing import Any

from .http import LoopbackServer, Reply, Seen
from .openai import completion, review_completion

Mischief = Callable[[int, Seen], "Reply | None"]
"""Given the chat request's number (1-based) and the request, a Reply, or None for a review."""


class HostileServer(LoopbackServer):
    """Run with `with HostileServer(mischief) as server:`; point clients at server.base_url."""

    def __init__(self, mischief: Mischief | None = None) -> None:
        super().__init__()
        self.mischief = mischief
        self.requests = 0
        self.answered = 0
        self._count = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def respond(self, seen: Seen) -> Reply:
        with self._count:
            self.requests += 1
            number = self.requests
        reply = self.mischief(number, seen) if self.mischief else None
        if reply is not None:
            return reply
        with self._count:
            self.answered += 1
        return Reply(200, review_completion(seen.body))


@functools.cache
def gzip_bomb(wire_bytes: int) -> bytes:
    """Return a gzip stream of zeros about wire_bytes long (deflate's best ratio is about
    1,030 to 1: 0.5 MiB on the wire is about 0.5 GiB inflated)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(16 * 2**20)
    parts: list[bytes] = []
    size = 0
    while size < wire_bytes:
        part = packer.compress(zeros)
        parts.append(part)
        size += len(part)
    parts.append(packer.flush())
    return b"".join(parts)


def bomb(wire_bytes: int) -> Reply:
    """Return a 200 whose gzip body inflates about a thousandfold."""
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    return Reply(200, gzip_bomb(wire_bytes), headers)


def trickle(body: dict[str, Any], seconds_per_byte: float = 0.5) -> Reply:
    """Return a 200 whose JSON body arrives one byte every seconds_per_byte."""
    data = json.dumps(body).encode()
    return Reply(200, data, {"content-type": "application/json"}, trickle=seconds_per_byte)


def raw_json(text: str, status: int = 200) -> Reply:
    """Return text as a JSON body, byte for byte (JSON no serializer would write)."""
    return Reply(status, text.encode(), {"content-type": "application/json"})


def deep_nesting(depth: int = 200_000) -> Reply:
    """Return a chat completion whose first choice is nested `depth` arrays deep."""
    return raw_json(
        '{"id": "x", "object": "chat.completion", "choices": ' + "[" * depth + "]" * depth + "}"
    )


def malformed_completions(body: dict[str, Any]) -> dict[str, dict[str, Any] | str]:
    """Return, by name, chat completions for body whose fields are of the wrong type or out of
    bounds (as a dict, or raw JSON text where JSON's own serializer cannot say it)."""
    good = review_completion(body)
    content = good["choices"][0]["message"]["content"]

    def changed(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
        copy: dict[str, Any] = json.loads(json.dumps(good))
        target: Any = copy
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return copy

    usage = ("usage",)
    return {
        "content a number": changed(("choices", 0, "message", "content"), 42),
        "content a list": changed(("choices", 0, "message", "content"), [content]),
        "message a string": changed(("choices", 0, "message"), content),
        "usage a list": changed(usage, [1, 2, 3]),
        "usage text": changed(usage, "lots"),
        "cached_tokens text": changed((*usage, "prompt_tokens_details"), {"cached_tokens": "x"}),
        "prompt_tokens 10^30": changed((*usage, "prompt_tokens"), 10**30),
        "prompt_tokens negative": changed((*usage, "prompt_tokens"), -10_000_000),
        "completion_tokens 2.5": changed((*usage, "completion_tokens"), 2.5),
        "cached over input": changed((*usage, "prompt_tokens_details"), {"cached_tokens": 10**6}),
        "finish_reason a number": changed(("choices", 0, "finish_reason"), 7),
        "prompt_tokens 1e400": json.dumps(good).replace(
            f'"prompt_tokens": {good["usage"]["prompt_tokens"]}', '"prompt_tokens": 1e400'
        ),
        "not a completion": completion(body, None) | {"choices": "none"},
    }


MALFORMED = tuple(
    malformed_completions({"messages": [], "response_format": {"schema": {"properties": {}}}})
)
"""The names of malformed_completions' answers."""
