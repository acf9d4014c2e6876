"""What a hostile model server costs panel: peak memory under a gzip bomb, and the time to fail a
call that trickles (figures, not a test; `make bench-hostile`).

Each figure is one `panel review --persona builder` against a loopback server (one call, one
attempt): the bomb is a gzip stream of zeros of the given size on the wire (about a thousand
times larger inflated); the trickle sends a valid answer one byte every 0.5 s under
PANEL_TIMEOUT. Peak memory is the process's maximum resident set (wait4); the times are wall
clock, start-up included; a run with a valid answer is the baseline beside them.
With --source DIR the same runs use another checkout's panel (e.g. a copy of main) to compare.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from panel.testing.fakes.hostile import HostileServer, bomb, gzip_bomb, trickle
from panel.testing.fakes.http import Reply, Seen
from panel.testing.fakes.openai import review_completion
from panel.testing.peak import run_measured

REPO = Path(__file__).resolve().parents[1]
CARD = REPO / "examples" / "smolvlm-3b.yaml"


def run(
    server: HostileServer, env: dict[str, str], limit: float
) -> tuple[int | None, float, float]:
    """Return (exit code or None if stopped at limit, peak MiB, seconds) of one review."""
    argv = [sys.executable, "-m", "panel", "review", str(CARD), "--persona", "builder"]
    with tempfile.TemporaryDirectory() as scratch:
        full = {
            **os.environ,
            **env,
            "PANEL_PROVIDER": "openai",
            "PANEL_BASE_URL": server.base_url,
            "PANEL_MODEL": "hostile-model",
            "PANEL_DB": f"{scratch}/panel.db",
            "PANEL_OUT": f"{scratch}/out",
            "PANEL_MAX_ATTEMPTS": "1",
            "OPENAI_API_KEY": "sk-bench-hostile-0000000000",
        }
        code, peak, took = run_measured(argv, env=full, cwd=scratch, limit=limit)
    return code, peak, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="another checkout's folder to run instead")
    parser.add_argument("--timeout", type=float, default=2.0, help="PANEL_TIMEOUT for the trickle")
    parser.add_argument(
        "--limit", type=float, default=120.0, help="seconds before a run is stopped"
    )
    args = parser.parse_args()
    env = {"PYTHONPATH": str(args.source.resolve())} if args.source else {}
    print(f"panel from {args.source or REPO}")

    def good(number: int, seen: Seen) -> Reply:
        return Reply(200, review_completion(seen.body))

    with HostileServer(good) as server:
        code, peak, took = run(server, env, args.limit)
        print(f"{'a valid answer':<34} exit {code}   peak {peak:7.0f} MiB   {took:6.1f} s")
    for wire in (512 * 1024, 2 * 1024 * 1024):
        gzip_bomb(wire)  # made before the clock starts
        with HostileServer(lambda n, seen, w=wire: bomb(w)) as server:
            code, peak, took = run(server, env, args.limit)
        label = f"gzip bomb, {wire // 1024} KiB on the wire"
        print(f"{label:<34} exit {code}   peak {peak:7.0f} MiB   {took:6.1f} s")
    slow = {"PANEL_TIMEOUT": f"{args.timeout:g}"}
    with HostileServer(lambda n, seen: trickle(review_completion(seen.body), 0.5)) as server:
        code, peak, took = run(server, {**env, **slow}, args.limit)
    label = f"trickle, 1 B / 0.5 s, timeout {args.timeout:g} s"
    print(f"{label:<34} exit {code}   peak {peak:7.0f} MiB   {took:6.1f} s")
    print("exit None: stopped by the bench after --limit seconds (the call was still going)")


if __name__ == "__main__":
    main()
