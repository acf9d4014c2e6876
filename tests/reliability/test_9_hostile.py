"""Battery 9: a hostile server, odd values and a restarted database (issue 22).

A model server is untrusted input: a user's own vLLM or Ollama, a proxy, a compromised base
URL. One `queue run` meets every kind of misbehaviour at once, one tool per kind (the tool's
Builder gets the bad answer, its three other personas good ones): wrong-typed fields, absurd
token counts, nesting 200,000 deep, a gzip bomb, a body trickled a byte at a time. Then:
Retry-After values of 31 years, NaN, negative and infinite; usage that lies (negative, zero)
under a --max-cost ceiling; the ceiling at 64 workers with few tasks; a longer model's name
that must not borrow a price; YAML and JSON values Python cannot build and flags out of range;
golden cases that name files outside their folder, and two records at once; and a PostgreSQL
restart under three `queue run` processes. *Lost* counts answers paid for and not kept, units
stuck, stored values that are not sane, hangs and tracebacks.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from panel.rules import MAX_REPORTED_TOKENS, MAX_RETRY_AFTER
from panel.store import Store
from panel.testing.fakes.anthropic import FakeAnthropicBatches, LyingAnthropic
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
from panel.testing.fakes.openai import FakeOpenAI, prompt_text, review_completion
from panel.testing.peak import run_measured
from panel.testing.postgres import PostgresServer
from tests.cli.test_cli import panel
from tests.queue.test_queue import env_for, make_cards, pairs_file, query, run_at_the_ceiling
from tests.reliability.conftest import Tally

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
CARD = EXAMPLES[0]
KEYS = {
    "OPENAI_API_KEY": "sk-test-hostile-9-000000000000",
    "ANTHROPIC_API_KEY": "sk-ant-test-9-00000",
}
BOMB_WIRE = 512 * 1024
TIMEOUT = 2.0
TRICKLE = 0.5
PEAK_LIMIT_MIB = 400


def one_line(result: subprocess.CompletedProcess[str], code: int) -> bool:
    """Return whether a run ended with code and one error line, no traceback."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("panel: error:")]
    return result.returncode == code and len(errors) == 1 and "Traceback" not in result.stderr


# --- 1 every kind of hostile answer, in one queue run ----------------------------------------

KINDS = [*MALFORMED, "nesting 200,000 deep", "gzip bomb", "trickle"]


def hostile_answer(kind: str, seen: Seen) -> Reply:
    if kind == "nesting 200,000 deep":
        return deep_nesting()
    if kind == "gzip bomb":
        return bomb(BOMB_WIRE)
    if kind == "trickle":
        return trickle(review_completion(seen.body), TRICKLE)
    answer = malformed_completions(seen.body)[kind]
    return raw_json(answer) if isinstance(answer, str) else Reply(200, answer)


