"""A fifth persona file works in every run (review, compare, eval, queue run) with no code
change, and every run's plan counts it (the progress total comes from the plan)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from panel.cards import load_card
from panel.config import Settings
from panel.runtime import open_runtime
from panel.testing.fakes.openai import FakeOpenAI
from tests.cli.test_cli import panel
from tests.conftest import REPO
from tests.queue.test_queue import env_for, make_cards, pairs_file

ETHICIST = """\
display_name: Ethicist
order: 5
role: >-
  You are the Ethicist on an AI tool review panel: you ask who a tool could harm.
judges: >-
  Whether the tool's risks to the people it touches are named and handled.
questions:
  - "Who could this tool harm, and how?"
fields:
  harms:
    description: The harm most worth guarding against.
"""


@pytest.fixture
def five(tmp_path: Path) -> Path:
    """A personas folder with the built-in four and an Ethicist."""
    folder = tmp_path / "personas"
    shutil.copytree(REPO / "personas", folder)
    (folder / "ethicist.yaml").write_text(ETHICIST)
    return folder


def test_the_plan_counts_every_persona_file(
    five: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-plan-key-123456")
    cards = [load_card(p) for p in make_cards(tmp_path / "cards", 2)]
    with FakeOpenAI() as server:
        settings = Settings(
            provider="openai", base_url=server.base_url, db=tmp_path / "p.db", personas=five
        )
        runtime = open_runtime(settings.model_copy(update={"samples": 3}))
        try:
            plan = runtime.plan(runtime.reviews(cards))
        finally:
            asyncio.run(runtime.aclose())
    assert plan.answers == len(plan.calls) == 2 * 5 * 3
    assert {p.question.persona.key for p in plan.planned} == {
        "builder",
        "skeptic",
        "futurist",
        "founder",
        "ethicist",
    }


def test_a_fifth_persona_in_review_compare_eval_and_queue(five: Path, tmp_path: Path) -> None:
    cards = make_cards(tmp_path / "cards", 4)
    out, db = tmp_path / "out", tmp_path / "p.db"
    with FakeOpenAI() as server:
        env = {**env_for(server, db, out), "PANEL_PERSONAS": str(five)}

        reviewed = panel("review", cards[0], "--json", env=env)
        assert reviewed.returncode == 0, reviewed.stderr
        assert [r["persona"] for r in json.loads(reviewed.stdout)["reviews"]][-1] == "ethicist"

        compared = panel("compare", cards[0], cards[1], "--json", env=env)
        assert compared.returncode == 0, compared.stderr
        document = json.loads(compared.stdout)
        assert len(document["a"]["reviews"]) == len(document["b"]["reviews"]) == 5

        evaluated = panel("eval", cards[2], "--json", env=env)
        assert evaluated.returncode == 0, evaluated.stderr
        report = json.loads(evaluated.stdout)
        assert "ethicist" in report["personas"]
        assert report["consistency"]["answers"] == 6 * 5  # the card and its five probes

        pairs = pairs_file(tmp_path, cards, 3)
        assert panel("queue", "add", pairs, env=env).returncode == 0
        drained = panel("queue", "run", "--json", env=env)
        assert drained.returncode == 0, drained.stderr
        pages = sorted((out / "compare").glob("*.json"))
        assert pages and all(len(json.loads(p.read_text())["a"]["reviews"]) == 5 for p in pages)
