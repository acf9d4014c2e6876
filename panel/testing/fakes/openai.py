"""A loopback OpenAI-compatible server for tests and the benchmark: fixed latency, scripted faults.

It answers POST /v1/chat/completions with a valid review built from the request's JSON schema
(json_schema or json_object mode), after `latency` seconds. `fault` may turn any request into an
HTTP error (e.g. 429 with Retry-After), a hang or a reset connection; `content` may replace the
answer (its text, or a whole completion). It counts what it served.
FakeOpenAIBatches adds the Files and Batch APIs on top.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .http import LoopbackServer, Reply, Seen


@dataclass
class Fault:
    """What to do instead of answering, after `delay` seconds: an HTTP status (with headers), or
    reset the connection (drop)."""

    status: int = 500
    headers: dict[str, str] | None = None
    drop: bool = False
    delay: float = 0.0
    message: str = ""
    """The error message the server sends (servers quote keys in theirs); default "fake fault N"."""


FaultRule = Callable[[int, dict[str, Any]], Fault | None]
"""Given the request number (1-based) and body, return a Fault or None to answer normally."""

ContentRule = Callable[[dict[str, Any]], "str | dict[str, Any] | None"]
"""Given a request body, return the answer's text, a whole completion, or None for a valid review."""


def answer_for(
    schema: dict[str, Any], seed_text: str = "", score: int | None = None
) -> dict[str, Any]:
    """Return a valid answer for a review schema (or a pair judgment's: its first choice).

    The score is `score`, or else varied but deterministic per seed_text; the verdict follows it.
    """
    if score is None:
        score = 35 + int(hashlib.sha256(seed_text.encode()).hexdigest(), 16) % 60
    answer: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        if name == "score":
            answer[name] = score
        elif name == "verdict":
            answer[name] = "ship" if score >= 60 else "skip"
        elif "enum" in prop:
            answer[name] = prop["enum"][0]
        elif prop.get("type") == "array":
            answer[name] = ["Moondream", "PaliGemma"]
        else:
            answer[name] = (
                f"A considered {name} that weighs Moondream, PaliGemma and Apple's stack."
            )
    return answer


def completion(
    body: dict[str, Any],
    content: str | None,
    finish_reason: str = "stop",
    refusal: str | None = None,
) -> dict[str, Any]:
    prompt_tokens = len(json.dumps(body.get("messages", []))) // 4
    content = content if refusal is None else None
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal}
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(content or "") // 4,
            "total_tokens": prompt_tokens + len(content or "") // 4,
        },
    }


_NONCE = re.compile(r"TOOL_CARD_[0-9a-f]+")


def prompt_text(messages: list[dict[str, Any]], system: str = "") -> str:
    """Return the whole prompt of a request as one text (card, persona and any re-ask), with the
    fence's random nonce removed: what a fake answers from, and what tests look into."""
    text = "\n".join([system, *(str(m.get("content", "")) for m in messages)])
    return _NONCE.sub("TOOL_CARD", text)


def review_completion(body: dict[str, Any]) -> dict[str, Any]:
    """Return a chat completion whose content is a valid review for the request: its score
    varies with the card and the persona, the same for the same question."""
    fmt = body.get("response_format") or {}
    schema = fmt.get("json_schema", {}).get("schema") or fmt.get("schema")
    seed = prompt_text(body.get("messages", []))
    return completion(body, json.dumps(answer_for(schema or {}, seed)))


CACHE_WINDOW = 64
"""How many earlier requests the fake prompt cache compares a request with."""


class FakeOpenAI(LoopbackServer):
    """Run with `with FakeOpenAI(latency=0.3) as server:`; point clients at server.base_url."""

    def __init__(
        self,
        latency: float = 0.0,
        fault: FaultRule | None = None,
        content: ContentRule | None = None,
    ) -> None:
        super().__init__()
        self.latency = latency
        self.fault = fault
        self.content = content
        self.requests = 0
        self.answered = 0
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        """Return the chat completion that answers body: a valid review unless `content` says."""
        custom = self.content(body) if self.content else None
        if custom is None:
            return review_completion(body)
        return custom if isinstance(custom, dict) else completion(body, custom)

    def handle(self, seen: Seen) -> tuple[int, Any]:
        """Return (status, JSON or raw bytes) for other requests than chat completions.

        Subclasses add routes.
        """
        return 404, {"error": {"message": f"no route {seen.path}"}}

    def respond(self, seen: Seen) -> Reply:
        if seen.method == "POST":
            with self._lock:
                self.requests += 1
                number = self.requests
                self.bodies.append(seen.body)
                self.headers.append(seen.headers)
        if not seen.path.endswith("/chat/completions"):
            return Reply(*self.handle(seen))
        fault = self.fault(number, seen.body) if self.fault else None
        if fault is not None:
            message = fault.message or f"fake fault {fault.status}"
            error = {"error": {"message": message, "type": "fake"}}
            return Reply(fault.status, error, fault.headers or {}, fault.delay, fault.drop)
        time.sleep(self.latency)
        answer = self.reply(seen.body)
        with self._lock:
            self.answered += 1
            if isinstance(answer.get("usage"), dict):
                answer["usage"]["prompt_tokens_details"] = {
                    "cached_tokens": self._cached(seen.body)
                }
        return Reply(200, answer)

    def _cached(self, body: dict[str, Any]) -> int:
        """Return the prompt tokens a prefix cache would serve: the longest prefix this request's
        messages share with an earlier request's, at four characters a token."""
        text = json.dumps(body.get("messages", []))
        # The last CACHE_WINDOW requests only (the caller holds the lock), as a server's prompt
        # cache keeps the recent: comparing with every request ever seen made the server slower
        # with each one (the queue benchmark sends thousands through one server).
        recent = self.bodies[-CACHE_WINDOW - 1 :]
        earlier = [json.dumps(b.get("messages", [])) for b in recent if b is not body]
        return max((_shared_prefix(text, e) for e in earlier), default=0) // 4


