"""The HTTP/1.1 connection as `panel serve` speaks it: uvicorn's httptools protocol (its C
parser: h11's pure-Python one halves what a process answers), with what uvicorn leaves out:

- a request whose line and headers are still incomplete past `max_header_bytes` (plus
  HEAD_SLACK) is refused 431 as they come in (httptools has no cap and keeps them all);
  panel's guard then measures complete ones exactly (size and count);
- a request's line and headers must arrive within `header_seconds` of the connection opening,
  or of the previous answer on a kept-alive connection, else the connection is closed (uvicorn
  times a connection only once it has answered, and not while a request's headers trickle in);
- a process holds at most `max_connections` open connections, and one client address at most
  `max_client_connections` of them (a trusted proxy: no cap); past either, a new connection is
  answered 503 and closed at once;
- the server's own refusals (a malformed request: 400; headers over the cap: 431; a connection
  past a cap: 503) are the app's error shape: JSON, `Cache-Control: no-store`, the security
  headers; the connection is then closed (what the client still sends is dropped for up to
  LINGER_SECONDS, so that the answer reaches it).

uvicorn's `timeout_keep_alive` closes a kept-alive connection idle after an answer. The limits
travel in EdgeConfig, so the worker processes of `--workers N` get them too.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from panel.serve.guard import error_body, error_headers

PROTOCOL = f"{__name__}:EdgeProtocol"
"""How uvicorn's Config names the protocol (`http=`)."""
LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024
"""After a refusal, what the client still sends is read and dropped, this long at most."""
HEAD_SLACK = 64 * 1024
"""What an incomplete head may hold past max_header_bytes before it is refused (a read may
bring the tail of a previous request with it); the guard holds complete heads to the cap."""


@dataclass(frozen=True)
class Edge:
    """The connection limits uvicorn's Config does not hold."""

    max_header_bytes: int = 16 * 1024
    header_seconds: float = 10.0
    max_connections: int = 1000
    max_client_connections: int = 64
    trusted_proxy: tuple[str, ...] = ()

    def uncapped(self, host: str) -> bool:
        """Return whether a client address is a trusted proxy (no per-client cap)."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(net, strict=False) for net in self.trusted_proxy)


class EdgeConfig(uvicorn.Config):
    """uvicorn's Config, carrying the Edge limits to EdgeProtocol."""

    def __init__(self, app: str, *, edge: Edge, **options: Any) -> None:
        super().__init__(app, http=PROTOCOL, **options)
        self.edge = edge


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a cap and a deadline for request headers, connection
    caps and the app's error shape on its own refusals (see the module docstring)."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.edge: Edge = getattr(config, "edge", Edge())
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_open = True
        """A request's line and headers have begun (or may) and are not complete yet."""
        self._head_bytes = 0
        self._lingering = False
        self._dropped = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        refused = self._over_a_cap()
        if refused is not None:
            self._refuse(503, refused, {"retry-after": "5"}, linger=False)
            return
        self._arm_head_timer()

    def _over_a_cap(self) -> str | None:
        """Return why this new connection is one too many, None if it is not."""
        if len(self.connections) > self.edge.max_connections:
            return "the server holds as many connections as it may: try again shortly"
        host = _client_host(self)
        if self.edge.uncapped(host):
            return None
        mine = sum(1 for other in self.connections if _client_host(other) == host)
        if mine > self.edge.max_client_connections:
            return (
                f"more than {self.edge.max_client_connections} open connections from your address"
            )
        return None

    def data_received(self, data: bytes) -> None:
        if self._lingering:  # refused: what the client still sends is read and dropped
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES:
                self.transport.close()
            return
        super().data_received(data)
        if self._head_open and not self._lingering:
            self._head_bytes += len(data)
            if self._head_bytes > self.edge.max_header_bytes + HEAD_SLACK:
                self._refuse(431, "the request line and headers are larger than the server takes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open, self._head_bytes = True, 0

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.edge.header_seconds, self._head_too_slow)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        """Close a connection that is serving no request and whose next request's line and
        headers did not all come in time."""
        self._head_timer = None
        serving = self.cycle is not None and not self.cycle.response_complete
        if not serving and not self.pipeline and not self.transport.is_closing():
            self.logger.info("panel: closed a connection whose request headers came too slowly")
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """Refuse a request the parser cannot read (400), in the app's error shape."""
        self._refuse(400, "not an HTTP/1.1 request this server can read")

    def _refuse(
        self, status: int, detail: str, extra: dict[str, str] | None = None, linger: bool = True
    ) -> None:
        """Answer status with the app's error shape and close the connection: at once when the
        client has sent nothing (a connection past a cap: its file is freed at once), else our
        side at once and theirs after LINGER_SECONDS or LINGER_BYTES (a socket closed with
        unread data resets, and the client could lose the answer before reading it)."""
        self._disarm_head_timer()
        body = error_body(detail)
        headers = error_headers(status, len(body), {**(extra or {}), "connection": "close"})
        head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()
        head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        self.transport.write(head + b"\r\n" + body)
        if not linger:
            self.transport.close()
            return
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def _client_host(protocol: object) -> str:
    """Return the client address of an open connection's protocol ("" if it has none)."""
    client = getattr(protocol, "client", None)
    return str(client[0]) if client else ""
