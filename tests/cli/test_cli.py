"""The command line as a user meets it, including a real panel on the embedded local model."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from panel.rules import SHIP_THRESHOLD
from panel.store import Store
from panel.store.migrations import MIGRATIONS
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import junk_count

EXAMPLE = REPO / "examples" / "smolvlm-3b.yaml"


def panel(
    *args: str | Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `python -m panel ARGS` and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "panel", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


HELP_EXTRA_MODULES = 7
"""Modules `panel --help` may load besides typer's own and panel's CLI modules (one a command,
each only its options): the package, its errors, panel.eval.fmt (how the eval prints a figure,
shared with its document; no statistics) and a few of typer's (measured: 7 on 2026-12-05).
`make bench-help` times it; this keeps it from growing back."""


def test_help_explains_and_loads_little_beyond_typer() -> None:
    code = (
        "import sys, json\n"
        "import typer\n"
        "before = set(sys.modules)\n"
        "from panel.cli import app\n"
        "try:\n"
        "    app(['--help'], prog_name='panel', standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Review an AI tool launch with a panel of four personas" in result.stdout
    extra = json.loads(result.stdout.splitlines()[-1])
    heavy = ("openai", "anthropic", "llama_cpp", "jinja2", "pydantic", "asyncio", "rich", "yaml")
    assert [m for m in extra if m.split(".")[0] in heavy] == []
    others = [m for m in extra if not m.startswith("panel.cli")]
    assert len(others) <= HELP_EXTRA_MODULES, others


def test_module_entry_point_and_subcommand_help() -> None:
    result = panel("review", "--help")
    assert result.returncode == 0
    for flag in ("--provider", "--model", "--base-url", "--fresh", "--json", "--structured-output"):
        assert flag in result.stdout


def test_personas_command_lists_the_panel() -> None:
    result = panel("personas", "--json")
    assert result.returncode == 0
    listed = json.loads(result.stdout)
    assert [p["display_name"] for p in listed] == ["Builder", "Skeptic", "Futurist", "Founder"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["review", EXAMPLE, "--provider", "nope"], "unknown provider 'nope'"),
        (["review", EXAMPLE, "--concurrency", "0"], "setting 'concurrency'"),
        (["review", EXAMPLE, "--personas", "/nonexistent"], "personas folder not found"),
        (["review", EXAMPLE, "--persona", "critic"], "unknown persona 'critic'"),
        (
            ["review", EXAMPLE, "--provider", "local", "--model", "/nonexistent.gguf"],
            "local model file not found",
        ),
        (["review", EXAMPLE, "--provider", "openai"], "OPENAI_API_KEY is not set"),
        (["review", EXAMPLE, "--provider", "anthropic"], "ANTHROPIC_API_KEY is not set"),
        (["log"], "no store yet"),
    ],
)
def test_bad_settings_exit_2_with_one_line(tmp_path: Path, args: list[Any], fragment: str) -> None:
    env = {
        "PANEL_DB": str(tmp_path / "p.db"),
        "OPENAI_API_KEY": "",
        "ANTHROPIC_API_KEY": "",
        "OPENAI_BASE_URL": "",
        "ANTHROPIC_BASE_URL": "",
    }
    result = panel(*args, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_config_file_and_environment_precedence(tmp_path: Path) -> None:
    (tmp_path / "panel.toml").write_text('[panel]\nprovider = "anthropic"\nconcurrency = 3\n')
    env = {
        "PANEL_CONFIG": str(tmp_path / "panel.toml"),
        "PANEL_PROVIDER": "openai",
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
        "PANEL_DB": str(tmp_path / "p.db"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "panel", "review", str(EXAMPLE)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **env},
        timeout=60,
    )
    assert "OPENAI_API_KEY" in result.stderr  # env beats the file
    result = subprocess.run(
        [sys.executable, "-m", "panel", "review", str(EXAMPLE), "--provider", "nope"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **env},
        timeout=60,
    )
    assert "unknown provider 'nope'" in result.stderr  # the flag beats the environment
    (tmp_path / "panel.toml").write_text("provider = [\n")
    result = subprocess.run(
        [sys.executable, "-m", "panel", "review", str(EXAMPLE)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PANEL_DB": str(tmp_path / "p.db"), "PANEL_CONFIG": "panel.toml"},
        timeout=60,
    )
    assert result.returncode == 2 and "panel.toml: cannot read config" in result.stderr


def test_migrations_are_numbered_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "panel.db"
    Store(path).close()
    Store(path).close()
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == len(MIGRATIONS) >= 1


def test_a_foreign_file_is_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "panel.db"
    path.write_text("not a database at all, just text " * 100)
    result = panel("review", EXAMPLE, "--db", path)
    assert result.returncode == 2 and "not a usable panel database" in result.stderr
    assert path.read_text().startswith("not a database"), "the file must be left as it was"


@pytest.mark.slow
def test_a_real_panel_on_the_embedded_model(tmp_path: Path) -> None:
    db, out = tmp_path / "panel.db", tmp_path / "out"
    result = panel("review", EXAMPLE, "--json", "--db", db, "--out", out)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["schema"] == "panel.review/1"
    assert document["tool"]["slug"] == "smolvlm-3b"
    reviews = document["reviews"]
    assert [r["persona"] for r in reviews] == ["builder", "skeptic", "futurist", "founder"]
    for review in reviews:
        assert 0 <= review["score"] <= 100
        assert review["verdict"] == ("ship" if review["score"] >= SHIP_THRESHOLD else "skip")
        assert len(review["review"]) >= 40
        assert (
            review["provider"] == "local" and review["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
        )
    ships = sum(r["verdict"] == "ship" for r in reviews)
    assert document["panel"]["ships"] == ships
    assert document["panel"]["ship_pct"] == round(100 * ships / 4)
    assert json.loads((out / "reviews" / "smolvlm-3b.json").read_text()) == document

    # Clean text: the grammar leaves the model no way to glue words (scripts/junk_count.py).
    glued = [
        (review["persona"], token, kind)
        for review in reviews
        for text in junk_count.review_texts(review)
        for token, kind in junk_count.odd_tokens(text, junk_count.known_tokens(document["tool"]))
        if kind in junk_count.GLUED
    ]
    assert glued == []

    calls = json.loads(panel("log", "--json", "--db", db).stdout)
    assert len(calls) >= 4 and all(c["provider"] == "local" for c in calls)
    assert all(c["latency_ms"] > 0 and c["output_tokens"] > 0 for c in calls)
    # The card comes first in every prompt: the model evaluates it once for the panel, and the
    # three other personas' calls count it as cached (the four answers are decoded together, so
    # the log holds them in the order they ended).
    cached = sorted(c["cached_tokens"] for c in calls[:4])
    assert all(n > 100 for n in cached[1:]), [c["cached_tokens"] for c in calls]

    again = panel("review", EXAMPLE, "--json", "--db", db, "--out", out)
    assert again.returncode == 0
    assert json.loads(again.stdout)["reviews"] == reviews
    assert len(json.loads(panel("log", "--json", "-n", "100", "--db", db).stdout)) == len(calls), (
        "a repeat review must make no call"
    )

    table = panel("review", EXAMPLE, "--db", db, "--out", out)
    assert "Panel: " in table.stdout and "panel ship" in table.stdout


# --- issue 22, findings 6 and 7: values Python cannot build, flags out of range ----------------

UNBUILDABLE = {
    "month 13": "2024-13-01",
    "February 30": "2024-02-30",
    "year 0": "0000-01-01",
    "a float that is not one": '!!float "abc"',
    "5,000 digits": "9" * 5000,
}


@pytest.mark.parametrize("value", list(UNBUILDABLE.values()), ids=list(UNBUILDABLE))
@pytest.mark.parametrize("where", ["card", "persona file", "golden case.yaml"])
def test_yaml_values_python_cannot_build_are_one_line(
    tmp_path: Path, where: str, value: str
) -> None:
    """Finding 6: month 13, Feb 30, year 0, `!!float "abc"` or a 5,000-digit integer gave a
    traceback and exit 1 in cards, persona files and golden case.yaml."""
    db = ["--db", str(tmp_path / "p.db")]
    if where == "card":
        card = tmp_path / "card.yaml"
        card.write_text(EXAMPLE.read_text() + f"launched: {value}\n")
        result = panel("review", card, *db)
    elif where == "persona file":
        folder = tmp_path / "personas"
        folder.mkdir()
        for persona in (REPO / "personas").glob("*.yaml"):
            (folder / persona.name).write_text(persona.read_text())
        (folder / "builder.yaml").write_text(
            (REPO / "personas" / "builder.yaml").read_text() + f"since: {value}\n"
        )
        result = panel("review", EXAMPLE, "--personas", folder, *db)
    else:
        case = tmp_path / "case"
        case.mkdir()
        (case / "case.yaml").write_text(f"cards: []\nwhen: {value}\n")
        result = panel("golden", "check", case)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "cannot read the value" in result.stderr and "line" in result.stderr


@pytest.mark.parametrize(
    "url",
    ["postgresql://panel@[::1/panel", "postgresql://panel@[fe80::1%eth0]:x/panel"],
)
def test_a_malformed_postgresql_url_is_one_line(url: str) -> None:
    """Finding 6: a malformed IPv6 PostgreSQL URL gave a traceback."""
    for args in (["log", "--db", url], ["review", EXAMPLE, "--db", url]):
        result = panel(*args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr


def test_a_malformed_base_url_is_one_line(tmp_path: Path) -> None:
    result = panel(
        "review",
        EXAMPLE,
        "--provider",
        "openai",
        "--base-url",
        "http://[::1/v1",
        "--db",
        tmp_path / "p.db",
        env={"OPENAI_API_KEY": "sk-test-000000000000000000"},
    )
    assert result.returncode == 2 and "setting 'base_url': not a URL" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


UNREACHABLE = {
    "PANEL_PROVIDER": "anthropic",
    "PANEL_MODEL": "claude-haiku-4-5",  # priced, so a ceiling is kept
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
    "ANTHROPIC_API_KEY": "sk-ant-test-range-00000000000",
    "PANEL_MAX_ATTEMPTS": "1",
}
"""A provider that opens without a server (a run with nothing to do, or refused before its
first call, never reaches it), so nothing but the value under test can stop a run with exit 2."""


@pytest.mark.parametrize(
    "args",
    [
        ["queue", "run", "--lease", "nan"],
        ["queue", "run", "--lease", "inf"],
        ["queue", "run", "--lease", "0"],
        ["queue", "run", "--lease", "-1"],
        ["queue", "run", "--poll-interval", "nan"],
        ["queue", "run", "--max-attempts", "0"],
        ["log", "-n", "99999999999999999999"],
        ["log", "-n", "0"],
        ["log", "-n", "-5"],
        ["review", EXAMPLE, "--max-cost", "inf"],
        ["review", EXAMPLE, "--max-cost", "nan"],
    ],
    ids=lambda args: " ".join(map(str, args[:3])).replace(str(EXAMPLE), "CARD"),
)
def test_flags_with_a_physical_meaning_are_range_checked(tmp_path: Path, args: list[Any]) -> None:
    """Finding 7: `queue run --lease` took nan, inf, 0 and -1 (a killed worker's units stayed
    running forever, or two workers made the same call); `panel log -n 99999999999999999999`
    crashed."""
    db = tmp_path / "p.db"
    Store(db).close()
    # A provider that opens (no server is needed: the queue is empty, and the flags are
    # refused before any call), so nothing but the flag itself can stop the run.
    result = panel(*args, "--db", db, env=UNREACHABLE, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PANEL_TIMEOUT", "nan"),
        ("PANEL_TIMEOUT", "inf"),
        ("PANEL_MAX_RESPONSE_BYTES", "1"),
        ("PANEL_RPM", "99999999999999999999"),
    ],
)
def test_settings_with_a_physical_meaning_are_range_checked(
    tmp_path: Path, name: str, value: str
) -> None:
    result = panel("review", EXAMPLE, "--db", tmp_path / "p.db", env={**UNREACHABLE, name: value})
    assert result.returncode == 2 and "setting '" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
