"""Real paid APIs: opt-in with PANEL_LIVE=1 and the provider's key; otherwise skipped, loudly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli.test_cli import EXAMPLE, panel

pytestmark = pytest.mark.live


@pytest.mark.parametrize(
    ("provider", "key"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")]
)
def test_a_real_panel_on_a_paid_api(tmp_path: Path, provider: str, key: str) -> None:
    if os.environ.get("PANEL_LIVE") != "1" or not os.environ.get(key):
        pytest.skip(f"live {provider} test: set PANEL_LIVE=1 and {key} to run it (it costs money)")
    result = panel(
        "review",
        EXAMPLE,
        "--provider",
        provider,
        "--json",
        "--db",
        tmp_path / "p.db",
        "--out",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    reviews = json.loads(result.stdout)["reviews"]
    assert len(reviews) == 4
    secret = os.environ[key]
    assert secret.encode() not in (tmp_path / "p.db").read_bytes()
