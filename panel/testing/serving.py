"""A real `panel serve` for tests and benchmarks: the command itself in a child process, on a free
loopback port, stopped (SIGINT, as Ctrl-C would) when done.

The child prints where it listens as one JSON line (`--json`); the helper waits until
/healthz answers before handing the server over.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass
class RunningServer:
    """A started `panel serve`: its URL (ending in /) and its process."""

    url: str
    process: subprocess.Popen[str]
    access_log: Path | None = None
    """Where its access log goes (one line per request), if anywhere."""

    def requests(self, needle: str) -> int:
        """Return how many lines of the access log hold needle (e.g. '"POST /api/votes').
        The log is written as requests end: a request just answered may be a moment late."""
        if self.access_log is None or not self.access_log.exists():
            return 0
        return self.access_log.read_text(encoding="utf-8").count(needle)

    @property
    def origin(self) -> str:
        return self.url.rstrip("/")


@contextmanager
def panel_serve(
    *args: str | Path,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    timeout: float = 60.0,
) -> Iterator[RunningServer]:
    """Run `panel serve --host 127.0.0.1 --port 0 --json ARGS` until the block ends; its log
    (stderr) goes to `log` and its access log (stdout) beside it (`.access`), else both are
    dropped."""
    argv = [sys.executable, "-m", "panel", "serve", "--host", "127.0.0.1", "--port", "0", "--json"]
    stderr = open(log, "w", encoding="utf-8") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [*argv, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            process.wait(timeout)
            detail = log.read_text(encoding="utf-8") if log is not None else ""
            raise RuntimeError(f"panel serve did not start (exit {process.returncode}): {detail}")
        access = log.with_suffix(".access") if log is not None else None
        server = RunningServer(json.loads(line)["url"], process, access)
        # The access log goes to stdout: keep reading it, or a full pipe would stall the server.
        threading.Thread(target=_drain, args=(process.stdout, access), daemon=True).start()
        wait_until_healthy(server.url, timeout)
        yield server
    finally:
        stop(process)
        if log is not None:
            stderr.close()  # type: ignore[union-attr]


def _drain(stream: IO[str], access: Path | None) -> None:
    """Copy the server's stdout (its access log) to the file access, or drop it."""
    sink = open(access, "a", encoding="utf-8") if access else None  # noqa: SIM115
    try:
        for line in stream:
            if sink is not None:
                sink.write(line)
                sink.flush()
    except ValueError:  # the stream was closed under us: the server stopped
        pass
    finally:
        if sink is not None:
            sink.close()


def wait_until_healthy(url: str, timeout: float) -> None:
    """Wait until GET /healthz answers 200, or raise after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "healthz", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"panel serve at {url} did not become healthy in {timeout} s")
        time.sleep(0.1)


def stop(process: subprocess.Popen[str]) -> None:
    """Interrupt the server as Ctrl-C would, then kill it if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
