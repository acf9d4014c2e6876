"""Provider wrappers: a rate limit or a recorder around any provider, transparent to callers.

A Wrapper forwards everything the wrapped provider offers (name, model, concurrency, prices,
closing and the batch hooks), so no caller ever reaches through to the provider inside.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from panel.errors import TransientProviderError
from panel.providers.base import (
    BatchResults,
    BatchStatus,
    Generation,
    Provider,
    Request,
    estimated_prompt_tokens,
)
from panel.providers.cassette import write_cassette

BURST_SECONDS = 1.0
"""How far ahead of the clock a rate budget may be spent: about a second's worth at once."""


class Budget(Protocol):
    """Rate budgets shared by every process that uses one store (panel.store.Store is one),
    kept per provider and endpoint."""

    def reserve(
        self, provider: str, endpoint: str, spends: list[tuple[str, float, float]]
    ) -> float:
        """Take one call (kind, seconds of budget, burst); return 0.0, or seconds to wait."""
        ...

    def hold_off(self, provider: str, endpoint: str, seconds: float) -> None:
        """Pause every call to provider at endpoint for seconds (a Retry-After, capped)."""
        ...


class Wrapper(Provider):
    """A provider around another one; subclasses override what they change."""

    default_model = ""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.endpoint = inner.endpoint
        self.max_concurrency = inner.max_concurrency
        self.supports_batch = inner.supports_batch

    async def generate(self, request: Request) -> Generation:
        return await self.inner.generate(request)

    def cost_usd(
        self, model: str, input_tokens: int, output_tokens: int, cached_tokens: int = 0
    ) -> float | None:
        return self.inner.cost_usd(model, input_tokens, output_tokens, cached_tokens)

    def priced_as(self, model: str) -> str:
        return self.inner.priced_as(model)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def cannot_batch(self) -> str | None:
        return self.inner.cannot_batch()

    async def batch_create(self, items: list[tuple[str, Request]]) -> str:
        return await self.inner.batch_create(items)

    async def batch_check(self, batch_id: str) -> BatchStatus:
        return await self.inner.batch_check(batch_id)

    async def batch_results(self, batch_id: str) -> BatchResults:
        return await self.inner.batch_results(batch_id)


def estimated_tokens(request: Request) -> int:
    """Return the tokens a call may use: prompt characters / 4 + max_tokens.

    The true count is only known afterwards; the estimate errs on the side of staying under.
    """
    return estimated_prompt_tokens(request) + request.max_tokens


class RateLimited(Wrapper):
    """Keeps the live calls to a provider's endpoint, summed over every worker on the store,
    under rpm requests and tpm tokens per minute, and holds them all off for a Retry-After
    (at most rules.MAX_RETRY_AFTER: retry_after_seconds cuts it, the store refuses more).

    The budgets live in the store (Budget), so workers in other processes and on other machines
    spend from the same ones. Tokens are reserved before a call from estimated_tokens. A
    provider batch is one call, so the batch hooks pass straight through.
    """

    def __init__(self, inner: Provider, rpm: int | None, tpm: int | None, budget: Budget) -> None:
        super().__init__(inner)
        self.rpm, self.tpm, self.budget = rpm, tpm, budget
        self._turn = asyncio.Lock()  # one coroutine of this process asks the store at a time

    def _spends(self, request: Request) -> list[tuple[str, float, float]]:
        """Return what one call costs of each budget: (kind, seconds of budget, burst)."""
        spends = []
        if self.rpm:
            spends.append(("requests", 60 / self.rpm, max(BURST_SECONDS, 60 / self.rpm)))
        if self.tpm:
            seconds = 60 * min(estimated_tokens(request), self.tpm) / self.tpm
            spends.append(("tokens", seconds, max(BURST_SECONDS, seconds)))
        return spends

    async def generate(self, request: Request) -> Generation:
        spends = self._spends(request)
        async with self._turn:
            while (wait := self.budget.reserve(self.name, self.endpoint, spends)) > 0:
                await asyncio.sleep(wait)
        try:
            return await self.inner.generate(request)
        except TransientProviderError as exc:
            if exc.retry_after:
                self.budget.hold_off(self.name, self.endpoint, exc.retry_after)
            raise


class Recorder(Wrapper):
    """Writes a cassette for every answer the wrapped provider gives (see providers.cassette)."""

    def __init__(self, inner: Provider, folder: Path) -> None:
        super().__init__(inner)
        self.folder = folder

    async def generate(self, request: Request) -> Generation:
        answer = await self.inner.generate(request)
        write_cassette(self.folder, request, self.inner.name, request.model, answer)
        return answer

    def cannot_batch(self) -> str | None:
        return "--batch-api writes no cassettes: drop --record"
