"""A broken or hostile model server (issue 22, findings 1 to 5), met as a user meets it: `panel`
run against a loopback server that misbehaves. Nothing hangs, nothing grows without bound,
nothing a server says about itself is believed unchecked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from panel.testing.fakes.anthropic import LyingAnthropic
from panel.testing.fakes.hostile import (
    MALFORMED,
    HostileServer,
    bomb,
    deep_nesting,
    malformed_completions,
    raw_json,
    trickle,
)
from panel.testing.fakes.http import Reply, Seen
from panel.testing.fakes.openai import review_completion
from panel.testing.peak import run_measured
from tests.cli.test_cli import panel
from tests.queue.test_queue import make_cards, pairs_file, query

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "examples" / "smolvlm-3b.yaml"
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
KEY = "sk-test-hostile-key-0123456789"


def env_for(server: HostileServer, tmp_path: Path, **more: str) -> dict[str, str]:
    """The environment of a run against server, one attempt per call unless more says."""
    return {
        "PANEL_PROVIDER": "openai",
        "PANEL_BASE_URL": server.base_url,
        "PANEL_MODEL": "hostile-model",
        "PANEL_DB": str(tmp_path / "panel.db"),
        "PANEL_OUT": str(tmp_path / "out"),
        "PANEL_MAX_ATTEMPTS": "1",
        "OPENAI_API_KEY": KEY,
        **more,
    }


def one_line_error(result: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    """Assert the run ended with code and one error line holding fragment, no traceback."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("panel: error:")]
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(errors) == 1 and fragment in errors[0], result.stderr


def peak_run(argv: list[str], env: dict[str, str], folder: Path) -> tuple[int, str, float, float]:
    """Run argv; return (exit code, stderr, peak resident memory in MiB, seconds)."""
    err = folder / "stderr.txt"
    with err.open("w") as stderr:
        code, peak, took = run_measured(argv, env={**os.environ, **env}, stderr=stderr)
    assert code is not None
    return code, err.read_text(), peak, took


# --- finding 1: a Retry-After of 31 years, or NaN --------------------------------------------


def test_a_huge_retry_after_is_capped_kept_per_endpoint_and_shown(tmp_path: Path) -> None:
    """Finding 1: one 429 with `Retry-After: 999999999` while --rpm is set paused every later run
    of that provider name for 31 years; `Retry-After: nan` crashed with a traceback."""

    def first(number: int, seen: Seen) -> Reply:
        return Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "999999999"})

    with HostileServer(first) as paused, HostileServer() as other:
        env = env_for(paused, tmp_path, PANEL_RPM="600")
        hit = panel("review", CARD, "--persona", "builder", env=env, timeout=60)
        one_line_error(hit, 1, "HTTP 429")
        [(provider, endpoint, left)] = query(
            tmp_path / "panel.db",
            "SELECT provider, endpoint, tat - (julianday('now') - 2440587.5) * 86400.0 "
            "FROM rate_limits WHERE kind = 'pause'",
        )
        assert (provider, endpoint) == ("openai", paused.base_url)
        assert 0 < left <= 60, "a stored pause is at most the 60 s cap"
        # Another server of the same provider name is not paused by it.
        started = time.monotonic()
        elsewhere = panel(
            "review",
            CARD,
            "--persona",
            "builder",
            env=env_for(other, tmp_path, PANEL_RPM="600"),
            timeout=60,
        )
        assert elsewhere.returncode == 0, elsewhere.stderr
        assert time.monotonic() - started < 30 and other.answered == 1
    status = panel("queue", "status", env=env)
    assert f"openai at {paused.base_url} is paused by a Retry-After until" in status.stdout
    pauses = json.loads(panel("queue", "status", "--json", env=env).stdout)["pauses"]
    assert [p["endpoint"] for p in pauses] == [paused.base_url]


@pytest.mark.parametrize("value", ["nan", "-5", "inf", "1e400"])
def test_a_retry_after_that_is_no_number_of_seconds_pauses_nothing(
    tmp_path: Path, value: str
) -> None:
    """Finding 1: `Retry-After: nan` ended in an IntegrityError traceback."""
    hostile = lambda n, seen: Reply(429, {"error": {"message": "no"}}, {"Retry-After": value})  # noqa: E731
    with HostileServer(hostile) as server:
        env = env_for(server, tmp_path, PANEL_RPM="600")
        result = panel("review", CARD, "--persona", "builder", env=env, timeout=60)
    one_line_error(result, 1, "HTTP 429")
    assert query(
        tmp_path / "panel.db", "SELECT count(*) FROM rate_limits WHERE kind = 'pause'"
    ) == [(0,)]


