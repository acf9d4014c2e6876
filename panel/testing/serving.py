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
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RunningServer:
    """A started `panel serve`: its URL (ending in /) and its process."""

    url: str
    process: subprocess.Popen[str]

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
    (stderr) goes to `log`, else is dropped."""
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
        server = RunningServer(json.loads(line)["url"], process)
        wait_until_healthy(server.url, timeout)
        yield server
    finally:
        stop(process)
        if log is not None:
            stderr.close()  # type: ignore[union-attr]


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
