"""The one exception tree of panel: every error a user can cause or meet derives from PanelError.

Errors carry where they happened as fields (path, tool, persona, field), and `located` formats
them in one way: "path or tool: persona: field: message". The CLI turns a PanelError into that
one line on stderr and its `exit_code`; anything else is a bug.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

REDACTED = "[REDACTED]"
_SECRET = re.compile(
    r"(?<![A-Za-z0-9])"
    r"(sk-ant-[A-Za-z0-9_\-]{8,}|sk-[A-Za-z0-9_\-]{16,}|Bearer\s+[A-Za-z0-9._\-]{8,})"
)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@]+@")
_MIN_SECRET_CHARS = 6
"""Shorter values (e.g. a password "x") are not scrubbed by value: they would eat words."""

_given_secrets: set[str] = set()


def add_secret_url(url: str | None) -> None:
    """Remember the userinfo of a URL the user gave (e.g. --base-url) as a secret to scrub."""
    if url:
        _given_secrets.update(url_secrets(url))


def add_secret(value: str) -> None:
    """Remember a secret setting's value (e.g. the submit token of `panel serve`) to scrub."""
    _given_secrets.add(value.strip())


def url_secrets(url: str) -> set[str]:
    """Return the secret parts of a URL's userinfo ("user:pass" and "pass"), encoded and not."""
    from urllib.parse import unquote, urlsplit

    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return set()
    if "@" not in parts.netloc:
        return set()
    userinfo = parts.netloc.rpartition("@")[0]
    found = {userinfo, unquote(userinfo)}
    if ":" in userinfo:
        password = userinfo.split(":", 1)[1]
        found |= {password, unquote(password)}
    return found


def secrets_in_use() -> frozenset[str]:
    """Return the exact secret values panel may hold: every *_API_KEY in the environment and
    the userinfo of every URL in a *_URL variable or given by the user."""
    values = set(_given_secrets)
    for name, value in os.environ.items():
        if name.endswith("_API_KEY"):
            values.add(value.strip())
        elif name.endswith("_URL"):
            values |= url_secrets(value)
    return frozenset(v for v in values if len(v) >= _MIN_SECRET_CHARS)


@lru_cache(maxsize=8)
def _value_pattern(values: frozenset[str]) -> re.Pattern[str] | None:
    ordered = sorted(values, key=len, reverse=True)  # a key containing another goes first
    return re.compile("|".join(map(re.escape, ordered))) if ordered else None


_PASSWORD_PARAMETER = re.compile(r"=(?<=(?i:\bpassword=))[^&\s]+")
"""The value of a password= parameter: found from its "=" (a fast scan), "password" looked back."""
_USERINFO_CORE = re.compile(r"://[^/\s@]+@")
"""What every match of _URL_USERINFO contains: a cheap test before the slow pattern."""


def scrub(text: str) -> str:
    """Return text with every secret in use, anything shaped like an API key or bearer token,
    and the userinfo of URLs replaced by [REDACTED], and a password= parameter by ***.

    Each pattern runs only where a cheap test finds what every match of it contains (the
    queue scrubs every page it writes: the patterns alone cost a millisecond and a half on a
    comparison page)."""
    values = secrets_in_use()
    pattern = _value_pattern(values)
    if pattern is not None and any(value in text for value in values):
        text = pattern.sub(REDACTED, text)
    if _USERINFO_CORE.search(text):
        text = _URL_USERINFO.sub(rf"\1{REDACTED}@", text)
    text = _PASSWORD_PARAMETER.sub("=***", text)
    if "sk-" in text or "Bearer" in text:
        text = _SECRET.sub(REDACTED, text)
    return text


def located(
    message: str,
    *,
    path: str | None = None,
    tool: str | None = None,
    persona: str | None = None,
    field: str | None = None,
) -> str:
    """Return message behind where it happened: "path or tool: persona: field: message"."""
    where = [part for part in (path, tool, persona, field) if part]
    return ": ".join([*where, message])


def error_field(error: Mapping[str, Any]) -> str:
    """Return the dotted field path of one pydantic error ("fields.competitors.0")."""
    return ".".join(str(part) for part in error["loc"])


