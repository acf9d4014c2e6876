"""Provider wrappers: a rate limit or a recorder around any provider, transparent to callers.

A Wrapper forwards everything the wrapped provider offers (name, model, concurrency, prices,
closing and the batch hooks), so no caller ever reaches through to the provider inside.
"""

from __future__ import annotations

import json
from pathlib import Path

from aiolimiter import AsyncLimiter

from panel.providers.base import BatchResults, BatchStatus, Generation, Provider, Request
from panel.providers.cassette import write_cassette


class Wrapper(Provider):
    """A provider around another one; subclasses override what they change."""

    default_model = ""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.max_concurrency = inner.max_concurrency
        self.supports_batch = inner.supports_batch

    async def generate(self, request: Request) -> Generation:
        return await self.inner.generate(request)

    def cost_usd(
        self, model: str, input_tokens: int, output_tokens: int, cached_tokens: int = 0
    ) -> float | None:
        return self.inner.cost_usd(model, input_tokens, output_tokens, cached_tokens)

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
    return len(json.dumps(request.messages)) // 4 + request.max_tokens


class RateLimited(Wrapper):
    """Keeps a provider's live calls under rpm requests and tpm tokens per minute.

    Tokens are reserved before a call from estimated_tokens. A provider batch is one call, so
    the batch hooks pass straight through.
    """

    def __init__(self, inner: Provider, rpm: int | None, tpm: int | None) -> None:
        super().__init__(inner)
        self.requests = AsyncLimiter(rpm, 60) if rpm else None
        self.tokens = AsyncLimiter(tpm, 60) if tpm else None
        self.tpm = tpm or 0

    async def generate(self, request: Request) -> Generation:
        if self.requests:
            await self.requests.acquire()
        if self.tokens:
            await self.tokens.acquire(min(estimated_tokens(request), self.tpm))
        return await self.inner.generate(request)


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
