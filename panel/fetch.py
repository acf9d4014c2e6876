"""Fetching a launch page: panel's own capped HTTP client, redirects followed hop by hop, no
address panel should not reach.

A page is untrusted, and so is where it points. Every fetch:

- goes through CappedClient (panel.providers.http): the body read through httpx2's decoders in
  pieces and given up once it passes `max_bytes` decompressed (a gzip bomb costs its cap, not
  its ratio), every hop and the whole fetch under one deadline (a trickling server fails in
  `deadline` seconds);
- takes http and https only, follows at most MAX_REDIRECTS redirects, and checks the address
  of every hop twice: the URL's host if it is an address, then every address its name resolves
  to, at connect time, by the network backend that opens the connection to exactly the address
  it checked (a name that resolves to 127.0.0.1, or rebinds between a check and the connect,
  is refused the same). Loopback, private, link-local (the cloud metadata address
  169.254.169.254), shared, multicast and reserved addresses are refused unless
  `allow_private` (tests, intranets);
- accepts HTML, Markdown and plain text only, refused by their Content-Type before the body is
  read (a PDF, an image, an archive), and a body with NUL bytes as binary;
- names itself in its User-Agent.

Every failure is a PageError naming the URL: one line, nothing stored.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore2
import httpx2

from panel.errors import PageError, PanelError
from panel.providers.http import MIB, CappedClient, size_words

USER_AGENT = "panel-intake/0.1 (ship-or-skip; reads one AI tool launch page to draft its card)"
MAX_REDIRECTS = 5
MAX_PAGE_BYTES = 5 * MIB
"""The most a page may hold once decompressed (Settings.max_page_bytes)."""
DEADLINE = 20.0
"""Seconds a whole fetch may take, every hop included (Settings.fetch_timeout)."""

KINDS = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/plain": "text",
}
"""The content types a launch page may have, and how each is read (panel.sources)."""
FEED_TYPES = (
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/json",
    "application/xml",
    "text/xml",
)
"""What a feed may be served as, besides the page types (panel.feeds)."""
_PRIVATE_HINT = "use --allow-private for a page on your own network"


@dataclass(frozen=True)
class Fetched:
    """A page as fetched: where it ended up, its kind (KINDS), its body and when."""

    url: str
    kind: str
    body: bytes
    charset: str
    fetched_at: dt.datetime

    def text(self) -> str:
        """Return the body as text, in its declared charset (UTF-8 if none or unknown)."""
        try:
            return self.body.decode(self.charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


def refused(host: str, address: str) -> str | None:
    """Return why host, at address, may not be fetched ("a loopback address"), None if it may:
    the one guard of every hop (tests stand a loopback server in for a public host here)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for test, words in (
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address (cloud metadata lives there)"),
        (ip.is_private, "a private address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_unspecified, "an unspecified address"),
        (not ip.is_global, "not a public address"),
    ):
        if test:
            return words
    return None


def _literal(host: str) -> str | None:
    """Return host if it is an IP address (brackets removed), else None."""
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    return host


class GuardedBackend(httpcore2.AsyncNetworkBackend):
    """The network backend of a page fetch: resolves a host itself, refuses it if any address
    it resolves to may not be fetched, and connects to the address it checked (TLS still
    names the host)."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        addresses = await _resolve(host, port)
        if not self.allow_private:
            for address in addresses:
                if (why := refused(host, address)) is not None:
                    what = f"{address} is" if _literal(host) else f"{host} resolves to {address},"
                    raise Refused(f"{what} {why}: refused ({_PRIVATE_HINT})")
        return await self._inner.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.AsyncNetworkStream:
        raise Refused("a page is not fetched over a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class Refused(PanelError):
    """An address a fetch may not reach (becomes the PageError of its URL)."""


async def _resolve(host: str, port: int) -> list[str]:
    """Return every address host resolves to (host itself if it is one)."""
    if (literal := _literal(host)) is not None:
        return [literal]
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise Refused(f"cannot resolve {host} ({exc.strerror or exc})") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses:
        raise Refused(f"{host} resolves to no address")
    return addresses


class PageClient(CappedClient):
    """CappedClient for launch pages: redirects come back to be followed hop by hop, an answer
    of the wrong status or type is refused before its body is read, errors are PageErrors."""

    returns_redirects = True

    def __init__(
        self, *, max_bytes: int, deadline: float, allow_private: bool, types: dict[str, str]
    ) -> None:
        transport = httpx2.AsyncHTTPTransport(trust_env=False)
        transport._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(trust_env=False),
            max_connections=4,
            network_backend=GuardedBackend(allow_private),
        )
        super().__init__(
            provider="fetch",
            max_bytes=max_bytes,
            deadline=deadline,
            transport=transport,
            trust_env=False,
            headers={"User-Agent": USER_AGENT, "Accept": ", ".join(types) + ";q=0.9, */*;q=0.1"},
        )
        self.types = types

    def accept(self, response: httpx2.Response, where: str) -> None:
        if response.has_redirect_location:
            return
        if response.status_code != 200:
            reason = response.reason_phrase or ""
            raise PageError(str(response.request.url), f"HTTP {response.status_code} {reason}")
        kind = content_type(response)
        if kind not in self.types:
            what = {"application/pdf": "a PDF"}.get(kind, kind or "no Content-Type")
            raise PageError(
                str(response.request.url),
                f"is {what}: panel reads HTML, Markdown or plain text only",
            )

    def too_slow(self, where: str) -> PanelError:
        return PageError(where, f"did not answer in full within {self.deadline:g} s")

    def too_large(self, where: str, cap: int) -> PanelError:
        return PageError(where, f"is larger than {size_words(cap)} once decompressed")


def content_type(response: httpx2.Response) -> str:
    """Return the media type of an answer ("text/html"), lower case, without parameters."""
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


def check_url(url: str) -> str:
    """Return url if panel may fetch it (http or https, a host); else raise PageError. An
    address as host is checked at connect time with the rest."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise PageError(url, f"only http and https pages are fetched, not {parts.scheme or '?'}:")
    if not parts.hostname:
        raise PageError(url, "has no host")
    return url


async def fetch(
    url: str,
    *,
    allow_private: bool = False,
    max_bytes: int = MAX_PAGE_BYTES,
    deadline: float = DEADLINE,
    types: dict[str, str] | None = None,
) -> Fetched:
    """Fetch url (see the module docstring); return the page it ends at. `types` maps the
    content types accepted to their kind (default: a page's)."""
    accepted = types or KINDS
    first = check_url(url)
    client = PageClient(
        max_bytes=max_bytes, deadline=deadline, allow_private=allow_private, types=accepted
    )
    try:
        async with asyncio.timeout(deadline):
            return await _follow(client, first, accepted)
    except TimeoutError:
        raise PageError(url, f"did not answer in full within {deadline:g} s") from None
    except Refused as exc:
        raise PageError(url, exc.message) from None
    except httpx2.HTTPError as exc:
        raise PageError(url, f"cannot be fetched ({type(exc).__name__}: {exc})") from None
    finally:
        await client.aclose()


async def _follow(client: PageClient, url: str, types: dict[str, str]) -> Fetched:
    """Return the page at url after at most MAX_REDIRECTS redirects, each hop checked."""
    for _ in range(MAX_REDIRECTS + 1):
        response = await client.get(url)
        if not response.has_redirect_location:
            kind = types[content_type(response)]
            if b"\x00" in response.content[:65536]:
                raise PageError(url, "looks binary (NUL bytes), not a page")
            charset = response.charset_encoding or "utf-8"
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            return Fetched(url, kind, response.content, charset, now)
        url = check_url(urljoin(url, response.headers["location"]))
    raise PageError(url, f"more than {MAX_REDIRECTS} redirects")
