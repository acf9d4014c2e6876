"""`panel queue run --batch-api`: every pending review in one provider batch, polled, ingested.

Against loopback Batch API servers (panel/testing/fakes/openai.py, panel/testing/fakes/anthropic.py) through the
CLI, as a user runs it: one batch, no live call, comparisons written; per-request errors, invalid
answers and expiry end as failed jobs; a run killed while polling resumes the same batch.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from panel.config import Settings
from panel.providers.base import Request
from panel.providers.openai import OpenAIProvider
from panel.testing.fakes.anthropic import FakeAnthropicBatches, LyingAnthropic, system_text
from panel.testing.fakes.openai import FakeOpenAI, FakeOpenAIBatches, answer_for, prompt_text
from tests.cli.test_cli import panel
from tests.queue.test_queue import env_for, make_cards, pairs_file, query

FAST = ("--poll-interval", "0.02")


def persona_of(body: dict[str, Any]) -> str:
    """Return which persona a request asks (the persona's part, last, names the role)."""
    return body["messages"][-1]["content"].split(" on an AI tool")[0].removeprefix("You are the ")


def tool_of(body: dict[str, Any]) -> str:
    """Return the name of the tool a request asks about (make_cards names them Tool NN)."""
    user = prompt_text(body["messages"])
    return next(f"Tool {i:02d}" for i in range(100) if f"Tool {i:02d}" in user)


def anthropic_env(server: FakeAnthropicBatches, db: Path, out: Path) -> dict[str, str]:
    return {
        "PANEL_PROVIDER": "anthropic",
        "PANEL_BASE_URL": server.url,
        "PANEL_DB": str(db),
        "PANEL_OUT": str(out),
        "ANTHROPIC_API_KEY": "sk-ant-test-batch",
    }


def test_every_review_goes_out_in_one_batch_and_comparisons_are_written(
    tmp_path: Path, db: str
) -> None:
    cards = make_cards(tmp_path / "cards", 5)
    pairs = pairs_file(tmp_path, cards, 4)
    out = tmp_path / "out"
    with FakeOpenAIBatches(polls=3) as server:
        env = env_for(server, db, out)
        assert panel("queue", "add", pairs, env=env).returncode == 0
        result = panel("queue", "run", "--batch-api", *FAST, "--json", env=env)
        assert result.returncode == 0, result.stderr
        assert server.created == ["batch_1"], "exactly one batch"
        lines = server.input_lines("batch_1")
        assert server.answered == 0, "no live chat completion"
    assert len(lines) == 20 == len({line["custom_id"] for line in lines})
    for line in lines:
        assert (line["method"], line["url"]) == ("POST", "/v1/chat/completions")
        body = line["body"]
        assert body["model"] == "fake-model" and body["max_tokens"] == 1200
        assert body["response_format"]["type"] == "json_schema"
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
    run = json.loads(result.stdout)["run"]
    assert (run["jobs_done"], run["reviews_done"], run["calls"]) == (4, 20, 20)
    assert len(list((out / "compare").glob("*.html"))) == 4
    assert query(db, "SELECT count(*), min(attempts) FROM reviews") == [(20, 1)]
    assert query(db, "SELECT outcome, count(*) FROM calls GROUP BY outcome ORDER BY outcome") == [
        ("ok", 20)
    ]
    assert query(db, "SELECT state, status FROM batches") == [("ended", "completed")]


def test_errors_invalid_answers_and_expiry_fail_their_jobs_and_retry_rebatches(
    tmp_path: Path,
    db: str,
) -> None:
    cards = make_cards(tmp_path / "cards", 6)
    (tmp_path / "q.csv").write_text("".join(f"{cards[i]},{cards[i + 1]}\n" for i in range(0, 6, 2)))
    out = tmp_path / "out"

    def error(body: dict[str, Any]) -> int | None:
        return 400 if (tool_of(body), persona_of(body)) == ("Tool 00", "Founder") else None

    def content(body: dict[str, Any]) -> str | None:
        return (
            '{"review": "meh"}'
            if (tool_of(body), persona_of(body)) == ("Tool 02", "Skeptic")
            else None
        )

    # Requests go out by tool: the last four (tool-05's) are never reached before expiry.
    with FakeOpenAIBatches(error=error, content=content, expire_after=20) as server:
        env = env_for(server, db, out)
        assert panel("queue", "add", tmp_path / "q.csv", env=env).returncode == 0
        result = panel("queue", "run", "--batch-api", *FAST, env=env)
        assert result.returncode == 1, result.stderr
        assert server.created == ["batch_1"] and server.answered == 0
        status = panel("queue", "status", env=env).stdout
        assert "done 0" in status and "failed 3" in status
        assert (
            "tool-00 vs tool-01 after 0 attempt(s): tool-00: founder: failed "
            "in openai batch batch_1: openai: batch request HTTP 400: fake batch error 400"
        ) in status
        assert "tool-02: skeptic: failed in openai batch batch_1: " in status
        assert "(a batch answer is not re-asked)" in status
        assert (
            "tool-05: builder: failed in openai batch batch_1: openai: batch expired "
            "without answering this request"
        ) in status
        assert query(
            db, "SELECT outcome, count(*) FROM calls GROUP BY outcome ORDER BY outcome"
        ) == [
            ("error", 5),
            ("invalid", 1),
            ("ok", 18),
        ]

        server.error = server.content = None
        server.expire_after = None
        assert "requeued 3" in panel("queue", "retry", "--failed", env=env).stdout
        again = panel("queue", "run", "--batch-api", *FAST, env=env)
        assert again.returncode == 0, again.stderr
        assert server.created == ["batch_1", "batch_2"]
        assert len(server.input_lines("batch_2")) == 6, "only the failed reviews go out again"
    assert query(db, "SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state") == [
        ("done", 3)
    ]
    assert len(list((out / "compare").glob("*.html"))) == 3


def test_a_run_killed_while_polling_resumes_the_same_batch(tmp_path: Path, db: str) -> None:
    cards = make_cards(tmp_path / "cards", 4)
    pairs = pairs_file(tmp_path, cards, 3)
    out = tmp_path / "out"
    with FakeOpenAIBatches(polls=10**9) as server:
        env = {**os.environ, **env_for(server, db, out)}
        assert panel("queue", "add", pairs, env=env).returncode == 0
        proc = subprocess.Popen(
            [sys.executable, "-m", "panel", "queue", "run", "--batch-api", *FAST, "--lease", "1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.paths.count("GET /v1/batches/batch_1") < 3:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert query(db, "SELECT batch_id, state FROM batches") == [("batch_1", "submitted")]
        assert query(db, "SELECT state, count(*) FROM tasks GROUP BY state ORDER BY state") == [
            ("running", 16)
        ]

        server.polls = 0  # the batch ends at its next poll
        result = panel("queue", "run", "--batch-api", *FAST, "--lease", "1", "--json", env=env)
        assert result.returncode == 0, result.stderr
        assert server.created == ["batch_1"], "the rerun must not submit a second batch"
        assert server.answered == 0
    assert json.loads(result.stdout)["run"]["reviews_done"] == 16
    assert query(db, "SELECT count(*) FROM reviews") == [(16,)]
    assert query(db, "SELECT count(*) FROM calls") == [(16,)]
    assert query(db, "SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state") == [
        ("done", 3)
    ]


def test_anthropic_message_batches_work_the_same_way(tmp_path: Path) -> None:
    cards = make_cards(tmp_path / "cards", 4)
    (tmp_path / "q.csv").write_text(f"{cards[0]},{cards[1]}\n{cards[2]},{cards[3]}\n")
    db, out = tmp_path / "panel.db", tmp_path / "out"

    def error(params: dict[str, Any]) -> str | None:
        return "prompt is too long" if "Tool 01" in system_text(params) else None

    with FakeAnthropicBatches(error=error, expire_after=15) as server:
        env = anthropic_env(server, db, out)
        assert panel("queue", "add", tmp_path / "q.csv", env=env).returncode == 0
        result = panel("queue", "run", "--batch-api", *FAST, env=env)
        assert result.returncode == 1, result.stderr
        assert list(server.requests) == ["msgbatch_0001"] and server.live_calls == 0
        requests = server.requests["msgbatch_0001"]
    assert len(requests) == 16
    for request in requests:
        params = request["params"]
        assert params["model"] == "claude-sonnet-4-6" and "temperature" not in params
        assert params["tool_choice"] == {"type": "tool", "name": "submit_review"}
        assert system_text(params).startswith("You sit on a panel")  # the shared part, cached
        assert params["system"][0]["cache_control"] == {"type": "ephemeral"}
        assert [m["role"] for m in params["messages"]] == ["user"]
        assert params["messages"][0]["content"].startswith("You are the ")
    status = panel("queue", "status", "--db", db).stdout
    assert (
        "tool-01: builder: failed in anthropic batch msgbatch_0001: anthropic: batch "
        "request invalid_request_error: prompt is too long"
    ) in status
    assert "anthropic: batch request expired before it was processed" in status
    assert query(db, "SELECT outcome, count(*) FROM calls GROUP BY outcome ORDER BY outcome") == [
        ("error", 5),
        ("ok", 11),
    ]
    # Logged at the batch price: half of claude-sonnet-4's $3/$15 per million tokens.
    assert query(db, "SELECT DISTINCT cost_usd FROM calls WHERE outcome = 'ok'") == [(0.0012,)]


def test_batch_api_needs_a_provider_with_one(tmp_path: Path) -> None:
    result = panel("queue", "run", "--batch-api", "--provider", "local", "--db", tmp_path / "p.db")
    assert (result.returncode, result.stderr) == (
        2,
        "panel: error: --batch-api needs a provider with a batch API (openai or anthropic), "
        "not 'local'\n",
    )


def test_a_batch_line_carries_the_body_of_the_live_call(tmp_path: Path) -> None:
    request = Request(
        messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        schema={"type": "object", "properties": {"score": {"type": "integer"}}},
        schema_name="builder_review",
        model="fake-model",
    )

    async def live_body(server: FakeOpenAI) -> tuple[dict[str, Any], dict[str, Any]]:
        provider = OpenAIProvider(Settings(provider="openai", base_url=server.base_url))
        try:
            await provider.generate(request)
        except Exception:  # the fake's answer does not matter, the body it saw does
            pass
        finally:
            await provider.aclose()
        return server.bodies[-1], provider.request_body(request)

    with FakeOpenAI() as server:
        sent, built = asyncio.run(live_body(server))
    assert sent == json.loads(json.dumps(built))


def test_samples_go_out_in_the_batch_and_each_is_stored_by_index(tmp_path: Path, db: str) -> None:
    cards = make_cards(tmp_path / "cards", 2)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"{cards[0]},{cards[1]}\n")
    out = tmp_path / "out"

    def noisy(body: dict[str, Any]) -> str:  # the seed moves the score: samples differ
        schema = body["response_format"]["json_schema"]["schema"]
        return json.dumps(answer_for(schema, score=40 + 7 * body["seed"] % 50))

    with FakeOpenAIBatches(polls=2, content=noisy) as server:
        env = env_for(server, db, out)
        # sample 0, live, at the temperature of the set (a set is asked at one temperature)
        first = panel(
            "review", cards[0], "--persona", "builder", env={**env, "PANEL_TEMPERATURE": "0.7"}
        )
        assert first.returncode == 0, first.stderr
        assert server.answered == 1
        assert panel("queue", "add", pairs, "--samples", "3", env=env).returncode == 0
        result = panel("queue", "run", "--batch-api", *FAST, "--json", env=env)
        assert result.returncode == 0, result.stderr
        assert server.created == ["batch_1"] and server.answered == 1  # no other live call
        lines = server.input_lines("batch_1")
    # 2 tools x 4 personas x 3 samples, less the sample already stored
    assert len(lines) == 23 == len({line["custom_id"] for line in lines})
    asked = sorted(
        (persona_of(line["body"]), tool_of(line["body"]), line["body"]["seed"]) for line in lines
    )
    assert ("Builder", "Tool 00", 7) not in asked and ("Builder", "Tool 01", 7) in asked
    assert {line["body"]["seed"] for line in lines} == {7, 8, 9}
    assert {line["body"]["temperature"] for line in lines} == {0.7}
    rows = query(db, "SELECT tool, persona, sample FROM reviews")
    assert len(rows) == 24 == len(set(rows))
    assert {row[2] for row in rows} == {0, 1, 2}
    assert query(db, "SELECT state, count(*) FROM tasks GROUP BY state") == [("done", 8)]
    page = json.loads(next((out / "compare").glob("*.json")).read_text())
    for side in ("a", "b"):
        for review in page[side]["reviews"]:
            assert [s["sample"] for s in review["samples"]] == [0, 1, 2]
            assert review["score_sd"] is not None


def test_a_batch_answer_that_under_reports_its_usage_is_priced_from_counted_tokens(
    tmp_path: Path,
) -> None:
    """Issue 28: a batch answer was priced at the usage its server reported, as-is (the live
    path guards it with counted_tokens). A server that reports one token per answer let the
    reviews' batch settle at nothing, so the pair judgments' batch went out past --max-cost.
    Priced from counted tokens, the reviews spend most of the $0.005 ceiling and the run stops."""
    cards = make_cards(tmp_path / "cards", 2)
    (tmp_path / "q.csv").write_text(f"{cards[0]},{cards[1]}\n")
    db, out = tmp_path / "panel.db", tmp_path / "out"
    assert panel("queue", "add", tmp_path / "q.csv", "--pairwise", "--db", db).returncode == 0
    with LyingAnthropic({"input_tokens": 1, "output_tokens": 1}) as server:
        env = {**anthropic_env(server, db, out), "PANEL_MAX_TOKENS": "64"}
        args = ("--model", "claude-haiku-4-5", "--max-cost", "0.005")
        result = panel("queue", "run", "--batch-api", *FAST, *args, env=env)
        batches, live = list(server.requests), server.live_calls
    assert result.returncode == 3, result.stderr
    assert "cost ceiling reached" in result.stderr
    assert batches == ["msgbatch_0001"] and live == 0, "the pair judgments' batch never went out"
    [(answers, tokens, spent)] = query(
        db, "SELECT count(*), sum(input_tokens), sum(cost_usd) FROM calls WHERE outcome = 'ok'"
    )
    assert (answers, tokens) == (8, 8), "the call log keeps what the server said"
    assert 0.004 < spent <= 0.005, "priced from counted tokens, under the ceiling"
