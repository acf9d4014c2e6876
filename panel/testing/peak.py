"""Run a command and measure its peak resident memory, for the tests and benchmarks that bound
what a hostile server can make panel hold.

`wait4`'s `ru_maxrss` is no measure of a child that Python started: Linux counts in it the
memory of the process before `exec`, a copy of (or, with vfork, the very) memory of the parent,
so a child started by a large pytest process reads as large as pytest. The kernel's per-process
high-water mark (`VmHWM` in /proc/PID/status) belongs to the program after `exec` alone; it is
read every few milliseconds until the program ends.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import IO, Any

POLL_SECONDS = 0.01


def high_water_mib(pid: int) -> float | None:
    """Return the peak resident memory of a running process in MiB (None once it has ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def run_measured(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path | str | None = None,
    stdout: int | IO[Any] | None = subprocess.DEVNULL,
    stderr: int | IO[Any] | None = subprocess.DEVNULL,
    limit: float | None = None,
) -> tuple[int | None, float, float]:
    """Run argv; return (exit code, or None if it ran past `limit` seconds and was killed; its
    peak resident memory in MiB; seconds taken)."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=stdout, stderr=stderr)
    peak, killed = 0.0, False
    while proc.poll() is None:
        peak = max(peak, high_water_mib(proc.pid) or 0.0)
        if limit is not None and not killed and time.monotonic() - started > limit:
            proc.kill()
            killed = True
        time.sleep(POLL_SECONDS)
    return (None if killed else proc.returncode), peak, time.monotonic() - started
