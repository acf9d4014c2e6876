"""A loopback Anthropic Message Batches server for tests: batches that end after a few polls.

POST /v1/messages/batches takes the requests; GET /v1/messages/batches/{id} reports the batch,
which ends at its `polls`-th retrieval; GET its results_url streams one JSONL line per request:
a forced `submit_review` tool call with a valid review, or `error(params)`'s message as an errored
result, or, past `expire_after` requests, an expired one. A live POST /v1/messages is counted and
refused, so a test can prove that no review went out live (with live=True it is answered).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .http import LoopbackServer, Reply, Seen
from .openai import answer_for, prompt_text


def system_text(params: dict[str, Any]) -> str:
    """Return the system prompt of Messages params (a string, or a list of text blocks)."""
    system = params.get("system") or ""
    return system if isinstance(system, str) else "".join(b.get("text", "") for b in system)


def _stamp(offset: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset)).isoformat()


class FakeAnthropicBatches(LoopbackServer):
    """Run with `with FakeAnthropicBatches() as server:`; point clients at server.url."""

    def __init__(
        self,
        *,
        polls: int = 2,
        error: Callable[[dict[str, Any]], str | None] | None = None,
        expire_after: int | None = None,
        live: bool = False,
    ) -> None:
        self.polls = polls
        self.live = live
        """Answer live POST /v1/messages calls too (as a batch answers them), instead of refusing."""
        self.error = error
        self.expire_after = expire_after
        self.batches: dict[str, dict[str, Any]] = {}
        self.requests: dict[str, list[dict[str, Any]]] = {}
        """The requests of each batch, by batch id."""
        self.live_calls = 0
        self.headers: list[dict[str, str]] = []
        super().__init__()

    def respond(self, seen: Seen) -> Reply:
        with self._lock:
            self.headers.append(seen.headers)
        return Reply(*self.route(seen.method, seen.path, seen.body))

    def route(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """Return (status, JSON or raw bytes) for one request."""
        parts = path.split("?")[0].strip("/").split("/")  # v1 messages batches {id} [results]
        with self._lock:
            if method == "POST" and parts == ["v1", "messages"]:
                self.live_calls += 1
                if self.live:
                    return 200, self._result(self.live_calls, {"params": body})["message"]
                return 400, {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "no live calls here"},
                }
            if method == "POST" and parts == ["v1", "messages", "batches"]:
                return 200, self._create(body["requests"])
            if parts[:3] == ["v1", "messages", "batches"] and parts[3] in self.batches:
                if len(parts) == 4:
                    return 200, self._retrieve(parts[3])
                if parts[4:] == ["results"] and self.batches[parts[3]]["results_url"]:
                    return 200, self._results(parts[3])
        return 404, {"type": "error", "error": {"type": "not_found_error", "message": path}}

    def _create(self, requests: list[dict[str, Any]]) -> dict[str, Any]:
        batch_id = f"msgbatch_{len(self.batches) + 1:04d}"
        self.requests[batch_id] = requests
        self.batches[batch_id] = {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "in_progress",
            "request_counts": {
                "processing": len(requests),
                "succeeded": 0,
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": _stamp(),
            "expires_at": _stamp(86400),
            "ended_at": None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": None,
            "_polls": 0,
        }
        return self._public(batch_id)

    def _retrieve(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        batch["_polls"] += 1
        if batch["processing_status"] == "in_progress" and batch["_polls"] >= self.polls:
            kinds = [self._result(n, r)["type"] for n, r in enumerate(self.requests[batch_id])]
            batch["processing_status"] = "ended"
            batch["ended_at"] = _stamp()
            batch["results_url"] = f"{self.url}/v1/messages/batches/{batch_id}/results"
            batch["request_counts"] = {
                "processing": 0,
                **{k: kinds.count(k) for k in ("succeeded", "errored", "expired")},
                "canceled": 0,
            }
        return self._public(batch_id)

    def _results(self, batch_id: str) -> bytes:
        lines = [
            {"custom_id": request["custom_id"], "result": self._result(n, request)}
            for n, request in enumerate(self.requests[batch_id])
        ]
        return "".join(json.dumps(line) + "\n" for line in lines).encode()

    def _result(self, n: int, request: dict[str, Any]) -> dict[str, Any]:
        params = request["params"]
        if self.expire_after is not None and n >= self.expire_after:
            return {"type": "expired"}
        if self.error and (message := self.error(params)) is not None:
            return {
                "type": "errored",
                "error": {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": message},
                },
            }
        tool = params["tools"][0]
        seed = prompt_text(params["messages"], system_text(params))
        return {
            "type": "succeeded",
            "message": {
                "id": f"msg_{n}",
                "type": "message",
                "role": "assistant",
                "model": params["model"],
                "content": [
                    {
                        "type": "tool_use",
                        "id": f"toolu_{n}",
                        "name": tool["name"],
                        "input": answer_for(tool["input_schema"], seed),
                    }
                ],
                "stop_reason": "tool_use",
                "stop_sequence": None,
                "usage": {"input_tokens": 300, "output_tokens": 100},
            },
        }

    def _public(self, batch_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.batches[batch_id].items() if not k.startswith("_")}


class LyingAnthropic(FakeAnthropicBatches):
    """An Anthropic-compatible endpoint that answers live calls with a usage of its choosing."""

    def __init__(self, usage: dict[str, Any]) -> None:
        super().__init__(live=True)
        self.usage = usage

    def _result(self, n: int, request: dict[str, Any]) -> dict[str, Any]:
        result = super()._result(n, request)
        if "message" in result:
            result["message"]["usage"] = dict(self.usage)
        return result
