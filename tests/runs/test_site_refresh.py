"""The runs keep a built site current: `panel compare` (here --stored: no model call) writes its
comparison and brings the pages that show it up to date (its tools' pages, the listings, the
feed, the index), where a site was built; elsewhere it writes its own files only."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from panel.cli.app import app
from panel.personas import Persona
from panel.site import build_site
from panel.store import Store
from panel.testing import catalogue


def _compare(store: Store, out: Path, a: str, b: str) -> None:
    args = ["compare", a, b, "--stored", "--db", store.location, "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output


def test_compare_brings_a_built_site_up_to_date(
    store: Store, personas: list[Persona], tmp_path: Path
) -> None:
    out = tmp_path / "site"
    catalogue.make(store, 10, 12)
    catalogue.add_tools(store, [10])  # reviewed, never compared
    build_site(store, personas, out)
    new = "tool-00000-vs-tool-00010"
    assert new not in (out / "index.html").read_text()
    _compare(store, out, "tool-00000", "tool-00010")
    for page in ("index.html", "tools/tool-00000.html", "tools/tool-00010.html", "feed.atom"):
        assert new in (out / page).read_text(), page
    assert new in (out / "browse" / "comparisons" / "index.html").read_text()
    fresh = tmp_path / "fresh"
    build_site(store, personas, fresh, full=True)
    assert (out / "compare" / f"{new}.html").read_bytes() == (
        fresh / "compare" / f"{new}.html"
    ).read_bytes()


def test_compare_without_a_site_writes_its_own_files_only(store: Store, tmp_path: Path) -> None:
    catalogue.make(store, 4, 2)
    out = tmp_path / "outputs"
    _compare(store, out, "tool-00000", "tool-00003")
    assert (out / "compare" / "tool-00000-vs-tool-00003.html").exists()
    assert not (out / "index.html").exists()