class FakeOpenAIBatches(FakeOpenAI):
    """FakeOpenAI plus the Files and Batch APIs: a batch ends at its `polls`-th retrieval.

    Ending, it answers each JSONL line as chat completions would, except that `error(body)` may
    give a line an HTTP status (the line goes to the error file), `content(body)` may replace the
    answer as in live calls, and `expire_after=k` expires the batch with only its first k lines answered
    (the rest are in neither file, as a request the batch never reached).
    """

    def __init__(
        self,
        *,
        polls: int = 2,
        error: Callable[[dict[str, Any]], int | None] | None = None,
        content: ContentRule | None = None,
        expire_after: int | None = None,
    ) -> None:
        super().__init__(content=content)
        self.polls = polls
        self.error = error
        self.expire_after = expire_after
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []
        """Ids of the batches created, in order."""
        self.paths: list[str] = []
        """Every path served by this class, e.g. "POST /v1/batches"."""

    def input_lines(self, batch_id: str) -> list[dict[str, Any]]:
        """Return the request lines of a batch's input file."""
        data = self.files[self.batches[batch_id]["input_file_id"]]
        return [json.loads(line) for line in data.decode().splitlines() if line.strip()]

    def handle(self, seen: Seen) -> tuple[int, Any]:
        path, body = seen.path, seen.body
        route = path.split("?")[0].removeprefix("/v1")
        with self._lock:
            self.paths.append(f"{seen.method} {path}")
            if route == "/files":
                return 200, self._upload(body["_raw"])
            if route == "/batches":
                return 200, self._create(body)
            parts = route.strip("/").split("/")
            if parts[0] == "batches" and len(parts) == 2 and parts[1] in self.batches:
                return 200, self._retrieve(parts[1])
            if parts[0] == "files" and parts[-1] == "content" and parts[1] in self.files:
                return 200, self.files[parts[1]]
        return super().handle(seen)

    def _upload(self, raw: bytes) -> dict[str, Any]:
        """Keep the `file` part of a multipart upload; return its file object."""
        boundary = raw.split(b"\r\n", 1)[0]
        part = next(p for p in raw.split(boundary) if b'name="file"' in p)
        data = part.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n")
        return self._file(data, "panel-batch.jsonl", "batch")

    def _file(self, data: bytes, name: str, purpose: str) -> dict[str, Any]:
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = data
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": name,
            "purpose": purpose,
            "status": "processed",
        }

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        batch_id = f"batch_{len(self.batches) + 1}"
        self.created.append(batch_id)
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body["endpoint"],
            "input_file_id": body["input_file_id"],
            "completion_window": body["completion_window"],
            "created_at": int(time.time()),
            "status": "validating",
            "polls": 0,
        }
        return self._public(batch_id)

    def _retrieve(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        batch["polls"] += 1
        if batch["status"] in ("validating", "in_progress"):
            batch["status"] = "in_progress"
            if batch["polls"] >= self.polls:
                self._finish(batch)
        return self._public(batch_id)

    def _finish(self, batch: dict[str, Any]) -> None:
        """Answer the batch's lines into an output and an error file, and end it."""
        lines = self.input_lines(batch["id"])
        answered = lines if self.expire_after is None else lines[: self.expire_after]
        output, errors = [], []
        for n, line in enumerate(answered):
            body = line["body"]
            status = self.error(body) if self.error else None
            if status is not None:
                payload: dict[str, Any] = {"error": {"message": f"fake batch error {status}"}}
                errors.append(_result_line(n, line["custom_id"], status, payload))
                continue
            output.append(_result_line(n, line["custom_id"], 200, self.reply(body)))
        for name, found in (("output_file_id", output), ("error_file_id", errors)):
            if found:
                data = "".join(json.dumps(r) + "\n" for r in found).encode()
                batch[name] = self._file(data, f"{batch['id']}_{name}.jsonl", "batch_output")["id"]
        batch["status"] = "completed" if self.expire_after is None else "expired"
        batch["request_counts"] = {
            "total": len(lines),
            "completed": len(output),
            "failed": len(lines) - len(output),
        }

    def _public(self, batch_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.batches[batch_id].items() if k != "polls"}


def _result_line(n: int, custom_id: str, status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"batch_req_{n}",
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": f"req_{n}", "body": body},
        "error": None,
    }


def _shared_prefix(a: str, b: str) -> int:
    """Return how many characters two strings share from their start (slices compared in C)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low
