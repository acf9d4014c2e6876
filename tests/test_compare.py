"""Comparisons, imports, community votes and the static site, through the command line."""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.cli.test_cli import panel
from tests.conftest import REPO

SEED = REPO / "examples" / "seeds" / "000-smolvlm-3b-vs-mistral-8x22b-v2.jsonl"
NO_KEYS = {
    "OPENAI_API_KEY": "",
    "ANTHROPIC_API_KEY": "",
    "OPENAI_BASE_URL": "",
    "ANTHROPIC_BASE_URL": "",
}


def counts(db: Path) -> tuple[int, int, int]:
    """Return (tools, reviews, calls) in the store."""
    con = sqlite3.connect(db)
    try:
        return tuple(
            con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("tools", "reviews", "calls")
        )  # type: ignore[return-value]
    finally:
        con.close()


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    db = tmp_path / "panel.db"
    result = panel("import", SEED, "--db", db)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"imported 2 tool(s) and 8 review(s) into {db}"
    return db


def test_seed_comparison_reproduces_the_seed_figures(tmp_path: Path, seeded: Path) -> None:
    out = tmp_path / "out"
    # --stored needs no provider: a provider without a key proves it.
    result = panel(
        "compare",
        "smolvlm-3b",
        "mistral-8x22b-v2",
        "--stored",
        "--db",
        seeded,
        "--out",
        out,
        "--json",
        "--provider",
        "openai",
        env=NO_KEYS,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    a, b = payload["a"], payload["b"]
    for side in (a, b):
        assert side["panel"]["label"] == "Ship · 3 ship / 1 skip"
        assert side["panel"]["ship_pct"] == 75
        assert side["community"]["label"] == "No community votes yet"
        assert side["tool"]["entry"] == "Free" and side["tool"]["category"] == "Developer Tools"
    assert [(r["persona"], r["score"], r["verdict"]) for r in a["reviews"]] == [
        ("builder", 85, "ship"),
        ("skeptic", 78, "ship"),
        ("futurist", 82, "ship"),
        ("founder", 52, "skip"),
    ]
    assert [(r["score"], r["verdict"]) for r in b["reviews"]] == [
        (82, "ship"),
        (75, "ship"),
        (78, "ship"),
        (55, "skip"),
    ]
    assert a["tool"]["pricing"] == "Free (Apache 2.0 open weights)"
    assert b["tool"]["pricing"] == "Free (Apache 2.0 weights) / La Plateforme API pay-per-token"

    files = {k: Path(v) for k, v in payload["files"].items()}
    assert files["html"] == out / "compare" / "smolvlm-3b-vs-mistral-8x22b-v2.html"
    document = json.loads(files["json"].read_text())
    assert document["schema"] == "panel.compare/1"
    assert document["title"] == "SmolVLM-3B vs Mistral 8x22B v2"
    assert document["head_to_head"]["pick"] is None
    assert document["head_to_head"]["summary"].startswith("Too close to call")
    html, md = files["html"].read_text(), files["md"].read_text()
    for text in (html, md):
        for figure in (
            "75%",
            "Ship · 3 ship / 1 skip",
            "85/100 · ship",
            "52/100 · skip",
            "55/100 · skip",
            "No community votes yet",
        ):
            assert figure in text, figure
    assert not list(out.rglob("*.tmp")), "no temporary file may be left behind"
    assert counts(seeded)[2] == 0, "a comparison of stored reviews makes no model call"


def test_compare_summary_for_people(tmp_path: Path, seeded: Path) -> None:
    result = panel(
        "compare", "smolvlm-3b", "mistral-8x22b-v2", "--stored", "--db", seeded, "--out", tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert (
        "SmolVLM-3B: Ship · 3 ship / 1 skip · 75% panel ship · No community votes yet"
        in result.stdout
    )
    assert "Too close to call" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["smolvlm-3b", "smolvlm-3b"], "are the same tool"),
        (["smolvlm-3b", "no-such-tool"], "no-such-tool: neither a card file nor the slug"),
        (["smolvlm-3b", "missing.yaml"], "missing.yaml: no such file"),
    ],
)
def test_compare_bad_input(tmp_path: Path, seeded: Path, args: list[str], fragment: str) -> None:
    result = panel("compare", *args, "--db", seeded, "--out", tmp_path)
    assert (
        result.returncode == 2 and fragment in result.stderr and result.stderr.count("\n") == 1
    ), result.stderr


