"""The one small interface every model provider implements: a request in, a generation out.

A provider turns a Request (messages + JSON schema) into a Generation (the raw answer text,
token usage, why it stopped). It maps its SDK's failures onto TransientProviderError (worth a
retry) or ProviderError (not). Parsing and validating the answer is the reviewer's job, so every
provider's answers are judged by the same rules.

Providers with a batch API (about half the price, answers within a day) also implement the
optional batch hooks: create a batch from (custom_id, Request) pairs, check it, read its results;
panel.queue.batch drives them.
"""

from __future__ import annotations

import functools
import json
import os
import tomllib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from panel.errors import ConfigError, ProviderError
from panel.rules import SHIP_THRESHOLD

if TYPE_CHECKING:
    from panel.config import Settings

Message = dict[str, str]


@dataclass(frozen=True)
class Request:
    """One structured-output call."""

    messages: list[Message]
    schema: dict[str, Any]
    schema_name: str
    model: str
    max_tokens: int = 1200
    temperature: float = 0.0
    seed: int = 7
    ship_threshold: int = SHIP_THRESHOLD
    """The verdict rule the answer must follow (a grammar-constrained provider enforces it)."""
    # Context for logs, cassettes and error messages; never sent to a model.
    persona: str = ""
    tool: str = ""
    sample: int = 0
    prompt_version: str = ""
    nonce: str = ""
    """The random part of this call's delimiters (so recordings can normalise it away)."""
    mitigations: tuple[str, ...] = ()
    """The mitigations that shaped the prompt (panel.mitigations), stored with the review."""


@dataclass
class Generation:
    """What a provider answered, before any parsing."""

    text: str
    input_tokens: int = 0
    """Every prompt token, cached ones included."""
    output_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens the provider served from its prompt cache (billed at its cached rate)."""
    finish_reason: str = "stop"
    """"stop", "length" (hit max_tokens), "refusal" or the provider's own word."""
    refusal: str | None = None


@dataclass(frozen=True)
class BatchStatus:
    """Where a provider batch stands, as one poll saw it."""

    state: str
    """The provider's own word: in_progress, completed, expired, ended..."""
    ended: bool
    """Whether the batch will change no more (its results, if any, can be read)."""
    done: int = 0
    total: int = 0
    error: str | None = None
    """Why the batch as a whole failed, when it did."""


BatchResults = dict[str, Generation | ProviderError]
"""A batch's answers by custom_id; a request with no result (e.g. expired) is missing."""


class Provider(ABC):
    """A model provider. Subclasses live one per module in panel/providers/."""

    name: str
    default_model: ClassVar[str]
    max_concurrency: int = 64
    """How many calls this provider may have in flight at once (the local model: 1)."""

    model: str
    """The model this provider uses when neither a flag nor a persona names one."""

    @abstractmethod
    async def generate(self, request: Request) -> Generation:
        """Send one request and return the answer, or raise a ProviderError."""

    def cost_usd(
        self, model: str, input_tokens: int, output_tokens: int, cached_tokens: int = 0
    ) -> float | None:
        """Return the price of a call in US dollars (prices.toml), or None where it is unknown."""
        return price(prices_of(self.name), model, input_tokens, output_tokens, cached_tokens)

    def priced_as(self, model: str) -> str:
        """Return how a model is named where its price is missing: "openai:gpt-5.5"."""
        return f"{self.name}:{model}"

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release clients and connections."""

    # --- optional batch hooks: implemented where supports_batch is True ----------------------

    supports_batch: bool = False

    def cannot_batch(self) -> str | None:
        """Return why this provider cannot run --batch-api, or None when it can."""
        if self.supports_batch:
            return None
        return (
            "--batch-api needs a provider with a batch API (openai or anthropic), "
            f"not '{self.name}'"
        )

    async def batch_create(self, items: list[tuple[str, Request]]) -> str:
        """Submit every request as one batch, each under its custom_id; return the batch id."""
        raise ProviderError(f"{self.name} has no batch API", provider=self.name)

    async def batch_check(self, batch_id: str) -> BatchStatus:
        """Return the batch's current status."""
        raise ProviderError(f"{self.name} has no batch API", provider=self.name)

    async def batch_results(self, batch_id: str) -> BatchResults:
        """Return the answers of an ended batch by custom_id, errors as ProviderError."""
        raise ProviderError(f"{self.name} has no batch API", provider=self.name)


def is_transient_status(status: int) -> bool:
    """Return whether an HTTP status is worth retrying: timeouts, conflicts, 429, 5xx and 529."""
    return status in (408, 409, 429) or status >= 500


def retry_after_seconds(headers: Any) -> float | None:
    """Return the wait a response asks for (retry-after-ms, or retry-after seconds or date)."""
    if headers is None:
        return None
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return float(ms) / 1000
        value = headers.get("retry-after")
        if value is None:
            return None
        return float(value)
    except ValueError:
        import email.utils
        import time

        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


Prices = dict[str, tuple[float, float, float]]
"""US dollars per million (input, cached input, output) tokens, by model name prefix."""

PRICES_FILE = Path(__file__).with_name("prices.toml")


@functools.cache
def _price_file() -> dict[str, Any]:
    with PRICES_FILE.open("rb") as file:
        return tomllib.load(file)


def prices_read_on() -> str:
    """Return the day the prices file was read from the vendors' price pages (YYYY-MM-DD)."""
    return str(_price_file()["read_on"])


def prices_of(provider: str) -> Prices:
    """Return the price table of one provider from the prices file (empty if it has none)."""
    table = _price_file().get(provider, {})
    return {name: (float(i), float(c), float(o)) for name, (i, c, o) in table.items()}


def price(
    prices: Prices, model: str, tokens_in: int, tokens_out: int, cached: int = 0
) -> float | None:
    """Return the cost of a call from a table of prices; cached input tokens at the cached rate.

    The longest table key that starts the model name wins, so dated model names match too.
    """
    keys = [key for key in prices if model.startswith(key)]
    if not keys:
        return None
    per_in, per_cached, per_out = prices[max(keys, key=len)]
    cached = min(cached, tokens_in)
    total = (tokens_in - cached) * per_in + cached * per_cached + tokens_out * per_out
    return round(total / 1_000_000, 6)


def estimated_prompt_tokens(request: Request) -> int:
    """Return about how many tokens a request's prompt holds: its characters / 4 (an estimate
    that errs high for English prose; the true count is known only afterwards)."""
    return len(json.dumps(request.messages)) // 4


def credentials(settings: Settings, env: str, hint: str = "") -> tuple[str, str | None]:
    """Return (API key, base URL) for an SDK client: the key from $<env>_API_KEY, the base URL
    from the settings or $<env>_BASE_URL. Local compatible servers need no key; others do.

    The key goes only to the provider's own endpoint or to a base URL given by flag or
    environment variable: a base URL from a config file gets no key ("no-key" instead).
    """
    base_url = settings.base_url or os.environ.get(f"{env}_BASE_URL") or None
    api_key = os.environ.get(f"{env}_API_KEY")
    if not settings.key_goes_to(env, base_url):
        api_key = None
    if not api_key:
        if not base_url:
            raise ConfigError(f"{env}_API_KEY is not set{hint}")
        api_key = "no-key"  # local servers accept any key
    return api_key, base_url


def error_detail(body: object, message: str) -> str:
    """Return the message of an HTTP error answer (the body's error.message if any), on one line."""
    error = body.get("error", body) if isinstance(body, dict) else None
    text = str(error["message"]) if isinstance(error, dict) and error.get("message") else message
    return " ".join(text.split())
