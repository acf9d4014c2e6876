"""Per-provider rate limits (requests and tokens per minute) around any provider.

Tokens are reserved before a call from an estimate (prompt characters / 4 + max_tokens), since
the true count is only known afterwards; the estimate errs on the side of staying under.
"""

from __future__ import annotations

import json

from aiolimiter import AsyncLimiter

from panel.providers.base import Generation, Provider, Request


def estimated_tokens(request: Request) -> int:
    return len(json.dumps(request.messages)) // 4 + request.max_tokens


class RateLimited(Provider):
    """Wraps a provider so that its calls stay under rpm requests and tpm tokens per minute."""

    def __init__(self, inner: Provider, rpm: int | None, tpm: int | None) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]  # transparent wrapper
        self.model = inner.model
        self.max_concurrency = inner.max_concurrency  # type: ignore[misc]
        self.requests = AsyncLimiter(rpm, 60) if rpm else None
        self.tokens = AsyncLimiter(tpm, 60) if tpm else None
        self.tpm = tpm or 0

    async def generate(self, request: Request) -> Generation:
        if self.requests:
            await self.requests.acquire()
        if self.tokens:
            await self.tokens.acquire(min(estimated_tokens(request), self.tpm))
        return await self.inner.generate(request)

    def cost_usd(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        return self.inner.cost_usd(model, input_tokens, output_tokens)

    async def aclose(self) -> None:
        await self.inner.aclose()
