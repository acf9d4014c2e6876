"""What the pairwise tests share: labelled cards whose quality a known judge reads by name, and
the arguments that point a run at a loopback OpenAI-compatible judge."""

from __future__ import annotations

from pathlib import Path

import yaml

from panel.testing.fakes.openai import FakeOpenAI

KEYS = {"OPENAI_API_KEY": "sk-test-pairwise-0000000000000000"}


def labelled_cards(
    folder: Path, labels: list[float], category: str = "Developer Tools"
) -> list[Path]:
    """Write one card per label ("Tool 00", "Tool 01", ...; `outcome:` the label) and return
    their paths; quality(labels) tells a known judge which is better."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, label in enumerate(labels):
        path = folder / f"tool-{i:02d}.yaml"
        card = {
            "name": f"Tool {i:02d}",
            "tagline": f"Does thing number {i} for developers",
            "category": category,
            "description": f"Tool {i} does a useful thing for developers, on device or in the cloud.",
            "entry": "Free",
            "outcome": label,
        }
        path.write_text(yaml.safe_dump(card))
        paths.append(path)
    return paths


def quality(labels: list[float]) -> dict[str, int]:
    """Return the quality a known judge gives each labelled card, by name: its label's order."""
    return {f"Tool {i:02d}": round(label * 100) for i, label in enumerate(labels)}


def judge_args(server: FakeOpenAI, tmp_path: Path) -> list[str]:
    return [
        "--provider",
        "openai",
        "--base-url",
        server.base_url,
        "--model",
        "fake",
        "--db",
        str(tmp_path / "panel.db"),
        "--out",
        str(tmp_path / "out"),
    ]
