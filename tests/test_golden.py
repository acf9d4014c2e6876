"""The golden suite: one test per folder in tests/golden/, replaying recorded answers.

`make golden` runs it alone; `make goldens-update` (pytest --update-goldens) re-renders the
expected files from the cassettes; `panel golden record CASE` records new answers.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from panel.config import Settings
from panel.golden import check_case, update_case

CASES = sorted(p for p in (Path(__file__).parent / "golden").iterdir() if p.is_dir())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_case(case: Path, request: pytest.FixtureRequest) -> None:
    if request.config.getoption("--update-goldens"):
        problems = asyncio.run(update_case(case, Settings()))
    else:
        problems = asyncio.run(check_case(case, Settings()))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_recording_with_a_key_leaves_no_secret_anywhere(tmp_path: Path) -> None:
    from .fake_openai import FakeOpenAI
    from .test_cli import EXAMPLE, panel

    secret = "sk-proj-RECORDING-SECRET-0123456789abcdef"
    cassettes, db, out = tmp_path / "cassettes", tmp_path / "panel.db", tmp_path / "out"
    with FakeOpenAI() as server:
        env = {"OPENAI_API_KEY": secret}
        args = ["--provider", "openai", "--base-url", server.base_url, "--db", db, "--out", out]
        result = panel("review", EXAMPLE, *args, "--record", cassettes, env=env)
        assert result.returncode == 0, result.stderr
        sent = [{k.lower(): v for k, v in h.items()} for h in server.headers]
        assert sent and all(h.get("authorization") == f"Bearer {secret}" for h in sent)
    replayed = panel(
        "review",
        EXAMPLE,
        "--provider",
        "replay",
        "--cassettes",
        cassettes,
        "--db",
        tmp_path / "r.db",
        "--json",
    )
    assert replayed.returncode == 0, replayed.stderr
    assert len(list(cassettes.glob("*.json"))) == 4
    for path in [*cassettes.iterdir(), *out.rglob("*"), *tmp_path.glob("*.db*")]:
        if path.is_file():
            data = path.read_bytes()
            assert secret.encode() not in data and b"Bearer" not in data, path
