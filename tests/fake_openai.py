"""A loopback OpenAI-compatible server for tests and the benchmark: fixed latency, scripted faults.

It answers POST /v1/chat/completions with a valid review built from the request's JSON schema
(json_schema or json_object mode), after `latency` seconds. `fault` may turn any request into an
HTTP error (e.g. 429 with Retry-After) or a dropped connection. It counts what it served.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Fault:
    """What to do instead of answering: an HTTP status (with headers), or drop the connection."""

    status: int = 500
    headers: dict[str, str] | None = None
    drop: bool = False
    delay: float = 0.0


FaultRule = Callable[[int, dict[str, Any]], Fault | None]
"""Given the request number (1-based) and body, return a Fault or None to answer normally."""


def answer_for(schema: dict[str, Any], seed_text: str) -> dict[str, Any]:
    """Return a valid answer for a review schema, varied but deterministic per request text."""
    digest = int(hashlib.sha256(seed_text.encode()).hexdigest(), 16)
    score = 35 + digest % 60
    answer: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        if name == "score":
            answer[name] = score
        elif name == "verdict":
            answer[name] = "ship" if score >= 60 else "skip"
        elif prop.get("type") == "array":
            answer[name] = ["Competitor One", "Competitor Two"]
        else:
            answer[name] = (
                f"A specific, considered answer for {name}, written as a full sentence of prose."
            )
    return answer


def completion(body: dict[str, Any], content: str, finish_reason: str = "stop") -> dict[str, Any]:
    prompt_tokens = len(json.dumps(body.get("messages", []))) // 4
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(content) // 4,
            "total_tokens": prompt_tokens + len(content) // 4,
        },
    }


def review_completion(body: dict[str, Any]) -> dict[str, Any]:
    """Return a chat completion whose content is a valid review for the request."""
    fmt = body.get("response_format") or {}
    schema = fmt.get("json_schema", {}).get("schema") or fmt.get("schema")
    messages = body.get("messages", [])
    user = next((m["content"] for m in messages if m["role"] == "user"), "")
    seed = user.split(">>>", 1)[-1] + str(len(messages))  # the card, not the per-call nonce
    return completion(body, json.dumps(answer_for(schema, seed)))


class FakeOpenAI:
    """Run with `with FakeOpenAI(latency=0.3) as server:`; point clients at server.base_url."""

    def __init__(self, latency: float = 0.0, fault: FaultRule | None = None) -> None:
        self.latency = latency
        self.fault = fault
        self.requests = 0
        self.answered = 0
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def handle(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Return (status, JSON) for a request other than chat completions (subclasses add routes)."""
        return 404, {"error": {"message": f"no route {path}"}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(
                self, status: int, payload: Any, headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {"_raw": raw}
                with server._lock:
                    server.requests += 1
                    number = server.requests
                    server.bodies.append(body)
                    server.headers.append(dict(self.headers.items()))
                if not self.path.endswith("/chat/completions"):
                    status, payload = server.handle(self.path, body)
                    self._send(status, payload)
                    return
                fault = server.fault(number, body) if server.fault else None
                if fault is not None:
                    time.sleep(fault.delay)
                    if fault.drop:
                        self.close_connection = True
                        self.connection.close()
                        return
                    self._send(
                        fault.status,
                        {"error": {"message": f"fake fault {fault.status}", "type": "fake"}},
                        fault.headers,
                    )
                    return
                time.sleep(server.latency)
                with server._lock:
                    server.answered += 1
                self._send(200, review_completion(body))

            def do_GET(self) -> None:
                status, payload = server.handle(self.path, {})
                self._send(status, payload)

        return Handler