BAD_LINES = [
    ("not-json", "{nope", ":2: not valid JSON"),
    ("not-object", "[1, 2]", ":2: each line must be a JSON object"),
    ("bad-type", '{"type": "vote"}', ":2: type: must be"),
    (
        "card-missing-field",
        '{"type": "tool", "name": "X", "tagline": "t"}',
        ":2: description: required field is missing",
    ),
    (
        "unknown-tool",
        '{"type": "review", "tool": "ghost", "persona": "builder", "score": 80, "verdict": "ship", "review": "'
        + "x " * 30
        + '"}',
        "unknown tool 'ghost'",
    ),
    (
        "unknown-persona",
        '{"type": "review", "tool": "smolvlm-3b", "persona": "critic", "score": 80, "verdict": "ship", "review": "'
        + "x " * 30
        + '"}',
        "unknown persona 'critic'",
    ),
    (
        "score-101",
        '{"type": "review", "tool": "smolvlm-3b", "persona": "builder", "score": 101, "verdict": "ship", "review": "'
        + "word " * 30
        + '"}',
        "score",
    ),
    (
        "verdict-disagrees",
        '{"type": "review", "tool": "smolvlm-3b", "persona": "builder", "score": 30, "verdict": "ship", "review": "'
        + "word " * 30
        + '"}',
        "disagrees with score 30",
    ),
    (
        "empty-review",
        '{"type": "review", "tool": "smolvlm-3b", "persona": "builder", "score": 80, "verdict": "ship", "review": ""}',
        "review",
    ),
    (
        "bad-field-type",
        '{"type": "review", "tool": "smolvlm-3b", "persona": "skeptic", "score": 80, "verdict": "ship", "review": "'
        + "word " * 30
        + '", "competitors": "just one string"}',
        "competitors",
    ),
]


@pytest.mark.parametrize(
    ("line", "fragment"), [b[1:] for b in BAD_LINES], ids=[b[0] for b in BAD_LINES]
)
def test_a_bad_line_imports_nothing(tmp_path: Path, line: str, fragment: str) -> None:
    first = SEED.read_text().splitlines()[0]
    path = tmp_path / "records.jsonl"
    path.write_text(first + "\n" + line + "\n")
    db = tmp_path / "panel.db"
    result = panel("import", path, "--db", db)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr
    assert str(path) in result.stderr
    assert counts(db)[:2] == (0, 0), "nothing from a bad file may be half-imported"


