"""OpenAI, and every OpenAI-compatible server (vLLM, Ollama, llama.cpp) through a base URL.

Structured output has two modes, because servers differ: `json_schema` (OpenAI, vLLM, Ollama:
strict schema) and `json_object` with the schema alongside (llama-cpp-python's server, which
answers HTTP 500 to json_schema). The SDK's own retries are off: panel.review retries.
The Batch API path (one JSONL file of requests) sends the very body a live call sends.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator
from typing import Any, Final
from urllib.parse import urlsplit

import openai
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.completion_usage import PromptTokensDetails
from pydantic import ValidationError

from panel.config import Settings
from panel.errors import ProviderError, TransientProviderError
from panel.providers.base import (
    BatchResults,
    BatchStatus,
    Generation,
    Provider,
    Request,
    checked_generation,
    credentials,
    endpoint_of,
    error_detail,
    is_transient_status,
    malformed,
    price,
    prices_of,
    retry_after_seconds,
    token_count,
)
from panel.providers.decisions import Alternatives, read_probabilities
from panel.providers.http import capped_client

BATCH_ENDPOINT: Final = "/v1/chat/completions"
TOP_LOGPROBS: Final = 20
"""Alternatives asked for each token with --logprobs (OpenAI's most)."""
BATCH_ENDED = ("completed", "failed", "expired", "cancelled")


class OpenAIProvider(Provider):
    name = "openai"
    default_model = "gpt-4.1-mini"
    supports_batch = True

    def __init__(self, settings: Settings) -> None:
        api_key, base_url = credentials(
            settings, "OPENAI", " (for a local OpenAI-compatible server, pass --base-url)"
        )
        self.client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=settings.timeout,
            http_client=capped_client(self.name, settings.max_response_bytes, settings.timeout),
        )
        self.endpoint = endpoint_of(self.client.base_url)
        # OpenAI itself, whether reached by default or through an explicit base URL.
        self.official = base_url is None or urlsplit(base_url).hostname == "api.openai.com"
        self.mode = settings.structured_output
        self.logprobs = settings.logprobs
        self.model = settings.model or self.default_model

    def cost_usd(
        self, model: str, input_tokens: int, output_tokens: int, cached_tokens: int = 0
    ) -> float | None:
        # A compatible server may answer to an OpenAI model name; OpenAI's prices are not its
        # (the user's own prices file is: its [openai] entries price any endpoint).
        table = {**prices_of(self.name), **self.user_prices} if self.official else self.user_prices
        return price(table, model, input_tokens, output_tokens, cached_tokens)

    def priced_as(self, model: str) -> str:
        where = "" if self.official else " on a compatible server (not api.openai.com)"
        return f"{self.name}:{model}{where}"

    def _response_format(self, request: Request) -> dict[str, Any]:
        if self.mode == "json_object":
            return {"type": "json_object", "schema": request.schema}
        return {
            "type": "json_schema",
            "json_schema": {"name": request.schema_name, "schema": request.schema, "strict": True},
        }

    def request_body(self, request: Request) -> dict[str, Any]:
        """Return the chat completions body for request: what a live call and a batch line send."""
        # OpenAI's newer models take max_completion_tokens; compatible servers know max_tokens.
        limit = "max_completion_tokens" if self.official else "max_tokens"
        return {
            "model": request.model,
            "messages": request.messages,
            "response_format": self._response_format(request),
            "temperature": request.temperature,
            "seed": request.seed,
            limit: request.max_tokens,
        } | ({"logprobs": True, "top_logprobs": TOP_LOGPROBS} if self.logprobs else {})

    async def generate(self, request: Request) -> Generation:
        async with self._errors_mapped():
            # The body is already plain JSON: post it as is, skipping the SDK's per-call
            # transformation of typed parameters (a few ms each, the bulk of a batch's CPU).
            response = await self.client.post(
                "/chat/completions", body=self.request_body(request), cast_to=ChatCompletion
            )
        generation = self.generation(response)
        if self.logprobs:
            generation.probabilities = read_probabilities(
                generation.text,
                alternatives_of(self._first_choice(response), generation.text),
                request.schema,
            )
        return generation

    def generation(self, response: Any) -> Generation:
        """Return the Generation in a chat completion (live, or parsed from a batch line).

        The SDK builds its objects without checking them, so every field read here is checked
        (checked_generation): a wrong type or an absurd token count is a MalformedAnswerError.
        """
        choice = self._first_choice(response)
        usage = response.usage
        if usage is not None and not isinstance(usage, CompletionUsage):
            raise malformed(self.name, f"usage must be an object, not {type(usage).__name__}")
        finish = choice.finish_reason
        return checked_generation(
            self.name,
            text=choice.message.content,
            input_tokens=getattr(usage, "prompt_tokens", 0),
            output_tokens=getattr(usage, "completion_tokens", 0),
            cached_tokens=self._cached_tokens(usage),
            # A filtered answer is a refusal to be recorded, not a malformed one to re-ask.
            finish_reason="refusal" if finish == "content_filter" else finish,
            refusal=getattr(choice.message, "refusal", None),
        )

    def _cached_tokens(self, usage: Any) -> int:
        """Return the prompt tokens OpenAI served from its automatic prompt cache (0 if not said)."""
        details = getattr(usage, "prompt_tokens_details", None)
        if details is not None and not isinstance(details, PromptTokensDetails):
            raise malformed(self.name, "usage.prompt_tokens_details must be an object")
        return token_count(self.name, "cached tokens", getattr(details, "cached_tokens", None))

    # --- the Batch API: a JSONL file of chat completion requests, results as JSONL files -------

    async def batch_create(self, items: list[tuple[str, Request]]) -> str:
        lines = [
            json.dumps(
                {
                    "custom_id": custom_id,
                    "method": "POST",
                    "url": BATCH_ENDPOINT,
                    "body": self.request_body(request),
                },
                ensure_ascii=False,
            )
            for custom_id, request in items
        ]
        data = ("\n".join(lines) + "\n").encode()
        async with self._errors_mapped():
            upload = await self.client.files.create(
                file=("panel-batch.jsonl", data, "application/jsonl"), purpose="batch"
            )
            batch = await self.client.batches.create(
                input_file_id=upload.id, endpoint=BATCH_ENDPOINT, completion_window="24h"
            )
        return batch.id

    async def batch_check(self, batch_id: str) -> BatchStatus:
        async with self._errors_mapped():
            batch = await self.client.batches.retrieve(batch_id)
        counts = batch.request_counts
        errors = batch.errors.data if batch.errors and batch.errors.data else []
        return BatchStatus(
            state=batch.status,
            ended=batch.status in BATCH_ENDED,
            done=(counts.completed + counts.failed) if counts else 0,
            total=counts.total if counts else 0,
            error="; ".join(e.message or e.code or "unknown" for e in errors) or None,
        )

    async def batch_results(self, batch_id: str) -> BatchResults:
        results: BatchResults = {}
        async with self._errors_mapped():
            batch = await self.client.batches.retrieve(batch_id)
            for file_id in (batch.output_file_id, batch.error_file_id):
                if file_id:
                    content = await self.client.files.content(file_id)
                    for line in content.text.splitlines():
                        if (parsed := self._batch_line(line)) is not None:
                            results[parsed[0]] = parsed[1]
        return results

    def _batch_line(self, line: str) -> tuple[str, Generation | ProviderError] | None:
        """Return the custom_id of an output or error file line and its answer or error."""
        try:
            record = json.loads(line)
            custom_id = str(record["custom_id"])
        except (ValueError, TypeError, KeyError):
            return None  # not a result line: its request counts as unanswered
        if (problem := _batch_error(record)) is not None:
            return custom_id, ProviderError(f"openai: batch request {problem}", provider=self.name)
        try:
            completion = ChatCompletion.model_validate(record["response"]["body"])
        except ValidationError:
            return custom_id, ProviderError(
                "openai: batch answer is not a chat completion", provider=self.name
            )
        try:
            return custom_id, self.generation(completion)
        except ProviderError as exc:
            return custom_id, exc

    @contextlib.asynccontextmanager
    async def _errors_mapped(self) -> AsyncIterator[None]:
        """Turn the SDK's failures inside the block into panel errors."""
        try:
            yield
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except openai.APIConnectionError as exc:  # includes timeouts
            if isinstance(exc.__cause__, ProviderError):  # the capped client's cap or deadline
                raise exc.__cause__ from None
            raise TransientProviderError(
                f"openai: {exc.__class__.__name__}: {exc}", provider=self.name
            ) from None
        except RecursionError:  # the SDK parses the body: JSON nested beyond Python's stack
            raise malformed(self.name, "JSON nested too deeply") from None

    def _status_error(self, exc: openai.APIStatusError) -> ProviderError:
        """Return the panel error for an HTTP error answer; transient ones carry Retry-After."""
        detail = error_detail(exc.body, str(exc.message))
        message = f"openai: HTTP {exc.status_code}: {detail[:300]}"
        if not self.official and self.mode == "json_schema" and "response_format" in detail:
            # llama-cpp-python's server rejects json_schema with a 500 that no retry will fix.
            return ProviderError(
                f"{message} (this server may not support json_schema: "
                "try --structured-output json_object)",
                provider=self.name,
            )
        if is_transient_status(exc.status_code):
            return TransientProviderError(
                message, provider=self.name, retry_after=retry_after_seconds(exc.response.headers)
            )
        return ProviderError(message, provider=self.name)

    def _first_choice(self, response: Any) -> Choice:
        """Return the first choice of a chat completion, or raise if the body is not one."""
        choices = getattr(response, "choices", None)
        if not isinstance(response, ChatCompletion) or not isinstance(choices, list):
            raise ProviderError(
                f"openai: {self.client.base_url} did not answer with a chat completion "
                "(is it an OpenAI-compatible /v1 endpoint?)",
                provider=self.name,
            )
        if not choices:
            raise TransientProviderError("openai: response had no choices", provider=self.name)
        choice: Choice = choices[0]
        if not isinstance(choice, Choice) or not isinstance(
            getattr(choice, "message", None), ChatCompletionMessage
        ):
            raise malformed(self.name, "the first choice has no message object")
        return choice

    async def aclose(self) -> None:
        await self.client.close()


