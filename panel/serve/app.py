"""The app of `panel serve`, assembled, and the uvicorn server that runs it: one process, or
several worker processes sharing one listening socket.

Each worker builds its own app from the settings the command line resolved (handed over in
the environment as JSON, secrets included: the environment of a process is its user's alone).
Workers share nothing but the store: votes, vote budgets and the queue live there, so any
number of processes on any number of machines serve one site when the store is PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount

from panel.compare import write_script
from panel.config import SECRET_SETTINGS, Settings
from panel.errors import InputError, PanelError, StoreUnavailable, add_secret
from panel.personas import load_personas
from panel.serve.api import ROUTES, http_error, refused, store_error
from panel.serve.desk import Desk, Refused
from panel.serve.files import SiteFiles
from panel.serve.guard import LOOPBACK_HOSTS, Guard, Voters
from panel.serve.keeper import Keeper
from panel.serve.keys import signing_key

ENV = "PANEL_SERVE_APP"
"""The variable that hands a worker its settings (JSON)."""

REBUILD_SECONDS = 10.0


@dataclass(frozen=True)
class Serving:
    """What a server runs with: the settings, and how often the site keeper looks (0: never
    rebuild)."""

    settings: Settings
    rebuild_every: float = REBUILD_SECONDS

    def to_json(self) -> str:
        values = self.settings.model_dump(mode="json", exclude=set(SECRET_SETTINGS))
        for name in SECRET_SETTINGS:
            secret = getattr(self.settings, name)
            values[name] = None if secret is None else secret.get_secret_value()
        return json.dumps({"settings": values, "rebuild_every": self.rebuild_every})

    @classmethod
    def from_json(cls, text: str) -> Serving:
        data = json.loads(text)
        settings = Settings.model_validate(data["settings"])
        for name in SECRET_SETTINGS:
            secret = getattr(settings, name)
            if secret is not None:
                add_secret(secret.get_secret_value())
        return cls(settings, float(data["rebuild_every"]))


def make_app(serving: Serving) -> Starlette:
    """Return the app: the API's routes, then the site's files under /; the store opens and the
    keeper starts when the server starts the app."""
    settings = serving.settings
    personas = load_personas(settings.personas_dir())
    key, _ = signing_key(settings)
    desk = Desk(settings, personas)
    keeper = Keeper(settings, personas, serving.rebuild_every)
    settings.out.mkdir(parents=True, exist_ok=True)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await desk.open()
        await asyncio.to_thread(write_script, settings.out)
        task = asyncio.create_task(keeper.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await desk.close()

    app = Starlette(
        routes=[*ROUTES, Mount("/", SiteFiles(directory=settings.out, html=True))],
        middleware=_middleware(settings, Voters(key)),
        exception_handlers={
            HTTPException: http_error,
            StoreUnavailable: store_error,
            Refused: refused,
        },
        lifespan=lifespan,
    )
    app.state.desk = desk
    app.state.settings = settings
    return app


def _middleware(settings: Settings, voters: Voters) -> list[Middleware]:
    """Return the middleware, outermost first: the trusted proxy's forwarding headers (only
    when one is configured), then the guard."""
    found = []
    if settings.trusted_proxy:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        found.append(Middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy))
    hosts = tuple(settings.allowed_hosts) or LOOPBACK_HOSTS
    limits = {"max_headers": settings.max_headers, "max_header_bytes": settings.max_header_bytes}
    found.append(Middleware(Guard, voters=voters, hosts=hosts, **limits))
    return found


def is_loopback(host: str) -> bool:
    """Return whether --host is a loopback address or name (only then may allowed_hosts be
    left empty)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def app_from_env() -> Starlette:
    """The factory each uvicorn worker calls: the app of the settings in $PANEL_SERVE_APP."""
    return make_app(Serving.from_json(os.environ[ENV]))


def listening_socket(host: str, port: int) -> socket.socket:
    """Return a socket bound to host:port (port 0: a free one), or raise InputError in one line."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"cannot listen on {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def run(serving: Serving, sock: socket.socket, *, workers: int, log_level: str) -> None:
    """Serve on sock until interrupted: one uvicorn process, or `workers` of them."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from panel.serve.wire import Edge, EdgeConfig

    os.environ[ENV] = serving.to_json()
    settings = serving.settings
    config = EdgeConfig(
        f"{__name__}:app_from_env",
        edge=Edge(
            max_header_bytes=settings.max_header_bytes,
            header_seconds=settings.header_seconds,
            max_connections=connection_cap(settings.max_connections),
            max_client_connections=settings.max_client_connections,
            trusted_proxy=tuple(settings.trusted_proxy),
        ),
        timeout_keep_alive=settings.keep_alive_seconds,
        ws="none",
        factory=True,
        workers=workers,
        log_level=log_level,
        proxy_headers=False,  # the app reads them itself, from a configured proxy only
        server_header=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )
    if workers > 1:
        Multiprocess(config, sockets=[sock]).run()
        return
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if not server.started:
        raise PanelError("the server did not start (see the lines above)")


FILES_KEPT = 64
"""Open files a server process keeps for itself (the store, the site, logs) besides its
connections."""


def connection_cap(wanted: int) -> int:
    """Return the cap on open connections per process: the one wanted, lowered to what the
    process's file limit (`ulimit -n`) leaves once FILES_KEPT are set aside."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(4, min(wanted, soft - FILES_KEPT))


def describe(serving: Serving, sock: socket.socket, workers: int) -> dict[str, Any]:
    """Return what a starting server says of itself: where it listens, what it serves."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    settings = serving.settings
    return {
        "url": f"http://{shown}:{port}/",
        "site": str(settings.out),
        "workers": workers,
        "cards": settings.submit_token is not None,
    }