def validation_problem(exc: ValidationError) -> tuple[str, str]:
    """Return (field.path, problem) of a pydantic ValidationError's first error."""
    error = exc.errors()[0]
    return error_field(error), str(error["msg"]).removeprefix("Value error, ")


class PanelError(Exception):
    """Root of every error panel raises on purpose; str() is the one line a user sees.

    Its message is scrubbed (`scrub`: key-shaped text, the values of the keys and URL passwords
    in use): an error may quote a server's answer, and from here it reaches stderr, the call
    log, the queue and the review documents.
    """

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        tool: str | None = None,
        persona: str | None = None,
        field: str | None = None,
    ) -> None:
        message = scrub(message)
        super().__init__(message)
        self.message = message
        self.path = path
        self.tool = tool
        self.persona = persona
        self.field = field

    def about(self, *, tool: str, persona: str) -> PanelError:
        """Return this error, naming tool and persona where it did not already."""
        self.tool = self.tool or tool
        self.persona = self.persona or persona
        return self

    def __str__(self) -> str:
        where = located(
            self.message, path=self.path, tool=self.tool, persona=self.persona, field=self.field
        )
        return where if where == self.message else scrub(where)  # a path may hold a URL


class InputError(PanelError):
    """The user gave panel something it cannot use: a bad card, flag, file or setting."""

    exit_code = 2


class CardError(InputError):
    """A tool card failed to load or validate; names the file and the field."""

    def __init__(self, path: str, problem: str, field: str | None = None) -> None:
        super().__init__(problem, path=path, field=field)


class PageError(InputError):
    """A launch page (`panel card`, a URL given for a card, a feed) could not be used: out of
    reach, refused (its address, type, size or time), or not readable as a launch page. Names
    the URL (or file) it came from; nothing of it is stored."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(problem, path=source)


class ConfigError(InputError):
    """A persona file, prompt template, config file or setting is unusable."""


class ProviderError(PanelError):
    """A model provider failed and retries did not help (exit 1)."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        retryable: bool = False,
        tool: str | None = None,
        persona: str | None = None,
    ) -> None:
        super().__init__(message, tool=tool, persona=persona)
        self.provider = provider
        self.retryable = retryable


class TransientProviderError(ProviderError):
    """A failure worth retrying: rate limit, 5xx, overload, timeout, dropped connection."""

    def __init__(
        self, message: str, *, provider: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message, provider=provider, retryable=True)
        self.retry_after = retry_after


class MalformedAnswerError(TransientProviderError):
    """The server answered, but not with what its API promises: a field of the wrong type, a
    token count out of bounds, nesting too deep. Nothing of it is used; it is retried like a
    server error, and counted at its estimated cost (the server may have charged for it)."""


class AnswerError(ProviderError):
    """The model answered, but not with a valid review, even after being re-asked."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        tool: str | None = None,
        persona: str | None = None,
        attempts: int = 0,
        raw: str = "",
        input_tokens: int = 0,
        output_tokens: int = 0,
    ) -> None:
        super().__init__(message, provider=provider, tool=tool, persona=persona)
        self.attempts = attempts
        self.raw = raw
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens


class RefusalError(AnswerError):
    """The model declined to review; recorded as a refusal, never as a score."""


class StoreUnavailable(PanelError):
    """The database could not finish what was asked: it went away in the middle of a
    transaction (a PostgreSQL restart, a lost network), or `panel serve` gave up on it (locked
    past its wait, read-only, a full disk, too slow to answer). Worth trying again once it is
    back.

    `written` says what became of the transaction: False, nothing of it was written (rolled
    back, or never begun); None, not known (the connection was lost with its COMMIT on the
    way, or the call was still running when given up on: it may have landed); True, it was
    written, and what failed came after it."""

    def __init__(self, message: str, *, path: str | None = None, written: bool | None = False):
        super().__init__(message, path=path)
        self.written = written


class CostCeilingReached(ProviderError):
    """--max-cost: the next call would take the run's spending past the ceiling (exit 3). What
    is done is kept; the rest stays pending for a later run."""

    exit_code = 3


class ModelError(PanelError):
    """A local model could not be fetched or is not the catalogue's file: its source was out of
    reach, its size or SHA-256 differ, or the disk is full. Nothing half-written is left at the
    model's path."""
