"""Battery 7: after recorded runs with both API keys set, no secret is anywhere panel writes.

The runs go through the openai and anthropic providers against loopback servers whose error
messages quote the key, as real ones do: a 429 and a 529 that are retried, a 401 that fails,
a queue batch, comparisons, the site, the call log, queue status, and a replay of the cassettes.
Then every file (store and its WAL, cassettes, outputs) and everything printed is scanned for
the key values and for anything shaped like an OpenAI or Anthropic key or a bearer token.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from panel.testing.fakes.http import ScriptedServer
from panel.testing.fakes.openai import FakeOpenAI, Fault
from tests.conftest import REPO
from tests.providers.test_anthropic import error_reply, tool_call
from tests.queue.test_queue import make_cards, pairs_file
from tests.reliability.conftest import Tally

OPENAI_KEY = "sk-proj-RELIABILITY7-0123456789abcdefghijklmnopqrstuv"
ANTHROPIC_KEY = "sk-ant-api03-RELIABILITY7-0123456789abcdefghijklmnop"
SHAPES = re.compile(r"sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{8,}|Bearer")


def leaks(text: str) -> list[str]:
    """Return the secrets in text: the keys themselves, or anything shaped like one."""
    found = [key for key in (OPENAI_KEY, ANTHROPIC_KEY) if key in text]
    return found + SHAPES.findall(text)


def test_no_secret_in_store_cassettes_logs_or_outputs(tmp_path: Path, tally: Tally) -> None:
    db, out, cassettes = tmp_path / "panel.db", tmp_path / "out", tmp_path / "cassettes"
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PANEL_", "OPENAI_", "ANTHROPIC_"))
        },
        "OPENAI_API_KEY": OPENAI_KEY,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "PANEL_DB": str(db),
        "PANEL_OUT": str(out),
    }
    printed: list[tuple[str, str]] = []

    def panel(*args: str | Path, ok: bool = True) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "panel", *map(str, args)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        printed.append((f"panel {args[0]} stdout", result.stdout))
        printed.append((f"panel {args[0]} stderr", result.stderr))
        assert (result.returncode == 0) == ok, result.stderr

    def quoting_the_key(number: int, body: object) -> Fault | None:
        if number in (1, 7):
            return Fault(429, {"Retry-After": "0"}, message=f"Rate limit for key {OPENAI_KEY}.")
        return None

    examples = REPO / "examples"
    anthropic = ScriptedServer(tool_call)
    anthropic.start()
    anthropic.queue.append(error_reply(529, "overloaded_error", f"Overloaded ({ANTHROPIC_KEY})"))
    try:
        with FakeOpenAI(fault=quoting_the_key) as server:
            openai = ["--provider", "openai", "--base-url", server.base_url, "--model", "fake"]
            panel("review", examples / "smolvlm-3b.yaml", *openai, "--record", cassettes)
            panel(
                "review",
                examples / "mistral-8x22b-v2.yaml",
                "--provider",
                "anthropic",
                "--base-url",
                anthropic.url,
                "--record",
                cassettes,
            )
            cards = make_cards(tmp_path / "cards", 4)
            panel("queue", "add", pairs_file(tmp_path, cards, 3))
            panel("queue", "run", *openai, "--record", cassettes)
            panel("compare", "smolvlm-3b", "mistral-8x22b-v2", "--stored")
        refused = f"Incorrect API key provided: {OPENAI_KEY}. Find your key at the dashboard."
        with FakeOpenAI(fault=lambda n, b: Fault(401, message=refused)) as denying:
            panel(
                "review",
                examples / "smolvlm2-2b.yaml",
                "--provider",
                "openai",
                "--base-url",
                denying.base_url,
                "--model",
                "fake",
                ok=False,
            )
    finally:
        anthropic.close()
    sent = [v for h in server.headers for k, v in h.items() if k.lower() == "authorization"]
    assert sent and all(v == f"Bearer {OPENAI_KEY}" for v in sent), "the key was not sent"
    assert all(s.headers["authorization"] == f"Bearer {ANTHROPIC_KEY}" for s in anthropic.seen)
    panel("site", "build")
    panel("log", "--json", "-n", "500")
    panel("log", "-n", "500")
    panel("queue", "status", "--json")
    panel(
        "review",
        examples / "smolvlm-3b.yaml",
        "--provider",
        "replay",
        "--cassettes",
        cassettes,
        "--db",
        tmp_path / "replay.db",
        "--fresh",
    )

    files = [p for p in tmp_path.rglob("*") if p.is_file() and "cards" not in p.parts]
    assert len(list(cassettes.glob("*.json"))) == 4 + 4 + 16
    assert any(p.name.endswith("-wal") for p in files) or db.exists()
    found = {}
    for path in files:
        hits = leaks(path.read_bytes().decode("utf-8", "replace"))
        tally.add("secrets", survived=not hits, lost=len(hits))
        if hits:
            found[str(path.relative_to(tmp_path))] = hits
    for name, text in printed:
        hits = leaks(text)
        tally.add("secrets", survived=not hits, lost=len(hits))
        if hits:
            found[name] = hits
    tally.note("secrets", f"{len(files)} files and {len(printed)} printed streams scanned")
    assert not found, found
    errors = "".join(text for name, text in printed if name.endswith("stderr"))
    assert "Incorrect API key provided: [REDACTED]" in errors, "the 401 was not reported"
