"""The HTTP client both SDKs are given (their `http_client` hook): every answer read with a cap,
every call under one deadline.

A model server is untrusted input. The SDKs read a whole response and decompress it without a
bound, and their timeout is per read (a server that sends a byte every half second never trips
it). CappedClient bounds both, for every request either SDK makes (live calls, batch files):

- the body is read through httpx2's own decoders, which inflate gzip, deflate (and br or zstd
  where installed) in pieces of at most 1 MiB, and reading stops once the decompressed body
  passes `max_bytes`: memory stays near the cap, whatever the ratio on the wire;
- connect, headers and every read of the body run under one deadline (`deadline` seconds);
- a redirect is not followed (an API does not move; a base URL that redirects is a mistake or
  a trap): it is one line naming where it points.

A launch page (panel.fetch) is read by the same client: a subclass returns redirects to be
followed hop by hop, refuses an answer by its headers before reading it (`accept`) and says
its errors as page errors (`too_slow`, `too_large`).

Failures are panel errors, raised inside the SDK's call and passed through by the providers'
error mapping: over the cap a ProviderError (retrying a server that sends too much does not
help), past the deadline a TransientProviderError (worth a retry, as a timeout is).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2

from panel.errors import PanelError, ProviderError, TransientProviderError

MIB = 2**20
BATCH_FILE_SHARE = 64
"""A batch's result file may hold this many times `max_response_bytes` (thousands of answers
in one file); it is read under the same decompression bound."""
_BATCH_FILE_PATHS = ("/content", "/results")
"""Paths of batch result downloads (OpenAI files/{id}/content, Anthropic batches/{id}/results)."""
_HOP_HEADERS = ("content-encoding", "content-length", "transfer-encoding")


def size_words(count: int) -> str:
    """Return a byte count as people say it: "8 MiB", "512 KiB", "1000 bytes"."""
    for unit, factor in (("MiB", MIB), ("KiB", 1024)):
        if count >= factor and count % factor == 0:
            return f"{count // factor} {unit}"
    return f"{count} bytes"


class CappedClient(httpx2.AsyncClient):
    """An httpx2 client whose every answer is read whole, capped and under a deadline."""

    def __init__(self, *, provider: str, max_bytes: int, deadline: float, **kwargs: Any) -> None:
        kwargs.setdefault(
            "limits", httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
        )
        kwargs.setdefault("timeout", httpx2.Timeout(deadline, connect=min(deadline, 5.0)))
        super().__init__(follow_redirects=False, **kwargs)
        self.provider = provider
        self.max_bytes = max_bytes
        self.deadline = deadline

    async def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        """Send request and return its answer read whole (decompressed, capped), within the
        deadline; whether the caller asked to stream or not, the body is already in memory."""
        kwargs.pop("stream", None)
        kwargs["follow_redirects"] = False
        where = request.url.host or "the server"
        try:
            async with asyncio.timeout(self.deadline):
                response = await super().send(request, stream=True, **kwargs)
                try:
                    self.accept(response, where)
                    body = await self._body(response, where)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise self.too_slow(where) from None
        if response.has_redirect_location and not self.returns_redirects:
            target = response.headers.get("location", "")[:200]
            raise ProviderError(
                f"{self.provider}: {where} redirected to {target} (redirects are not followed: "
                "give the final address as the base URL)",
                provider=self.provider,
            )
        headers = [
            (k, v) for k, v in response.headers.multi_items() if k.lower() not in _HOP_HEADERS
        ]
        return httpx2.Response(
            response.status_code,
            headers=headers,
            content=body,
            request=request,
            extensions=response.extensions,
        )

    returns_redirects = False
    """Whether a redirect is returned to the caller (to follow it hop by hop, checking each)
    rather than refused."""

    def accept(self, response: httpx2.Response, where: str) -> None:
        """Refuse an answer by its status and headers, before its body is read (none here)."""

    def too_slow(self, where: str) -> PanelError:
        """Return the error of an answer not read whole within the deadline."""
        return TransientProviderError(
            f"{self.provider}: {where} did not answer in full within {self.deadline:g} s "
            "(the timeout setting bounds the whole call)",
            provider=self.provider,
        )

    def too_large(self, where: str, cap: int) -> PanelError:
        """Return the error of an answer past the cap once decompressed."""
        return ProviderError(
            f"{self.provider}: the answer from {where} is larger than {size_words(cap)} "
            "once decompressed (max_response_bytes); it was not read further",
            provider=self.provider,
        )

    def cap_for(self, request: httpx2.Request) -> int:
        """Return the most bytes an answer to request may hold once decompressed."""
        if request.method == "GET" and request.url.path.endswith(_BATCH_FILE_PATHS):
            return self.max_bytes * BATCH_FILE_SHARE
        return self.max_bytes

    async def _body(self, response: httpx2.Response, where: str) -> bytes:
        """Return the decompressed body, or raise `too_large` once it passes the cap."""
        cap = self.cap_for(response.request)
        parts: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise self.too_large(where, cap)
            parts.append(chunk)
        return b"".join(parts)


def capped_client(provider: str, max_bytes: int, deadline: float) -> CappedClient:
    """Return the HTTP client a provider's SDK is given (see the module docstring)."""
    return CappedClient(provider=provider, max_bytes=max_bytes, deadline=deadline)