def test_one_queue_meets_every_kind_of_hostile_answer(tmp_path: Path, tally: Tally) -> None:
    cards = make_cards(tmp_path / "cards", len(KINDS))
    kind_of = {f"Tool {i:02d}": kind for i, kind in enumerate(KINDS)}
    slug_of = {kind: f"tool-{i:02d}" for i, kind in enumerate(KINDS)}

    def mischief(number: int, seen: Seen) -> Reply | None:
        text = prompt_text(seen.body.get("messages", []))
        persona = re.search(r"as the (\w+) and write", text)
        tool = re.search(r"^Name: (.+)$", text, re.MULTILINE)
        if persona is None or persona.group(1) != "Builder" or tool is None:
            return None
        return hostile_answer(kind_of[tool.group(1)], seen)

    db, out = tmp_path / "panel.db", tmp_path / "out"
    with HostileServer(mischief) as server:
        env = {
            **env_for(server, db, out),
            "PANEL_TIMEOUT": f"{TIMEOUT:g}",
            "PANEL_MAX_ATTEMPTS": "2",
            "PANEL_RPM": "6000",
        }
        assert (
            panel("queue", "add", pairs_file(tmp_path, cards, len(KINDS)), env=env).returncode == 0
        )
        argv = [sys.executable, "-m", "panel", "queue", "run", "-c", "8", "--max-attempts", "2"]
        err, out_file = tmp_path / "stderr.txt", tmp_path / "stdout.txt"
        with err.open("w") as stderr, out_file.open("w") as stdout_file:
            # a hang is a loss, not a stuck suite: killed after 300 s (code None)
            ran, peak, wall = run_measured(
                [*argv, "--json"],
                env={**os.environ, **env},
                stdout=stdout_file,
                stderr=stderr,
                limit=300,
            )
        stdout = out_file.read_bytes()
        answered = server.answered
    code = -9 if ran is None else ran
    stderr_text = err.read_text()
    tasks = {
        (tool, persona): (state, error or "")
        for tool, persona, state, error in query(
            db, "SELECT tool, persona, state, last_error FROM tasks"
        )
    }
    reviews = query(db, "SELECT count(*), count(DISTINCT tool || persona) FROM reviews")[0]
    insane = query(
        db,
        f"""SELECT count(*) FROM calls WHERE input_tokens NOT BETWEEN 0 AND {MAX_REPORTED_TOKENS}
            OR output_tokens NOT BETWEEN 0 AND {MAX_REPORTED_TOKENS}
            OR cached_tokens > input_tokens OR cost_usd < 0 OR cost_usd > 1e6""",
    )[0][0]
    ended = code == 1 and "Traceback" not in stderr_text and bool(stdout)
    expected = {
        "gzip bomb": "larger than 8 MiB once decompressed",
        "trickle": f"did not answer in full within {TIMEOUT:g} s",
        "not a completion": "did not answer with a chat completion",
    }
    for kind in KINDS:
        state, error = tasks[(slug_of[kind], "builder")]
        others_done = all(
            tasks[(slug_of[kind], p)][0] == "done" for p in ("skeptic", "futurist", "founder")
        )
        typed = state == "failed" and expected.get(kind, "malformed answer") in error
        tally.add("hostile", survived=ended and typed and others_done, lost=0 if others_done else 1)
    kept = reviews == (3 * len(KINDS), 3 * len(KINDS)) and answered == 3 * len(KINDS)
    tally.add(
        "hostile",
        survived=kept and not insane and peak < PEAK_LIMIT_MIB,
        lost=(3 * len(KINDS) - reviews[1]) + insane,
    )
    tally.note(
        "hostile",
        f"one queue, {len(KINDS)} kinds of hostile answer: exit {code} in {wall:.1f} s, peak "
        f"memory {peak:.0f} MiB with a {BOMB_WIRE // 1024} KiB gzip bomb among them; "
        f"{reviews[0]}/{3 * len(KINDS)} good answers kept",
    )
    assert ended, stderr_text
    assert kept and not insane, (reviews, answered, insane)
    assert peak < PEAK_LIMIT_MIB, f"peak memory {peak:.0f} MiB"
    for kind in KINDS:
        state, error = tasks[(slug_of[kind], "builder")]
        assert state == "failed" and expected.get(kind, "malformed answer") in error, (kind, error)


# --- 2 Retry-After values that are no number of seconds ---------------------------------------


@pytest.mark.parametrize("value", ["999999999", "nan", "-1", "inf"])
def test_a_retry_after_never_pauses_more_than_a_minute(
    tmp_path: Path, tally: Tally, value: str
) -> None:
    def limited(number: int, seen: Seen) -> Reply:
        return Reply(429, {"error": {"message": "rate limited"}}, {"Retry-After": value})

    db = tmp_path / "panel.db"
    with HostileServer(limited) as paused, HostileServer() as other:
        env = {**KEYS, "PANEL_RPM": "600", "PANEL_MAX_ATTEMPTS": "1", "PANEL_DB": str(db)}
        common = ["review", CARD, "--persona", "builder", "--provider", "openai", "--model", "m"]
        hit = panel(*common, "--base-url", paused.base_url, env=env, timeout=60)
        started = time.monotonic()
        try:
            after = panel(*common, "--base-url", other.base_url, env=env, timeout=60)
            hung = False
        except subprocess.TimeoutExpired:
            after, hung = None, True
        took = time.monotonic() - started
    pauses = query(db, "SELECT tat FROM rate_limits WHERE kind = 'pause'")
    status = json.loads(panel("queue", "status", "--json", "--db", db).stdout)["pauses"]
    capped = all(p["seconds_left"] <= MAX_RETRY_AFTER for p in status)
    shown = len(status) == (1 if value == "999999999" else 0) == len(pauses)
    ok = one_line(hit, 1) and not hung and after is not None and after.returncode == 0
    tally.add("hostile", survived=ok and capped and shown, lost=int(hung))
    assert ok and capped and shown, (hit.stderr, status)
    assert took < 30


