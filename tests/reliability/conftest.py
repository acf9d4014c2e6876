"""The reliability batteries' tally: each case adds what it tried, what survived, what was lost.

A case records its figures before it asserts, so a failing run still prints them. After the run
pytest prints one line per battery (`make reliability` runs these batteries alone; `make test`
runs them with the rest) and writes the same figures to outputs/reliability.json.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

BATTERIES = {
    "cards": "1 bad tool cards",
    "answers": "2 malformed model answers",
    "faults": "3 provider faults at 20%",
    "crashes": "4 kill -9 of queue run",
    "injection": "5 prompt injection",
    "output": "6 output safety (XSS)",
    "secrets": "7 secrets",
    "trust": "8 trust boundaries",
    "hostile": "9 hostile server",
}


@dataclass
class Figures:
    tried: int = 0
    survived: int = 0
    lost: int = 0
    notes: list[str] = field(default_factory=list)


class Tally:
    """Figures by battery, for the whole session."""

    def __init__(self) -> None:
        self.figures = {key: Figures() for key in BATTERIES}

    def add(self, battery: str, *, survived: bool, lost: int = 0, tried: int = 1) -> None:
        """Count `tried` cases of battery: all survived or none, and how many things were lost."""
        figures = self.figures[battery]
        figures.tried += tried
        figures.survived += tried if survived else 0
        figures.lost += lost

    def note(self, battery: str, text: str) -> None:
        """Add a measured detail to the battery's line (e.g. the fault rate actually served)."""
        self.figures[battery].notes.append(text)


TALLY = Tally()


@pytest.fixture
def tally() -> Tally:
    return TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    ran = {key: f for key, f in TALLY.figures.items() if f.tried}
    if not ran:
        return
    write = terminalreporter.write_line
    terminalreporter.section("reliability: tried / survived / lost")
    write(f"{'battery':<28}{'tried':>7}{'survived':>10}{'lost':>6}")
    for key, f in ran.items():
        write(f"{BATTERIES[key]:<28}{f.tried:>7}{f.survived:>10}{f.lost:>6}")
        for note in f.notes:
            write(f"{'':<4}{note}")
    out = REPO / "outputs" / "reliability.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps({BATTERIES[k]: asdict(f) for k, f in ran.items()}, indent=2) + "\n",
        encoding="utf-8",
    )
