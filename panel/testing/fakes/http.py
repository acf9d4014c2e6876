"""One loopback HTTP server for every fake in the tests: 127.0.0.1, a thread, HTTP/1.1 (GET,
HEAD, POST; a HEAD is answered with the GET's headers and no body).

A subclass answers each request with `respond(seen) -> Reply`; a Reply may wait first, or reset
the connection instead of answering. ScriptedServer answers from a queue of replies, then from a
function of the request: the wire-level situations of the provider tests.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One HTTP answer: a JSON body (dict or list), text sent as HTML, or bytes sent as is."""

    status: int
    body: dict[str, Any] | list[Any] | str | bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering."""
    drop: bool = False
    """Reset the connection (RST) instead of answering."""
    trickle: float = 0.0
    """Send the body one byte at a time, this many seconds apart (a server that never times
    out a read, and never finishes)."""
    cut: int | None = None
    """Send only this many bytes of the body, then close the connection (a transfer dropped
    halfway)."""


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    """Header names lower-cased."""
    body: dict[str, Any]
    """The JSON body; {"_raw": bytes} when it is not JSON, {} when there is none."""
    at: float
    """time.monotonic() on arrival."""


class LoopbackServer:
    """Use as `with Server(...) as server:`, or call start() and close(); clients go to url."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        ThreadingHTTPServer.request_queue_size = 256  # a burst of 64 connects must not be dropped
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # A client that dies mid-answer (the kill -9 tests) is expected: no traceback on stderr.
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Any:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def respond(self, seen: Seen) -> Reply:
        """Return the answer to one request (subclasses)."""
        raise NotImplementedError

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: without this, Nagle's algorithm and the
                # client's delayed ACK add ~40 ms to every answer.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args: object) -> None:
                """Keep the test output quiet."""

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {"_raw": raw}
                seen = Seen(
                    method=method,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                )
                reply = server.respond(seen)
                time.sleep(reply.delay)
                if reply.drop:  # a reset: RST, not a polite FIN
                    self.close_connection = True
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()
                    return
                self._send(reply, head=method == "HEAD")

            def _send(self, reply: Reply, head: bool = False) -> None:
                if isinstance(reply.body, bytes):
                    data, kind = reply.body, "application/octet-stream"
                elif isinstance(reply.body, str):
                    data, kind = reply.body.encode(), "text/html"
                else:
                    data, kind = json.dumps(reply.body).encode(), "application/json"
                headers = {"content-type": kind, "content-length": str(len(data))}
                headers.update({k.lower(): v for k, v in reply.headers.items()})
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if head:
                    return
                if reply.cut is not None:
                    self.wfile.write(data[: reply.cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if not reply.trickle:
                    self.wfile.write(data)
                    return
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(reply.trickle)

            def do_POST(self) -> None:
                self._serve("POST")

            def do_GET(self) -> None:
                self._serve("GET")

            def do_HEAD(self) -> None:
                self._serve("HEAD")

        return Handler


class ScriptedServer(LoopbackServer):
    """Records every request; answers from `queue` first, in order, then with `answer(seen)`."""

    def __init__(self, answer: Callable[[Seen], Reply]) -> None:
        super().__init__()
        self.answer = answer
        self.queue: list[Reply] = []
        self.seen: list[Seen] = []

    def respond(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            queued = self.queue.pop(0) if self.queue else None
        return queued or self.answer(seen)