def test_import_keeps_what_was_stored(tmp_path: Path, seeded: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "tool", "name": "New", "tagline": "t", "description": "d"}\n{broken\n')
    assert panel("import", bad, "--db", seeded).returncode == 2
    assert counts(seeded)[:2] == (2, 8)


def test_votes(tmp_path: Path, seeded: Path) -> None:
    def vote(*args: str) -> str:
        result = panel("vote", *args, "--db", seeded)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert vote("smolvlm-3b", "ship", "--voter", "ana") == "smolvlm-3b: 1 vote · 100% ship"
    assert vote("smolvlm-3b", "skip", "--voter", "bo") == "smolvlm-3b: 2 votes · 50% ship"
    assert vote("smolvlm-3b", "ship", "--voter", "bo") == "smolvlm-3b: 2 votes · 100% ship"
    bad = panel("vote", "smolvlm-3b", "maybe", "--db", seeded)
    assert bad.returncode == 2 and "'ship' or 'skip'" in bad.stderr
    ghost = panel("vote", "ghost", "ship", "--db", seeded)
    assert ghost.returncode == 2 and "no such tool" in ghost.stderr
    out = tmp_path / "out"
    payload = json.loads(
        panel(
            "compare",
            "smolvlm-3b",
            "mistral-8x22b-v2",
            "--stored",
            "--db",
            seeded,
            "--out",
            out,
            "--json",
        ).stdout
    )
    assert payload["a"]["community"]["label"] == "2 votes · 100% ship"
    assert (
        "2 votes · 100% ship"
        in (out / "compare" / "smolvlm-3b-vs-mistral-8x22b-v2.html").read_text()
    )


def test_site_build(tmp_path: Path, seeded: Path) -> None:
    out = tmp_path / "site"
    assert (
        panel(
            "compare", "smolvlm-3b", "mistral-8x22b-v2", "--stored", "--db", seeded, "--out", out
        ).returncode
        == 0
    )
    result = panel("site", "build", "--db", seeded, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "1 comparison(s), 2 tool page(s)" in result.stdout
    index = (out / "index.html").read_text()
    assert 'href="compare/smolvlm-3b-vs-mistral-8x22b-v2.html"' in index
    assert 'href="tools/smolvlm-3b.html"' in index
    assert (out / "tools" / "mistral-8x22b-v2.html").is_file()
    feed = ET.parse(out / "feed.atom").getroot()
    ns = {"a": "http://www.w3.org/2005/Atom"}
    titles = [e.findtext("a:title", namespaces=ns) for e in feed.findall("a:entry", ns)]
    assert titles == ["SmolVLM-3B vs Mistral 8x22B v2"]
    for page in out.rglob("*.html"):
        text = page.read_text()
        assert 'src="http' not in text and '<link rel="stylesheet" href="http' not in text


@pytest.mark.slow
def test_a_tool_without_reviews_is_reviewed_first(tmp_path: Path, seeded: Path) -> None:
    card = REPO / "examples" / "smolvlm2-2b.yaml"
    out = tmp_path / "out"
    result = panel("compare", card, "smolvlm-3b", "--db", seeded, "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    # Imported reviews were written by another model: both tools are reviewed by this one.
    assert counts(seeded) == (3, 16, 8), "both tools reviewed by the local model: eight calls"
    again = panel("compare", card, "smolvlm-3b", "--db", seeded, "--out", out, "--json")
    assert again.returncode == 0
    assert counts(seeded)[2] == 8, "a review panel review would reuse is reused: no call"


def test_the_pairwise_view_takes_each_orders_majority_and_counts_flips() -> None:
    from panel.compare import pairwise_head_to_head
    from panel.config import data_dir
    from panel.personas import load_personas
    from panel.store import StoredPair

    personas = load_personas(data_dir("personas"))

    def judged(persona: str, first: str, prefers: str, sample: int) -> StoredPair:
        second = "b" if first == "a" else "a"
        return StoredPair(
            first,
            second,
            "h" + first,
            "h" + second,
            persona,
            "p",
            "x",
            "m",
            prefers,
            "Because it ships.",
            1,
            0.0,
            sample,
        )

    judgments = [
        # builder: A first picks a twice of three; B first picks the second (a) every time
        *(judged("builder", "a", p, n) for n, p in enumerate(["first", "second", "first"])),
        *(judged("builder", "b", "second", n) for n in range(3)),
        # skeptic: a tie in both orders; futurist: the first shown both times (a flip)
        *(judged("skeptic", side, "tie", 0) for side in "ab"),
        *(judged("futurist", side, "first", 0) for side in "ab"),
        judged("founder", "b", "first", 0),  # judged in one order only
    ]
    a = {"tool": {"slug": "a", "name": "Alpha"}}
    b = {"tool": {"slug": "b", "name": "Beta"}}
    view = pairwise_head_to_head(a, b, judgments, personas)
    by = {p["persona"]: p for p in view["personas"]}
    assert by["builder"]["orders"] == ["a", "a"] and by["builder"]["pick"] == "a"
    assert by["skeptic"]["pick"] == "tie" and by["futurist"]["pick"] is None
    assert by["founder"]["orders"] == [None, "b"] and by["founder"]["pick"] is None
    assert "judged in one order only" in by["founder"]["line"]
    assert (view["a_wins"], view["b_wins"], view["ties"], view["inconsistent"]) == (1, 0, 1, 1)
    assert view["pick"] == "a" and view["pick_name"] == "Alpha"
    # builder 2 of 3 samples agree, skeptic 1 of 1, futurist 0 of 1: 3 of 5
    assert view["consistency"] == 0.6
