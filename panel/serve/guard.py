"""What every request to `panel serve` passes: the allowed host names, a cap on header fields,
security headers and one error shape on every answer, the voter cookie, the check that a write
comes from the site's own pages, capped request bodies, and the client's address and networks
as the limits count them.

The voter is a random id in a cookie signed with the site's key (itsdangerous), with the time
it was made: the server sets it on its first answer to a GET from a browser and never stores
anything a visitor typed. A cookie that fails the signature is no cookie. The client's address
is the connection's, or, for a request from a configured trusted proxy only, the one its
X-Forwarded-For names (uvicorn's ProxyHeadersMiddleware, put in front of this by app.py).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request

from panel.pages import PAGE_CSP

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("uvicorn.error")  # uvicorn's own log: our lines show beside its own

VOTER_COOKIE = "panel_voter"
VOTER_SALT = "panel.voter"
VOTER_CACHE = 4096
"""Cookies whose signature check is remembered (per process)."""
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

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
"""The host names a server that listens on loopback answers to when none are configured."""


def error_body(detail: str, **more: str) -> bytes:
    """Return the JSON of every error: {"error": one line, ...}."""
    return json.dumps({"error": detail, **more}).encode()


def error_headers(
    status: int, length: int, extra: dict[str, str] | None = None
) -> list[tuple[bytes, bytes]]:
    """Return the headers of an error answer made outside the app: JSON, no-store, the
    security headers, and any extra ones."""
    headers = {
        "content-type": "application/json",
        "content-length": str(length),
        "cache-control": "no-store",
        **dict(SECURITY_HEADERS),
        **(extra or {}),
    }
    return [(name.encode(), value.encode()) for name, value in headers.items()]


class Voters:
    """Voter ids and the signed cookie values that carry them with the time they were made
    (a cookie from before carries none: it counts as old)."""

    def __init__(self, key: bytes) -> None:
        from itsdangerous import Signer

        self._signer = Signer(key, salt=VOTER_SALT)
        self._read = functools.lru_cache(maxsize=VOTER_CACHE)(self._unsigned)
        """A browser sends its cookie with every request: its signature is checked once."""

    def new(self) -> tuple[str, str]:
        """Return a new voter id and its cookie value."""
        voter = secrets.token_hex(16)
        return voter, self._signer.sign(f"{voter}.{int(time.time())}").decode("ascii")

    def voter(self, cookie: str | None) -> tuple[str, float] | None:
        """Return the voter id a cookie value carries and when it was made (0: not said),
        None if it is missing or forged."""
        if not cookie or len(cookie) > 200:
            return None
        return self._read(cookie)

    def _unsigned(self, cookie: str) -> tuple[str, float] | None:
        from itsdangerous import BadSignature

        try:
            value = self._signer.unsign(cookie).decode("ascii")
        except (BadSignature, UnicodeDecodeError):
            return None
        voter, _, made = value.partition(".")
        return voter, float(made) if made.isdigit() else 0.0


@dataclass
class Guard:
    """ASGI middleware: a request for a host name not allowed, or with too many header fields,
    is refused before anything else (400, 431); security headers on every answer, and every
    failure the app did not answer itself answered as {"error": ...} with them; the voter of
    each request in `request.state.voter` and the time its cookie was made in
    `request.state.voter_since` (None and 0 without a valid cookie), and a new voter cookie on
    the answer to a GET or HEAD that came without one."""

    app: ASGIApp
    voters: Voters
    hosts: tuple[str, ...] = LOOPBACK_HOSTS
    max_headers: int = 64
    max_header_bytes: int = 16 * 1024

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self._refused(scope)
        if refused is not None:
            await send_error(send, *refused)
            return
        state = scope.setdefault("state", {})
        found = self.voters.voter(HTTPConnection(scope).cookies.get(VOTER_COOKIE))
        voter, since = found or (None, 0.0)
        cookie = None
        if voter is None and scope["method"] in ("GET", "HEAD"):
            voter, cookie = self.voters.new()
            since = time.time()
        state["voter"], state["voter_since"] = voter, since
        secure = scope.get("scheme") == "https"
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers.setdefault(name, value)
                headers.setdefault("cache-control", "no-cache")
                if cookie is not None:
                    headers.append("set-cookie", voter_cookie(cookie, secure=secure))
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if started:
                raise
            await send_error(send, 500, "the server failed on this request (it is logged)")
            raise  # uvicorn logs it with its traceback: a bug to fix

    def _refused(self, scope: Scope) -> tuple[int, str] | None:
        """Return the status and reason that refuse a request before the app sees it, if any.
        (panel.serve.wire refuses a head still incomplete past the cap as it comes in;
        complete ones are measured here.)"""
        if len(scope["headers"]) > self.max_headers:
            return 431, f"more than {self.max_headers} header fields"
        size, host = len(scope["raw_path"]) + len(scope["query_string"]), b""
        for name, value in scope["headers"]:
            size += len(name) + len(value) + 4
            if name == b"host":
                host = value
        if size > self.max_header_bytes:
            limit = self.max_header_bytes
            return 431, f"the request line and headers are larger than {limit} bytes"
        shown = host.decode("latin-1")
        if not host_allowed(shown, self.hosts):
            return 400, f"this server does not serve the host {shown[:100]!r}"
        return None


async def send_error(
    send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    """Answer a request with the one error shape (see error_body) and the security headers."""
    body = error_body(detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": error_headers(status, len(body), headers),
        }
    )
    await send({"type": "http.response.body", "body": body})


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """Return whether a Host header (a name or address, maybe with a port) names an allowed
    host: one of them, or a subdomain of a "*.name" entry (as Starlette's TrustedHostMiddleware
    reads them)."""
    if host.startswith("["):  # [IPv6]:port
        name = host[1 : host.find("]")] if "]" in host else ""
    else:
        name = host.split(":", 1)[0] if host.count(":") == 1 else host
    name = name.lower().rstrip(".")
    return bool(name) and any(
        name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:]))
        for pattern in allowed
    )


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
    return client_networks(request)[0]


def client_networks(request: HTTPConnection) -> tuple[str, str]:
    """Return the client's network and its wider one: an IPv4 address twice, or an IPv6
    address's /64 and /48 (a site is commonly given a whole /48)."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host[:100] or "unknown"
        return name, name
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped), str(address.ipv4_mapped)
        narrow = ipaddress.ip_network(f"{address}/64", strict=False)
        return str(narrow), str(narrow.supernet(new_prefix=48))
    return str(address), str(address)


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
