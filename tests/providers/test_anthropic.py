"""The anthropic provider end to end: `panel review` against a loopback Messages API server.

The server, a thread in the test process, speaks the Messages wire format and answers the forced
`submit_review` tool call with a valid review built from the tool's input schema; the CLI runs
in a subprocess, as a user would run it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from panel.testing.fakes.http import Reply, ScriptedServer, Seen
from panel.testing.fakes.openai import answer_for

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "examples" / "smolvlm-3b.yaml"
PANEL = Path(sys.executable).with_name("panel")
SECRET = "sk-ant-test-SECRET123"
PANEL_KEYS = ["builder", "skeptic", "futurist", "founder"]
TOOL_CHOICE = {"type": "tool", "name": "submit_review"}

# --- a scripted Messages API server ------------------------------------------------------------


def tool_call(seen: Seen) -> Reply:
    """Return a Messages answer that calls the requested tool with a valid review."""
    tool = seen.body["tools"][0]
    block = {
        "type": "tool_use",
        "id": "toolu_loopback",
        "name": tool["name"],
        "input": answer_for(tool["input_schema"], score=80),
    }
    return Reply(
        200,
        {
            "id": "msg_loopback",
            "type": "message",
            "role": "assistant",
            "model": seen.body["model"],
            "content": [block],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            # Anthropic counts cache reads apart from input_tokens: panel logs 21 + 300 in.
            "usage": {"input_tokens": 21, "cache_read_input_tokens": 300, "output_tokens": 123},
        },
    )


def error_reply(status: int, kind: str, message: str) -> Reply:
    """Return an Anthropic-style error answer."""
    return Reply(status, {"type": "error", "error": {"type": kind, "message": message}})


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """Return a loopback Messages API server that answers every call with a valid review."""
    with ScriptedServer(tool_call) as loopback:
        yield loopback


def review_with_cli(
    folder: Path, *flags: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Return the finished `panel review --provider anthropic` of the example card.

    The subprocess sees the test key and `env`, and no ANTHROPIC_* or PANEL_* of the developer's.
    """
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PANEL_", "ANTHROPIC_"))}
    args = [str(PANEL), "review", str(CARD), "--provider", "anthropic", "--json"]
    args += ["--db", str(folder / "panel.db"), "--out", str(folder / "out"), *flags]
    return subprocess.run(
        args,
        env={**clean, "ANTHROPIC_API_KEY": SECRET, **(env or {})},
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Return the rows of one query on a panel database."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


# --- tests -------------------------------------------------------------------------------------


def test_panel_reviews_through_a_forced_tool_call(server: ScriptedServer, tmp_path: Path) -> None:
    proc = review_with_cli(tmp_path, "--base-url", server.url)

    assert (proc.returncode, proc.stderr) == (0, "")
    document = json.loads(proc.stdout)
    assert [r["persona"] for r in document["reviews"]] == PANEL_KEYS
    for review in document["reviews"]:
        assert (review["provider"], review["model"]) == ("anthropic", "claude-sonnet-4-6")
        assert (review["score"], review["verdict"], review["attempts"]) == (80, "ship", 1)
    assert document["reviews"][1]["fields"]["competitors"] == ["Moondream", "PaliGemma"]
    assert document["errors"] == []

    assert len(server.seen) == len(PANEL_KEYS)
    roles = set()
    for seen in server.seen:
        assert seen.path == "/v1/messages"
        assert seen.body["tool_choice"] == TOOL_CHOICE
        assert [t["name"] for t in seen.body["tools"]] == ["submit_review"]
        # The shared part (rules and card) is the system prompt, marked as the prefix to cache.
        [system] = seen.body["system"]
        assert system["cache_control"] == {"type": "ephemeral"}
        assert system["text"] == server.seen[0].body["system"][0]["text"]
        assert "Name: SmolVLM-3B" in system["text"]
        assert [m["role"] for m in seen.body["messages"]] == ["user"]
        assert "temperature" not in seen.body
        # The 2.x SDK sends the key as a bearer token, not as x-api-key.
        assert seen.headers["authorization"] == f"Bearer {SECRET}"
        assert "x-api-key" not in seen.headers
        assert seen.headers["anthropic-version"]
        roles.add(seen.body["messages"][0]["content"].split(" on an AI tool")[0])
    assert roles == {f"You are the {key.title()}" for key in PANEL_KEYS}

    db = tmp_path / "panel.db"
    logged = (
        "SELECT provider, model, input_tokens, cached_tokens, output_tokens, outcome FROM calls"
    )
    assert query(db, logged) == [("anthropic", "claude-sonnet-4-6", 321, 300, 123, "ok")] * len(
        PANEL_KEYS
    )
    # Priced with the 300 cache reads at a tenth of the input price (claude-sonnet-4: $3/$0.30/$15).
    expected = round((21 * 3.00 + 300 * 0.30 + 123 * 15.00) / 1_000_000, 6)
    assert query(db, "SELECT DISTINCT cost_usd FROM calls") == [(expected,)]
    state = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert db in state and (tmp_path / "out" / "reviews" / "smolvlm-3b.json") in state
    assert [p for p in state if SECRET.encode() in p.read_bytes()] == []
    assert SECRET not in proc.stdout

    again = review_with_cli(tmp_path, "--base-url", server.url)
    assert (again.returncode, again.stderr) == (0, "")
    assert json.loads(again.stdout)["reviews"] == document["reviews"]
    assert len(server.seen) == len(PANEL_KEYS)  # every review came from the store


def test_overloaded_once_is_retried_and_succeeds(server: ScriptedServer, tmp_path: Path) -> None:
    server.queue.append(error_reply(529, "overloaded_error", "Overloaded"))
    proc = review_with_cli(tmp_path, "--base-url", server.url)

    assert (proc.returncode, proc.stderr) == (0, "")
    assert [r["persona"] for r in json.loads(proc.stdout)["reviews"]] == PANEL_KEYS
    assert len(server.seen) == len(PANEL_KEYS) + 1
    outcomes = query(tmp_path / "panel.db", "SELECT outcome, error FROM calls ORDER BY outcome")
    assert outcomes == [("error", "anthropic: HTTP 529: Overloaded")] + [("ok", None)] * 4


def test_bad_request_is_a_clean_exit_1(server: ScriptedServer, tmp_path: Path) -> None:
    server.answer = lambda seen: error_reply(
        400, "invalid_request_error", "max_tokens: 1200 >\n  the model's limit"
    )
    proc = review_with_cli(tmp_path, "--base-url", server.url)

    assert proc.returncode == 1
    assert json.loads(proc.stdout)["reviews"] == []
    # One line per persona, naming tool and persona: a 400 is not retried.
    line = "panel: error: smolvlm-3b: {}: anthropic: HTTP 400: max_tokens: 1200 > the model's limit"
    assert proc.stderr.splitlines() == [line.format(key) for key in PANEL_KEYS]
    assert len(server.seen) == len(PANEL_KEYS)
    assert query(tmp_path / "panel.db", "SELECT count(*) FROM reviews") == [(0,)]


def test_base_url_from_anthropic_base_url(server: ScriptedServer, tmp_path: Path) -> None:
    proc = review_with_cli(tmp_path, env={"ANTHROPIC_BASE_URL": server.url})

    assert (proc.returncode, proc.stderr) == (0, "")
    assert len(json.loads(proc.stdout)["reviews"]) == len(PANEL_KEYS)
    assert len(server.seen) == len(PANEL_KEYS)
