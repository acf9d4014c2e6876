"""Anthropic's Messages API through the official SDK, structured by a forced tool call.

The review schema becomes the input schema of one tool the model must call, which works on
every Claude model and every Messages-compatible endpoint (ANTHROPIC_BASE_URL or --base-url).
The SDK's own retries are off: panel.review retries. The current Messages API takes no
temperature, so none is sent.
"""

from __future__ import annotations

import json
import os

import anthropic
from anthropic.types import Message as AnthropicMessage

from panel.config import Settings
from panel.errors import ConfigError, ProviderError, TransientProviderError
from panel.providers.base import (
    Generation,
    Message,
    Provider,
    Request,
    is_transient_status,
    price,
    retry_after_seconds,
)

TOOL_NAME = "submit_review"

# US dollars per million (input, output) tokens, where known.
PRICES = {
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
}


class AnthropicProvider(Provider):
    name = "anthropic"
    default_model = "claude-sonnet-4-6"

    def __init__(self, settings: Settings) -> None:
        base_url = settings.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        api_key = os.environ.get("ANTHROPIC_API_KEY")
        if not api_key:
            if not base_url:
                raise ConfigError("ANTHROPIC_API_KEY is not set")
            api_key = "no-key"
        self.client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=settings.timeout
        )
        self.model = settings.model or self.default_model

    def cost_usd(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        return price(PRICES, model, input_tokens, output_tokens)

    async def generate(self, request: Request) -> Generation:
        system, messages = _split_system(request.messages)
        try:
            response = await self.client.messages.create(  # type: ignore[call-overload]
                model=request.model,
                max_tokens=request.max_tokens,
                system=system or anthropic.omit,  # omitted, never sent empty
                messages=messages,
                tools=[
                    {
                        "name": TOOL_NAME,
                        "description": "Submit your review of the tool.",
                        "input_schema": request.schema,
                    }
                ],
                tool_choice={"type": "tool", "name": TOOL_NAME},
            )
        except anthropic.APIStatusError as exc:
            message = f"anthropic: HTTP {exc.status_code}: {_detail(exc)[:300]}"
            if is_transient_status(exc.status_code):
                retry_after = retry_after_seconds(exc.response.headers)
                raise TransientProviderError(
                    message, provider=self.name, retry_after=retry_after
                ) from None
            raise ProviderError(message, provider=self.name) from None
        except anthropic.APIConnectionError as exc:  # includes timeouts
            raise TransientProviderError(
                f"anthropic: {exc.__class__.__name__}: {exc}", provider=self.name
            ) from None
        if not isinstance(response, AnthropicMessage) or not isinstance(response.content, list):
            raise ProviderError(
                f"anthropic: {self.client.base_url} did not answer with a message "
                "(is it a Messages API endpoint?)",
                provider=self.name,
            )
        for block in response.content:
            if block.type == "tool_use" and block.name == TOOL_NAME:
                text = json.dumps(block.input, ensure_ascii=False)
                break
        else:  # no tool call: keep whatever prose came back, validation will re-ask
            text = "".join(getattr(b, "text", "") for b in response.content)
        stop = response.stop_reason or "stop"
        usage = response.usage  # compatible endpoints may leave it out
        return Generation(
            text=text,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            finish_reason={"max_tokens": "length", "refusal": "refusal"}.get(stop, "stop"),
            refusal=text if stop == "refusal" else None,
            raw=response.model_dump(mode="json"),
        )

    async def aclose(self) -> None:
        await self.client.close()


def _split_system(messages: list[Message]) -> tuple[str, list[Message]]:
    """Return the system prompt and the user/assistant turns, as the Messages API wants them."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return system, [m for m in messages if m["role"] != "system"]


def _detail(exc: anthropic.APIStatusError) -> str:
    """Return the error message of an HTTP error answer, on one line."""
    body = exc.body
    error = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        text = str(error["message"])
    else:
        text = str(exc.message)
    return " ".join(text.split())


def create(settings: Settings) -> AnthropicProvider:
    return AnthropicProvider(settings)
