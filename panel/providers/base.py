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
import math
import os
import re
import tomllib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from panel.errors import ConfigError, InputError, MalformedAnswerError, ProviderError
from panel.files import read_capped
from panel.rules import MAX_REPORTED_TOKENS, MAX_RETRY_AFTER, SHIP_THRESHOLD

if TYPE_CHECKING:
    from panel.config import Settings

Message = dict[str, str]

Prices = dict[str, tuple[float, float, float]]
"""US dollars per million (input, cached input, output) tokens, by model name."""


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
    """The random part of this call's delimiters (so recordings can normalise it away); a
    pair judgment's two, space-separated."""
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
    probabilities: dict[str, dict[str, float]] | None = None
    """The answer's decisions as probabilities, where the provider reports them
    (panel.providers.decisions): {"prefers": {"first": 0.7, ...}, "score": {"72": 0.4, ...}}."""


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

    endpoint: str = ""
    """Where its calls go (scheme, host, port and path of the base URL; "" for in-process
    providers): rate budgets and Retry-After pauses are kept per provider and endpoint, so a
    local server's 429 does not pause calls to the provider's own API."""

    user_prices: Prices = {}  # noqa: RUF012 - replaced whole, never mutated
    """The user's own prices for this provider (a prices file of theirs), over the built-in ones."""

    @abstractmethod
    async def generate(self, request: Request) -> Generation:
        """Send one request and return the answer, or raise a ProviderError."""

    def cost_usd(
        self, model: str, input_tokens: int, output_tokens: int, cached_tokens: int = 0
    ) -> float | None:
        """Return the price of a call in US dollars (the user's prices file, then prices.toml),
        or None where it is unknown."""
        table = {**prices_of(self.name), **self.user_prices}
        return price(table, model, input_tokens, output_tokens, cached_tokens)

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
    """Return the wait a response asks for (retry-after-ms, or retry-after seconds or date),
    at most MAX_RETRY_AFTER; None when it asks for none, or for a wait that is no number of
    seconds (negative, NaN, infinite, unreadable)."""
    if headers is None:
        return None
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return _sane_wait(float(ms) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        return _sane_wait(float(value))
    except ValueError:
        import email.utils
        import time

        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError):
            return None
        return _sane_wait(max(0.0, when.timestamp() - time.time()))


def _sane_wait(seconds: float) -> float | None:
    """Return seconds cut to MAX_RETRY_AFTER, or None if it is negative or not finite."""
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


def endpoint_of(base_url: Any) -> str:
    """Return where a client's calls go, as a rate limit is keyed: scheme, host, port and path
    of its base URL, without credentials or query."""
    from urllib.parse import urlsplit

    parts = urlsplit(str(base_url))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


# --- answers are untrusted: what a provider reads from one is checked here ---------------------


def malformed(provider: str, problem: str) -> MalformedAnswerError:
    """Return the error of an answer that is not what the API promises (one line)."""
    return MalformedAnswerError(f"{provider}: malformed answer: {problem}", provider=provider)


