"""The one exception tree of panel: every error a user can cause or meet derives from PanelError.

The CLI turns a PanelError into one line on stderr and its `exit_code`; anything else is a bug.
"""

from __future__ import annotations

import re

_SECRET = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-]{8,}|sk-[A-Za-z0-9_\-]{16,}|Bearer\s+[A-Za-z0-9._\-]{8,})"
)


def scrub(text: str) -> str:
    """Return text with anything shaped like an API key or bearer token replaced by [REDACTED]."""
    return _SECRET.sub("[REDACTED]", text)


class PanelError(Exception):
    """Root of every error panel raises on purpose.

    Its message is scrubbed of key-shaped text: an error may quote a server's answer, and from
    here it reaches stderr, the call log, the queue and the review documents.
    """

    exit_code = 1

    def __init__(self, message: str) -> None:
        message = scrub(message)
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(PanelError):
    """The user gave panel something it cannot use: a bad card, flag, file or setting."""

    exit_code = 2


class CardError(InputError):
    """A tool card failed to load or validate; names the file and the field."""

    def __init__(self, path: str, problem: str, field: str | None = None) -> None:
        where = f"{path}: {field}: " if field else f"{path}: "
        super().__init__(where + problem)
        self.path = path
        self.field = field
        self.problem = problem


class ConfigError(InputError):
    """A persona file, prompt template, config file or setting is unusable."""


class ProviderError(PanelError):
    """A model provider failed and retries did not help (exit 1)."""

    def __init__(self, message: str, *, provider: str = "", retryable: bool = False) -> None:
        super().__init__(message)
        self.provider = provider
        self.retryable = retryable


class TransientProviderError(ProviderError):
    """A failure worth retrying: rate limit, 5xx, overload, timeout, dropped connection."""

    def __init__(
        self, message: str, *, provider: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message, provider=provider, retryable=True)
        self.retry_after = retry_after


class AnswerError(ProviderError):
    """The model answered, but not with a valid review, even after being re-asked."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        persona: str = "",
        attempts: int = 0,
        raw: str = "",
        input_tokens: int = 0,
        output_tokens: int = 0,
    ) -> None:
        super().__init__(message, provider=provider)
        self.persona = persona
        self.attempts = attempts
        self.raw = raw
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens


class RefusalError(AnswerError):
    """The model declined to review; recorded as a refusal, never as a score."""