# --- 3 usage that lies, under a ceiling --------------------------------------------------------


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": -10_000_000, "output_tokens": 100},
        {"input_tokens": 0, "output_tokens": 0},
        {"input_tokens": 300, "output_tokens": 100},
    ],
    ids=["negative", "zero", "honest"],
)
def test_usage_that_lies_does_not_lift_the_ceiling(
    tmp_path: Path, tally: Tally, usage: dict[str, Any]
) -> None:
    args = ["--provider", "anthropic", "--model", "claude-haiku-4-5", "--max-cost", "0.012"]
    args += ["--db", str(tmp_path / "panel.db"), "--out", str(tmp_path / "out")]
    with LyingAnthropic(usage) as server:
        env = {**KEYS, "ANTHROPIC_BASE_URL": server.url, "PANEL_MAX_ATTEMPTS": "1"}
        result = panel("review", *EXAMPLES[:6], *args, env=env, timeout=300)
        calls = server.live_calls
    [(spent,)] = query(tmp_path / "panel.db", "SELECT sum(cost_usd) FROM calls")
    held = result.returncode == 3 and calls < 24 and 0 < spent <= 0.012
    tally.add("hostile", survived=held and "Traceback" not in result.stderr)
    tally.note(
        "hostile",
        f"usage {usage}: {calls} of 24 calls under a $0.012 ceiling, exit {result.returncode}",
    )
    assert held, (result.returncode, calls, spent, result.stderr)


# --- 4 the ceiling with 64 workers and few tasks ------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 2])
def test_the_ceiling_stops_64_workers_with_exit_3(
    tmp_path: Path, tally: Tally, attempt: int
) -> None:
    cards = make_cards(tmp_path / "cards", 4)
    db = tmp_path / "panel.db"
    pairs = pairs_file(tmp_path, cards, 3)
    assert panel("queue", "add", pairs, "--samples", "3", "--db", db).returncode == 0
    with FakeAnthropicBatches(live=True) as server:
        env = {**KEYS, "ANTHROPIC_BASE_URL": server.url}
        try:
            result = run_at_the_ceiling(db, tmp_path / "out", env)
            code = result.returncode
        except subprocess.TimeoutExpired:
            code = None
    tally.add("hostile", survived=code == 3, lost=int(code is None))
    assert code == 3


# --- 5 a price is the model's own ---------------------------------------------------------------


def test_a_longer_models_name_borrows_no_price(tmp_path: Path, tally: Tally) -> None:
    with FakeAnthropicBatches(live=True) as server:
        env = {**KEYS, "ANTHROPIC_BASE_URL": server.url, "PANEL_MAX_COST": "1"}
        args = ["--provider", "anthropic", "--db", tmp_path / "p.db", "--out", tmp_path / "o"]
        longer = panel("review", CARD, "--model", "claude-opus-4-7", *args, env=env)
        dated = panel("review", CARD, "--model", "claude-haiku-4-5-20251001", *args, env=env)
    refused = one_line(longer, 2) and "PANEL_MAX_COST: the price of" in longer.stderr
    tally.add("hostile", survived=refused and dated.returncode == 0, tried=2)
    assert refused and dated.returncode == 0, (longer.stderr, dated.stderr)


# --- 6 values Python cannot build, flags out of range --------------------------------------------

VALUES = ["2024-13-01", "2024-02-30", "0000-01-01", '!!float "abc"', "9" * 5000]


def bad_inputs(tmp_path: Path) -> list[list[Any]]:
    """Return argv of runs that each meet one bad value (every one must be one line, exit 2)."""
    runs: list[list[Any]] = []
    for i, value in enumerate(VALUES):
        card = tmp_path / f"card{i}.yaml"
        card.write_text(CARD.read_text() + f"launched: {value}\n")
        personas = tmp_path / f"personas{i}"
        personas.mkdir()
        for persona in (REPO / "personas").glob("*.yaml"):
            extra = f"since: {value}\n" if persona.name == "builder.yaml" else ""
            (personas / persona.name).write_text(persona.read_text() + extra)
        case = tmp_path / f"case{i}"
        case.mkdir()
        (case / "case.yaml").write_text(f"cards: []\nwhen: {value}\n")
        runs += [
            ["review", card],
            ["review", CARD, "--personas", personas],
            ["golden", "check", case],
        ]
    big = tmp_path / "big.json"
    big.write_text(
        json.dumps({"name": "Big", "tagline": "t", "description": "d"})[:-1] + ', "n": 1e400}'
    )
    lines = tmp_path / "pairs.jsonl"
    lines.write_text('{"a": "x", "b": "y", "n": ' + "9" * 5000 + "}\n")
    runs += [["review", big], ["queue", "add", lines]]
    runs += [
        ["log", "--db", "postgresql://u@[::1/db"],
        ["review", CARD, "--db", "postgres://[fe80::1"],
    ]
    runs += [["review", CARD, "--provider", "openai", "--base-url", "http://[::1/v1"]]
    for lease in ("nan", "inf", "0", "-1", "1e309"):
        runs.append(["queue", "run", "--lease", lease])
    runs += [["queue", "run", "--poll-interval", "nan"], ["log", "-n", "99999999999999999999"]]
    runs += [["review", CARD, "--max-cost", "inf"], ["review", CARD, "--max-cost", "nan"]]
    return runs