def token_count(provider: str, field: str, value: Any) -> int:
    """Return a token count from an answer (None or absent: 0), or raise MalformedAnswerError
    unless it is a whole number from 0 to MAX_REPORTED_TOKENS."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_REPORTED_TOKENS:
        return value
    shown = repr(value) if isinstance(value, int | float | str | bool) else type(value).__name__
    raise malformed(
        provider,
        f"{field} must be a whole number from 0 to {MAX_REPORTED_TOKENS}, not {shown[:40]}",
    )


def text_field(provider: str, field: str, value: Any, *, optional: bool = True) -> str | None:
    """Return a text field of an answer, or raise MalformedAnswerError if it is not a string
    (None is allowed where optional)."""
    if isinstance(value, str) or (value is None and optional):
        return value
    raise malformed(provider, f"{field} must be text, not {type(value).__name__}")


def checked_generation(
    provider: str,
    *,
    text: Any,
    input_tokens: Any = 0,
    output_tokens: Any = 0,
    cached_tokens: Any = 0,
    finish_reason: Any = "stop",
    refusal: Any = None,
) -> Generation:
    """Return the Generation of an answer's fields once each is what it must be: text, token
    counts within bounds with cached ≤ input, a finish reason; raise MalformedAnswerError."""
    counts = {
        "input tokens": token_count(provider, "input tokens", input_tokens),
        "output tokens": token_count(provider, "output tokens", output_tokens),
        "cached tokens": token_count(provider, "cached tokens", cached_tokens),
    }
    if counts["cached tokens"] > counts["input tokens"]:
        raise malformed(
            provider,
            f"cached tokens ({counts['cached tokens']}) exceed input tokens "
            f"({counts['input tokens']})",
        )
    return Generation(
        text=text_field(provider, "the answer's text", text) or "",
        input_tokens=counts["input tokens"],
        output_tokens=counts["output tokens"],
        cached_tokens=counts["cached tokens"],
        finish_reason=(text_field(provider, "finish reason", finish_reason) or "stop")[:40],
        refusal=text_field(provider, "refusal", refusal),
    )


LEAST_CHARS_PER_TOKEN = 16
"""No tokenizer packs a whole prompt tighter than this (English runs near 4, code near 3)."""


def counted_tokens(request: Request, generation: Generation) -> tuple[int, int, int]:
    """Return the (input, output, cached) tokens a call's cost is counted at: what the server
    reported, unless that is less than the prompt and the answer can hold at
    LEAST_CHARS_PER_TOKEN characters a token (none reported, zero, a lie); then panel's own
    count, four characters a token and nothing cached, so the ceiling holds."""
    text = generation.text
    least_in = len(json.dumps(request.messages)) // LEAST_CHARS_PER_TOKEN
    least_out = len(text) // LEAST_CHARS_PER_TOKEN
    if generation.input_tokens >= least_in and generation.output_tokens >= least_out:
        return generation.input_tokens, generation.output_tokens, generation.cached_tokens
    return estimated_prompt_tokens(request), len(text) // 4, 0


PRICES_FILE = Path(__file__).with_name("prices.toml")
MAX_PRICES_BYTES = 256 * 1024
MAX_PRICE = 100_000.0
"""The highest price per million tokens a prices file may name (a typo guard, not a market view)."""
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")
"""The date a vendor appends to a model's name: gpt-4o-2024-08-06, claude-sonnet-4-20250514."""


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


def user_prices(path: Path) -> dict[str, Prices]:
    """Return the price tables of a user's prices file (the format of prices.toml: a table per
    provider, `"model" = [input, cached input, output]` in US dollars per million tokens), or
    raise ConfigError naming the file and the entry."""
    try:
        data = tomllib.loads(read_capped(path, MAX_PRICES_BYTES, "prices file").decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read prices: {exc}", path=str(path)) from None
    except InputError as exc:
        raise ConfigError(f"cannot read prices: {exc.message}", path=str(path)) from None
    tables: dict[str, Prices] = {}
    for provider, table in data.items():
        if provider == "read_on":
            continue
        if not isinstance(table, dict):
            raise ConfigError(
                "each provider must be a table of models", path=str(path), field=provider
            )
        tables[provider] = {
            model: _price_entry(path, f"{provider}.{model}", entry)
            for model, entry in table.items()
        }
    return tables


def _price_entry(path: Path, field: str, entry: Any) -> tuple[float, float, float]:
    """Return one [input, cached input, output] entry of a prices file, checked."""
    numbers = entry if isinstance(entry, list) else []
    if len(numbers) != 3 or not all(
        isinstance(n, int | float) and not isinstance(n, bool) and math.isfinite(n) for n in numbers
    ):
        raise ConfigError(
            "must be [input, cached input, output]: three numbers (US dollars per million tokens)",
            path=str(path),
            field=field,
        )
    if not all(0 <= n <= MAX_PRICE for n in numbers):
        raise ConfigError(f"prices must be from 0 to {MAX_PRICE:g}", path=str(path), field=field)
    return float(numbers[0]), float(numbers[1]), float(numbers[2])


def price(
    prices: Prices, model: str, tokens_in: int, tokens_out: int, cached: int = 0
) -> float | None:
    """Return the cost of a call from a table of prices; cached input tokens at the cached rate.

    A model's price is the entry of its exact name, else of its name without a date suffix
    (gpt-4o-2024-08-06 is gpt-4o), never a shorter name's: gpt-5-pro is not gpt-5. The entry ""
    prices every model of a provider (local, replay).
    """
    key = next(
        (k for k in (model, _DATE_SUFFIX.sub("", model), "") if k in prices),
        None,
    )
    if key is None:
        return None
    per_in, per_cached, per_out = prices[key]
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
