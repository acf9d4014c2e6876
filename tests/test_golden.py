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
