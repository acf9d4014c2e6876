"""Anthropic's Messages API through the official SDK, structured by a forced tool call.

The review schema becomes the input schema of one tool the model must call, which works on
every Claude model and every Messages-compatible endpoint (ANTHROPIC_BASE_URL or --base-url).
The SDK's own retries are off: panel.review retries. The current Messages API takes no
temperature, so none is sent. A Message Batch sends each request with the very params of a live
call, and its results are parsed by the same function.

The system prompt (the panel's rules and the card) carries cache_control, so re-asks and repeated
calls of one persona read it from Anthropic's prompt cache. The tool's schema differs by persona
and comes before the system prompt in Anthropic's cache order, so the four personas of a panel
do not share one cache entry; prompts shorter than the model's minimum (1,024 tokens on most
models) are not cached at all.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
from anthropic.types import Message as AnthropicMessage
from anthropic.types import Usage

from panel.config import Settings
from panel.errors import ProviderError, TransientProviderError
from panel.providers.base import (
    BatchResults,
    BatchStatus,
    Generation,
    Message,
    Provider,
    Request,
    checked_generation,
    credentials,
    endpoint_of,
    error_detail,
    is_transient_status,
    malformed,
    retry_after_seconds,
    token_count,
)
from panel.providers.http import capped_client

TOOL_NAME = "submit_review"


class AnthropicProvider(Provider):
    name = "anthropic"
    default_model = "claude-sonnet-4-6"
    supports_batch = True

    def __init__(self, settings: Settings) -> None:
        api_key, base_url = credentials(settings, "ANTHROPIC")
        self.client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=settings.timeout,
            http_client=capped_client(self.name, settings.max_response_bytes, settings.timeout),
        )
        self.endpoint = endpoint_of(self.client.base_url)
        self.model = settings.model or self.default_model

    def request_params(self, request: Request) -> dict[str, Any]:
        """Return the Messages params for request: what a live call and a batch request send."""
        system, messages = _split_system(request.messages)
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
            "tools": [
                {
                    "name": TOOL_NAME,
                    "description": "Submit your review of the tool.",
                    "input_schema": request.schema,
                }
            ],
            "tool_choice": {"type": "tool", "name": TOOL_NAME},
        }
        if system:  # omitted, never sent empty; marked as the end of the prefix to cache
            params["system"] = [
                {"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}
            ]
        return params

    async def generate(self, request: Request) -> Generation:
        async with self._errors_mapped():
            response = await self.client.messages.create(**self.request_params(request))
        if not isinstance(response, AnthropicMessage) or not isinstance(response.content, list):
            raise ProviderError(
                f"anthropic: {self.client.base_url} did not answer with a message "
                "(is it a Messages API endpoint?)",
                provider=self.name,
            )
        return _generation(response, self.name)

    # --- Message Batches: the same params per request, results streamed as JSONL ----------------

    async def batch_create(self, items: list[tuple[str, Request]]) -> str:
        requests = [
            {"custom_id": custom_id, "params": self.request_params(request)}
            for custom_id, request in items
        ]
        async with self._errors_mapped():
            batch = await self.client.messages.batches.create(
                requests=requests  # type: ignore[arg-type]  # params is the live call's dict
            )
        return batch.id

    async def batch_check(self, batch_id: str) -> BatchStatus:
        async with self._errors_mapped():
            batch = await self.client.messages.batches.retrieve(batch_id)
        counts = batch.request_counts
        finished = counts.succeeded + counts.errored + counts.canceled + counts.expired
        return BatchStatus(
            state=batch.processing_status,
            ended=batch.processing_status == "ended",
            done=finished,
            total=finished + counts.processing,
        )

    async def batch_results(self, batch_id: str) -> BatchResults:
        results: BatchResults = {}
        async with self._errors_mapped():
            async for line in await self.client.messages.batches.results(batch_id):
                result = line.result
                if result.type == "succeeded":
                    try:
                        results[line.custom_id] = _generation(result.message, self.name)
                    except ProviderError as exc:
                        results[line.custom_id] = exc
                elif result.type == "errored":
                    error = result.error.error
                    detail = " ".join(error.message.split())[:300]
                    results[line.custom_id] = ProviderError(
                        f"anthropic: batch request {error.type}: {detail}", provider=self.name
                    )
                else:  # expired or canceled before it ran
                    results[line.custom_id] = ProviderError(
                        f"anthropic: batch request {result.type} before it was processed",
                        provider=self.name,
                    )
        return results

    @contextlib.asynccontextmanager
    async def _errors_mapped(self) -> AsyncIterator[None]:
        """Turn the SDK's failures inside the block into panel errors."""
        try:
            yield
        except anthropic.APIStatusError as exc:
            message = f"anthropic: HTTP {exc.status_code}: {error_detail(exc.body, str(exc.message))[:300]}"
            if is_transient_status(exc.status_code):
                retry_after = retry_after_seconds(exc.response.headers)
                raise TransientProviderError(
                    message, provider=self.name, retry_after=retry_after
                ) from None
            raise ProviderError(message, provider=self.name) from None
        except anthropic.APIConnectionError as exc:  # includes timeouts
            if isinstance(exc.__cause__, ProviderError):  # the capped client's cap or deadline
                raise exc.__cause__ from None
            raise TransientProviderError(
                f"anthropic: {exc.__class__.__name__}: {exc}", provider=self.name
            ) from None
        except RecursionError:  # the SDK parses the body: JSON nested beyond Python's stack
            raise malformed(self.name, "JSON nested too deeply") from None

    async def aclose(self) -> None:
        await self.client.close()