# --- finding 2: a gzip bomb ----------------------------------------------------------------


def test_a_gzip_bomb_fails_the_call_and_memory_stays_bounded(tmp_path: Path) -> None:
    """Finding 2: 0.5 MB on the wire took the process to 1.1 GB, and the run exited 0."""
    with HostileServer(lambda n, seen: bomb(512 * 1024)) as server:
        argv = [sys.executable, "-m", "panel", "review", str(CARD), "--persona", "builder"]
        code, stderr, peak_mib, _ = peak_run(argv, env_for(server, tmp_path), tmp_path)
    assert code == 1 and "Traceback" not in stderr, stderr
    assert "is larger than 8 MiB once decompressed (max_response_bytes)" in stderr
    assert peak_mib < 400, f"peak memory {peak_mib:.0f} MiB"


def test_a_smaller_cap_is_a_setting(tmp_path: Path) -> None:
    big = lambda n, seen: Reply(200, review_completion(seen.body) | {"pad": "x" * 200_000})  # noqa: E731
    with HostileServer(big) as server:
        env = env_for(server, tmp_path, PANEL_MAX_RESPONSE_BYTES="65536")
        capped = panel("review", CARD, "--persona", "builder", env=env)
        one_line_error(capped, 1, "larger than 64 KiB once decompressed")
        assert (
            panel(
                "review", CARD, "--persona", "builder", env={**env, "PANEL_MAX_RESPONSE_BYTES": ""}
            ).returncode
            == 0
        )


# --- finding 3: a server that trickles -----------------------------------------------------


def test_a_trickling_server_fails_the_call_within_the_timeout(tmp_path: Path) -> None:
    """Finding 3: a byte every 0.5 s kept one call alive far past PANEL_TIMEOUT=2 (the timeout
    was per read, not per call)."""
    slow = lambda n, seen: trickle(review_completion(seen.body), 0.5)  # noqa: E731
    with HostileServer(slow) as server:
        started = time.monotonic()
        result = panel(
            "review",
            CARD,
            "--persona",
            "builder",
            env=env_for(server, tmp_path, PANEL_TIMEOUT="2"),
            timeout=60,
        )
        took = time.monotonic() - started
    one_line_error(result, 1, "did not answer in full within 2 s")
    assert took < 2 + 8, f"{took:.1f} s for a 2 s timeout (start-up included)"


# --- finding 4: fields of the wrong type ----------------------------------------------------


@pytest.mark.parametrize("kind", [*MALFORMED, "nesting 200,000 deep"])
def test_a_malformed_answer_is_one_typed_error(tmp_path: Path, kind: str) -> None:
    """Finding 4: a number as content, a string message, usage as a list or text, cached_tokens
    "x", 10^30 tokens or 200,000-deep nesting crashed the process with a traceback."""

    def hostile(number: int, seen: Seen) -> Reply:
        if kind == "nesting 200,000 deep":
            return deep_nesting()
        answer = malformed_completions(seen.body)[kind]
        return raw_json(answer) if isinstance(answer, str) else Reply(200, answer)

    with HostileServer(hostile) as server:
        result = panel("review", CARD, "--persona", "builder", env=env_for(server, tmp_path))
    fragment = (
        "did not answer with a chat completion"
        if kind == "not a completion"
        else "malformed answer"
    )
    one_line_error(result, 1, fragment)
    rows = query(tmp_path / "panel.db", "SELECT outcome, input_tokens, cost_usd FROM calls")
    assert rows == [("error", 0, None)]


