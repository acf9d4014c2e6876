"""What every request to `panel serve` passes: security headers on every answer, the voter
cookie, the check that a write comes from the site's own pages, capped request bodies, and the
client's address as the rate limit counts it.

The voter is a random id in a cookie signed with the site's key (itsdangerous): the server sets
it on its first answer to a GET from a browser and never stores anything a visitor typed. A
cookie that fails the signature is no cookie. The client's address is the connection's, or, for
a request from a configured trusted proxy only, the one its X-Forwarded-For names (uvicorn's
ProxyHeadersMiddleware, put in front of this by app.py).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request

from panel.pages import PAGE_CSP

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

VOTER_COOKIE = "panel_voter"
VOTER_SALT = "panel.voter"
COOKIE_SECONDS = 400 * 24 * 3600
"""How long a browser keeps its voter cookie: 400 days, the most browsers allow."""

BODY_SECONDS = 10.0
"""A request body must arrive within this many seconds (a client that trickles it is dropped)."""

SITE_CSP = PAGE_CSP + "; frame-ancestors 'none'"
"""The pages' own policy, and no page of the site inside another site's frame."""

SECURITY_HEADERS = (
    ("content-security-policy", SITE_CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()"),
)


class Voters:
    """Voter ids and the signed cookie values that carry them."""

    def __init__(self, key: bytes) -> None:
        from itsdangerous import Signer

        self._signer = Signer(key, salt=VOTER_SALT)

    def new(self) -> tuple[str, str]:
        """Return a new voter id and its cookie value."""
        voter = secrets.token_hex(16)
        return voter, self._signer.sign(voter).decode("ascii")

    def voter(self, cookie: str | None) -> str | None:
        """Return the voter id a cookie value carries, None if it is missing or forged."""
        from itsdangerous import BadSignature

        if not cookie or len(cookie) > 200:
            return None
        try:
            return self._signer.unsign(cookie).decode("ascii")
        except (BadSignature, UnicodeDecodeError):
            return None


@dataclass
class Guard:
    """ASGI middleware: security headers on every answer; the voter of each request in
    `request.state.voter` (None without a valid cookie), and a new voter cookie on the answer to
    a GET or HEAD that came without one."""

    app: ASGIApp
    voters: Voters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        voter = self.voters.voter(HTTPConnection(scope).cookies.get(VOTER_COOKIE))
        cookie = None
        if voter is None and scope["method"] in ("GET", "HEAD"):
            voter, cookie = self.voters.new()
        state["voter"] = voter
        secure = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers.setdefault(name, value)
                headers.setdefault("cache-control", "no-cache")
                if cookie is not None:
                    headers.append("set-cookie", voter_cookie(cookie, secure=secure))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def voter_cookie(value: str, *, secure: bool) -> str:
    """Return the Set-Cookie value of a voter cookie: the site's pages only (Path=/, no script,
    never sent by another site's form: SameSite=Lax), Secure over HTTPS."""
    flags = f"; Path=/; Max-Age={COOKIE_SECONDS}; HttpOnly; SameSite=Lax"
    return f"{VOTER_COOKIE}={value}{flags}{'; Secure' if secure else ''}"


_DEFAULT_PORTS = {"http": 80, "https": 443}


@functools.lru_cache(maxsize=256)
def _origin_of(url: str) -> tuple[str, str, int] | None:
    """Return (scheme, host, port) of an origin or URL, None if it has none."""
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def own_origin(request: HTTPConnection) -> str:
    """Return the site's own origin as this request reached it: its scheme (the proxy's
    X-Forwarded-Proto, from a trusted proxy only) and its Host."""
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def foreign_origin(request: HTTPConnection) -> str | None:
    """Return why a write does not come from the site's own pages, None if it does: its Origin
    must be the site's own (a browser sends it with every POST), and so must Sec-Fetch-Site
    where the browser sends one."""
    origin = request.headers.get("origin")
    if origin is None:
        return "no Origin header (votes come from the site's own pages)"
    own = own_origin(request)
    theirs = _origin_of(origin)
    if theirs is None or theirs != _origin_of(own):
        return f"origin {origin[:100]!r} is not this site's ({own[:100]})"
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        return f"Sec-Fetch-Site is {site[:40]!r}, not same-origin"
    return None


def client_address(request: HTTPConnection) -> str:
    """Return the client's address as the vote limit counts it: an IPv4 address, or an IPv6
    address's /64 network (one household or host is given a whole /64)."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:100] or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


async def read_body(request: Request, limit: int) -> bytes:
    """Return the request's body, refused with 413 past `limit` bytes (by Content-Length
    before reading, or while reading) and with 408 if it takes longer than BODY_SECONDS."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPException(413, f"the body is larger than {limit} bytes")

    body = bytearray()
    try:
        async with asyncio.timeout(BODY_SECONDS):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise HTTPException(413, f"the body is larger than {limit} bytes")
    except TimeoutError:
        raise HTTPException(408, "the body took too long to arrive") from None
    return bytes(body)


def json_body_expected(request: Request) -> None:
    """Refuse with 415 a body that does not say it is JSON."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise HTTPException(415, "send the body as Content-Type: application/json")
