"""The docs: README.md is a page, docs/ the rest; the command reference matches the app, and
every relative link and #anchor in them resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from panel.cli.app import app
from panel.cli.reference import reference_markdown

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def test_cli_reference_is_the_apps_own() -> None:
    written = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert written == reference_markdown(app), "docs/cli.md is stale: run `make docs`"


def test_the_reference_names_every_command_and_option() -> None:
    reference = reference_markdown(app)
    for heading in ("## `panel review`", "## `panel queue run`", "## `panel golden record`"):
        assert heading in reference
    assert (
        "`--max-cost USD`" in reference and "`--persona-model PERSONA=PROVIDER:MODEL`" in reference
    )


def test_the_readme_is_a_page_with_the_two_commands_first() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 14_000
    first_block = readme.split("```sh", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block and "make test" in first_block


def anchors(page: Path) -> set[str]:
    """Return the GitHub anchors of page's headings."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in anchors(file)):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


def test_the_link_checker_catches_a_broken_anchor(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Title\n\n## Real part\n\n[ok](#real-part) [bad](#gone)\n")
    page = tmp_path / "a.md"
    assert [t for t in links(page) if t.partition("#")[2] not in anchors(page)] == ["#gone"]