def test_a_queue_worker_survives_malformed_answers_and_keeps_the_paid_ones(
    tmp_path: Path,
) -> None:
    """Finding 4: in `queue run` one malformed answer killed the worker, discarded the answers
    already paid for, and every rerun crashed the same way."""
    cards = make_cards(tmp_path / "cards", 6)
    kinds = iter(MALFORMED * 10)

    def hostile(number: int, seen: Seen) -> Reply | None:
        if "Tool 03" not in json.dumps(seen.body):
            return None
        answer = malformed_completions(seen.body)[next(kinds)]
        return raw_json(answer) if isinstance(answer, str) else Reply(200, answer)

    with HostileServer(hostile) as server:
        env = env_for(server, tmp_path, PANEL_MAX_ATTEMPTS="2")
        assert panel("queue", "add", pairs_file(tmp_path, cards, 6), env=env).returncode == 0
        run = panel("queue", "run", "-c", "8", "--json", env=env, timeout=300)
        again = panel("queue", "run", "-c", "8", "--json", env=env, timeout=300)
    assert "Traceback" not in run.stderr + again.stderr
    assert run.returncode == 1 and again.returncode == 1, run.stderr
    figures = json.loads(run.stdout)["run"]
    assert figures["reviews_done"] == 20 and figures["reviews_failed"] == 4
    assert server.answered == 20, "every valid answer was paid for once and kept"
    assert query(tmp_path / "panel.db", "SELECT count(*) FROM reviews") == [(20,)]


# --- finding 5: token counts are believed -------------------------------------------------------


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": -10_000_000, "output_tokens": 100},
        {"input_tokens": 0, "output_tokens": 0},
    ],
    ids=["negative", "zero"],
)
def test_usage_a_server_lies_about_cannot_lift_the_ceiling(
    tmp_path: Path, usage: dict[str, Any]
) -> None:
    """Finding 5: `input_tokens: -10000000` let --max-cost 0.012 run 24 of 24 calls (honest
    usage stops at 5, exit 3)."""
    env = {"ANTHROPIC_API_KEY": "sk-ant-test-000000000000", "PANEL_MAX_ATTEMPTS": "1"}
    args = ["--provider", "anthropic", "--model", "claude-haiku-4-5", "--max-cost", "0.012"]
    args += ["--db", str(tmp_path / "panel.db"), "--out", str(tmp_path / "out"), "--json"]
    with LyingAnthropic(usage) as server:
        env["ANTHROPIC_BASE_URL"] = server.url
        result = panel("review", *EXAMPLES[:6], *args, env=env, timeout=300)
        calls = server.live_calls
    assert result.returncode == 3, result.stderr
    assert "cost ceiling reached" in result.stderr and "Traceback" not in result.stderr
    assert calls <= 8, f"{calls} calls went out under a $0.012 ceiling"
    [(spent,)] = query(tmp_path / "panel.db", "SELECT sum(cost_usd) FROM calls")
    assert 0 < spent <= 0.012


def test_log_json_is_always_json(tmp_path: Path) -> None:
    """Finding 5: a usage of 1e400 was stored as infinity, and `panel log --json` printed
    `Infinity`, which is not JSON."""
    inf = lambda n, seen: raw_json(malformed_completions(seen.body)["prompt_tokens 1e400"])  # noqa: E731
    with HostileServer(inf) as server:
        env = env_for(server, tmp_path)
        assert panel("review", CARD, "--persona", "builder", env=env).returncode == 1
    db = tmp_path / "panel.db"
    # A store an older panel filled with infinity reads as null too.
    import sqlite3

    with sqlite3.connect(db) as con:
        con.execute("UPDATE calls SET cost_usd = 1e999")
    logged = panel("log", "--json", "--db", db)
    assert logged.returncode == 0, logged.stderr

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in panel log --json")

    calls = json.loads(logged.stdout, parse_constant=refuse)
    assert [c["cost_usd"] for c in calls] == [None]


def test_a_hostile_cassette_is_one_line(tmp_path: Path) -> None:
    """Finding 4: token counts of 10^30 in a cassette (a file anyone may commit) crashed replay
    with an OverflowError."""
    cassettes = tmp_path / "cassettes"
    with HostileServer() as server:
        env = env_for(server, tmp_path)
        recorded = panel("review", CARD, "--persona", "builder", "--record", cassettes, env=env)
        assert recorded.returncode == 0, recorded.stderr
    [cassette] = cassettes.glob("*.json")
    data = json.loads(cassette.read_text())
    data["answer"]["input_tokens"] = 10**30
    cassette.write_text(json.dumps(data))
    replay = ["--provider", "replay", "--cassettes", cassettes, "--fresh", "--persona", "builder"]
    result = panel("review", CARD, *replay, "--db", tmp_path / "replay.db")
    one_line_error(result, 2, "not a panel cassette (input tokens must be a whole number")
