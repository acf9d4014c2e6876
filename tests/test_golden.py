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


# --- issue 22, finding 10: a case reads only its own files; two records cannot mix ------------

REPO = Path(__file__).resolve().parent.parent


def copied_case(tmp_path: Path) -> Path:
    import shutil

    case = tmp_path / "case"
    shutil.copytree(Path(__file__).parent / "golden" / "local-open-models", case)
    return case


@pytest.mark.parametrize("how", ["parent", "absolute", "link"])
def test_a_case_cannot_name_cards_outside_its_folder(tmp_path: Path, how: str) -> None:
    """Finding 10: a case.yaml naming `../private/card.yaml` or an absolute path made `golden
    record` send that card to the provider and write it into the case's cassettes."""
    from panel.testing.fakes.openai import FakeOpenAI
    from tests.cli.test_cli import panel

    private = tmp_path / "private"
    private.mkdir()
    (private / "card.yaml").write_text((REPO / "examples" / "smolvlm-3b.yaml").read_text())
    case = copied_case(tmp_path)
    if how == "parent":
        (case / "case.yaml").write_text("cards: [../private/card.yaml]\n")
    elif how == "absolute":
        (case / "case.yaml").write_text(f"cards: [{private / 'card.yaml'}]\n")
    else:
        (case / "case.yaml").unlink()
        (case / "cards" / "leak.yaml").symlink_to(private / "card.yaml")
    with FakeOpenAI() as server:
        result = panel(
            "golden",
            "record",
            case,
            "--provider",
            "openai",
            "--base-url",
            server.base_url,
            "--model",
            "m",
            env={"OPENAI_API_KEY": "sk-test-golden-000000000000000"},
        )
        assert server.requests == 0, "nothing went to the provider"
    assert result.returncode == 2, result.stderr
    assert "is outside the case's folder" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    check = panel("golden", "check", case)
    assert check.returncode == 2 and "is outside the case's folder" in check.stderr


def test_two_golden_runs_on_one_case_cannot_mix(tmp_path: Path) -> None:
    """Finding 10: two `golden record` runs on one case could leave expected/ from one and
    cassettes/ from the other; now the second is refused while the first holds the case."""
    import fcntl
    import os

    from tests.cli.test_cli import panel

    case = copied_case(tmp_path)
    before = {p: p.read_bytes() for p in case.rglob("*") if p.is_file()}
    holder = os.open(case, os.O_RDONLY)  # the first run, mid-record
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for action in (["record", "--provider", "replay"], ["update"]):
            result = panel("golden", action[0], case, *action[1:])
            assert result.returncode == 2, result.stderr
            assert "another `panel golden record` or `update` is working on this case" in (
                result.stderr
            )
    finally:
        os.close(holder)
    assert {p: p.read_bytes() for p in case.rglob("*") if p.is_file()} == before
    assert panel("golden", "update", case).returncode == 0  # once the first is done