def _generation(response: AnthropicMessage, provider: str) -> Generation:
    """Return the Generation in a Messages answer (live, or one result of a batch).

    The SDK builds its objects without checking them, so every field read here is checked
    (checked_generation): a wrong type or an absurd token count is a MalformedAnswerError.
    """
    text = _answer_text(response.content, provider)
    stop = response.stop_reason
    if not isinstance(stop, str | None):
        raise malformed(provider, f"stop_reason must be text, not {type(stop).__name__}")
    usage = response.usage  # compatible endpoints may leave it out
    if usage is not None and not isinstance(usage, Usage):
        raise malformed(provider, f"usage must be an object, not {type(usage).__name__}")
    counts = {
        name: token_count(provider, f"usage.{name}", getattr(usage, name, None))
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        )
    }
    read = counts["cache_read_input_tokens"]
    return checked_generation(
        provider,
        text=text,
        # Anthropic counts cache reads and writes apart from input_tokens: panel counts them all.
        input_tokens=counts["input_tokens"] + read + counts["cache_creation_input_tokens"],
        output_tokens=counts["output_tokens"],
        cached_tokens=read,
        finish_reason={"max_tokens": "length", "refusal": "refusal"}.get(stop or "stop", "stop"),
        refusal=text if stop == "refusal" else None,
    )


def _answer_text(content: Any, provider: str) -> str:
    """Return the answer in a message's content: the forced tool call's input as JSON, else
    whatever prose came back (validation will re-ask)."""
    if not isinstance(content, list):
        raise malformed(provider, f"content must be a list, not {type(content).__name__}")
    for block in content:
        if getattr(block, "type", None) == "tool_use" and getattr(block, "name", None) == TOOL_NAME:
            try:
                return json.dumps(block.input, ensure_ascii=False)
            except (RecursionError, ValueError, TypeError):
                raise malformed(
                    provider, "the tool call's input is no JSON panel can read"
                ) from None
    texts = [getattr(block, "text", "") for block in content]
    if not all(isinstance(t, str) for t in texts):
        raise malformed(provider, "a text block's text must be text")
    return "".join(texts)


def _split_system(messages: list[Message]) -> tuple[str, list[Message]]:
    """Return the system prompt and the user/assistant turns, as the Messages API wants them."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return system, [m for m in messages if m["role"] != "system"]


def create(settings: Settings) -> AnthropicProvider:
    return AnthropicProvider(settings)
