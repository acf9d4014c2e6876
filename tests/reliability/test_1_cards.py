"""Battery 1: bad tool cards, through every command that reads one (review, compare, queue add).

Each kind of bad card must end in exit 2 and one line on stderr naming the file (and the field,
where one is at fault), with the store and the outputs exactly as they were: the store starts
full (seed 000's tools and reviews, a vote, a comparison) so there is something to lose.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from panel.cli import app
from tests.reliability.conftest import REPO, Tally
from tests.test_cards import BAD_CARDS, GOOD

SEED = REPO / "examples" / "seeds" / "000-smolvlm-3b-vs-mistral-8x22b-v2.jsonl"
COMMANDS = ("review", "compare", "queue-add")


def store_rows(db: Path) -> dict[str, set[tuple[object, ...]]]:
    """Return every row of every table of a store."""
    with sqlite3.connect(db) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: set(con.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}


def files(folder: Path) -> dict[str, str]:
    """Return the hash of every file under folder, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class Workspace:
    """A full store and its outputs, and the command lines that try a bad card on them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db, self.out, self.empty = root / "panel.db", root / "out", root / "no-cassettes"
        self.empty.mkdir()
        self.runner = CliRunner()
        for args in (
            ["import", str(SEED)],
            ["vote", "smolvlm-3b", "ship", "--voter", "ana"],
            ["compare", "smolvlm-3b", "mistral-8x22b-v2", "--stored", "--out", str(self.out)],
        ):
            result = self.runner.invoke(app, [*args, "--db", str(self.db)])
            assert result.exit_code == 0, result.output

    def argv(self, command: str, *cards: Path) -> list[str]:
        """Return the command line that feeds cards to command (never reaching a model)."""
        offline = ["--provider", "replay", "--cassettes", str(self.empty), "--out", str(self.out)]
        if command == "review":
            return [
                "review",
                str(REPO / "examples" / "smolvlm-3b.yaml"),
                *map(str, cards),
                *offline,
            ]
        if command == "compare":
            other = str(cards[1]) if len(cards) > 1 else "smolvlm-3b"
            return ["compare", str(cards[0]), other, *offline]
        pairs = self.root / "pairs.csv"
        slugs = ["smolvlm-3b", "mistral-8x22b-v2"]
        pairs.write_text(
            "".join(f"{card},{slug}\n" for card, slug in zip(cards, slugs, strict=False))
        )
        return ["queue", "add", str(pairs)]

    def run(self, argv: list[str]) -> tuple[int, list[str], BaseException | None]:
        """Run panel in-process; return exit code, stderr lines and any uncaught exception."""
        result = self.runner.invoke(app, [*argv, "--db", str(self.db)])
        uncaught = None if isinstance(result.exception, SystemExit) else result.exception
        return result.exit_code, result.stderr.splitlines(), uncaught


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    yield Workspace(tmp_path_factory.mktemp("full-store"))


def try_bad_input(
    workspace: Workspace, tally: Tally, argv: list[str], named: str, fragment: str
) -> None:
    """Run argv; record and assert exit 2, one line naming `named` and fragment, nothing lost."""
    rows, outputs = store_rows(workspace.db), files(workspace.out)
    code, lines, uncaught = workspace.run(argv)
    rows_after, outputs_after = store_rows(workspace.db), files(workspace.out)
    changed = sum(len(rows[t] ^ rows_after.get(t, set())) for t in rows)
    changed += sum(outputs.get(k) != outputs_after.get(k) for k in outputs.keys() | outputs_after)
    one_line = len(lines) == 1 and lines[0].startswith("panel: error: ")
    named_it = one_line and named in lines[0] and fragment in lines[0]
    tally.add(
        "cards", survived=code == 2 and named_it and not changed and not uncaught, lost=changed
    )
    assert uncaught is None, repr(uncaught)
    assert code == 2, lines
    assert one_line and named_it, lines
    assert not changed, "the store or the outputs changed"


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("file", "content", "expected"), [b[1:] for b in BAD_CARDS], ids=[b[0] for b in BAD_CARDS]
)
def test_a_bad_card_exits_2_in_one_line_and_loses_nothing(
    workspace: Workspace,
    tally: Tally,
    command: str,
    file: str,
    content: str | bytes,
    expected: str,
) -> None:
    card = workspace.root / file
    if isinstance(content, bytes):
        card.write_bytes(content)
    else:
        card.write_text(content, encoding="utf-8")
    try_bad_input(workspace, tally, workspace.argv(command, card), str(card), expected)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("review", "slug: duplicate slug 'tool-x'"),
        ("compare", "are the same tool (tool-x)"),
        ("queue-add", "slug: two different cards share the slug 'tool-x'"),
    ],
)
def test_two_cards_with_one_slug_in_one_batch(
    workspace: Workspace, tally: Tally, command: str, expected: str
) -> None:
    a, b = workspace.root / "a.yaml", workspace.root / "b.yaml"
    a.write_text(GOOD)
    b.write_text(GOOD.replace("does a thing well", "does another thing"))
    argv = workspace.argv(command, a, b)
    named = str(b) if command == "review" else str(workspace.root / "pairs.csv")
    try_bad_input(workspace, tally, argv, named if command != "compare" else str(b), expected)