def test_values_python_cannot_build_and_flags_out_of_range_are_one_line(
    tmp_path: Path, tally: Tally
) -> None:
    db = tmp_path / "panel.db"
    Store(db).close()
    env = {**KEYS, "PANEL_DB": str(db), "PANEL_PROVIDER": "openai", "PANEL_MAX_ATTEMPTS": "1"}
    env["PANEL_BASE_URL"] = "http://127.0.0.1:9/v1"  # opens; the bad value must stop the run
    failures = []
    runs = bad_inputs(tmp_path)
    for argv in runs:
        result = panel(*argv, env=env, timeout=60)
        ok = one_line(result, 2)
        tally.add("hostile", survived=ok, lost=int("Traceback" in result.stderr))
        if not ok:
            failures.append((argv[:3], result.returncode, result.stderr[-300:]))
    tally.note(
        "hostile", f"bad values and flags: {len(runs) - len(failures)}/{len(runs)} one line, exit 2"
    )
    assert not failures, failures


# --- 7 golden cases keep to their folder, and to one writer -----------------------------------


def test_golden_cases_read_only_their_own_files_and_one_record_at_a_time(
    tmp_path: Path, tally: Tally
) -> None:
    import shutil

    private = tmp_path / "private.yaml"
    private.write_text(CARD.read_text())
    source = REPO / "tests" / "golden" / "local-open-models"
    with FakeOpenAI() as server:
        record = ["golden", "record", "--provider", "openai", "--base-url", server.base_url]
        for how, spec in (
            ("parent", "cards: [../private.yaml]\n"),
            ("absolute", f"cards: [{private}]\n"),
        ):
            case = tmp_path / how
            shutil.copytree(source, case)
            (case / "case.yaml").write_text(spec)
            result = panel(*record[:2], case, *record[2:], "--model", "m", env=KEYS)
            ok = one_line(result, 2) and "outside the case's folder" in result.stderr
            tally.add("hostile", survived=ok and server.requests == 0, lost=server.requests)
            assert ok and server.requests == 0, result.stderr
    case = tmp_path / "locked"
    shutil.copytree(source, case)
    holder = os.open(case, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        second = panel("golden", "update", case)
    finally:
        os.close(holder)
    ok = one_line(second, 2) and "another `panel golden record`" in second.stderr
    tally.add("hostile", survived=ok)
    assert ok, second.stderr


# --- 8 a PostgreSQL restart under three workers ---------------------------------------------------


@pytest.mark.parametrize("mode", ["fast", "immediate"], ids=["restart", "crash"])
def test_a_postgresql_restart_under_three_workers_loses_nothing(
    tmp_path: Path, postgres: PostgresServer, tally: Tally, mode: str
) -> None:
    tools, pairs, workers, concurrency = 16, 24, 3, 4
    db, out = postgres.database(), tmp_path / "out"
    cards = make_cards(tmp_path / "cards", tools)
    with FakeOpenAI(latency=0.3) as server:
        env = {**os.environ, **env_for(server, db, out)}
        assert panel("queue", "add", pairs_file(tmp_path, cards, pairs), env=env).returncode == 0
        argv = [sys.executable, "-m", "panel", "queue", "run", "-c", str(concurrency), "--json"]
        procs = [
            subprocess.Popen(
                [*argv, "--lease", "5"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(workers)
        ]
        while server.requests < 16:  # every worker is mid-run, with calls in flight
            time.sleep(0.01)
        in_flight = server.requests - server.answered
        restarted = time.monotonic()
        postgres.restart(mode)
        back = time.monotonic() - restarted
        ends = [proc.communicate(timeout=180) for proc in procs]
        asked = server.requests
    codes = [proc.returncode for proc in procs]
    jobs = dict(query(db, "SELECT state, count(*) FROM jobs GROUP BY state"))
    stored, distinct = query(db, "SELECT count(*), count(DISTINCT (tool, persona)) FROM reviews")[0]
    again = asked - 4 * tools
    finished = codes == [0] * workers and jobs == {"done": pairs}
    whole = stored == distinct == 4 * tools
    tally.add(
        "hostile",
        survived=finished and whole and again <= workers * concurrency,
        lost=(4 * tools - distinct) + (pairs - jobs.get("done", 0)),
    )
    tally.note(
        "hostile",
        f"PostgreSQL {'restarted' if mode == 'fast' else 'crashed and restarted'} ({back:.1f} s) under {workers} workers with {in_flight} calls in "
        f"flight: exits {codes}, jobs {jobs}, reviews {distinct}/{4 * tools}, calls made again "
        f"{again} (at most {workers * concurrency} in flight)",
    )
    assert finished, [err[-500:] for _, err in ends]
    assert whole, (stored, distinct)
    assert 0 <= again <= workers * concurrency