def _batch_error(record: dict[str, Any]) -> str | None:
    """Return what went wrong with one batch request (error object or HTTP status), else None."""
    response = record.get("response") or {}
    if error := record.get("error"):
        detail = f"{error.get('code') or 'error'}: {error.get('message') or ''}"
    elif (status := response.get("status_code")) != 200:
        body = response.get("body")
        inner = body.get("error", body) if isinstance(body, dict) else None
        message = inner.get("message") if isinstance(inner, dict) else None
        detail = f"HTTP {status}: {message or body}"
    else:
        return None
    return " ".join(detail.split())[:300]


def alternatives_of(choice: Choice, text: str) -> Alternatives:
    """Return the alternatives a choice's logprobs report, by where each token starts in text.

    A server's logprobs are untrusted like the rest of its answer: any that do not add up to
    the text, or whose figures are not log-probabilities, are left unread (no probabilities)."""
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not isinstance(content, list):
        return []
    found: Alternatives = []
    at = 0
    try:
        for entry in content[: len(text) + 1]:
            token = entry.token
            if not isinstance(token, str) or not text.startswith(token, at):
                return []
            tops = [
                (str(top.token), math.exp(float(top.logprob)))
                for top in (entry.top_logprobs or [])[:TOP_LOGPROBS]
                if isinstance(top.token, str) and -1e4 < float(top.logprob) <= 0
            ]
            if tops:
                found.append((at, tops))
            at += len(token)
    except (AttributeError, TypeError, ValueError):
        return []
    return found


def create(settings: Settings) -> OpenAIProvider:
    return OpenAIProvider(settings)
