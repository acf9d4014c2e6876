"""Comparisons: two tools' review documents side by side, with community votes and a head-to-head.

The comparison document (schema "panel.compare/1") is what every page is rendered from:

    {"schema": "panel.compare/1", "slug": "a-vs-b", "title": "A vs B", "generated_at": iso,
     "a": <review document of A (panel.review/1) + "community">,
     "b": <same for B>,
     "scorecard": [{"persona", "display_name", "a": review|null, "b": review|null,
                    "prefers": "a"|"b"|"tie"|null, "margin": int|null}],
     "head_to_head": {"a_wins", "b_wins", "ties", "mean_gap", "pick": "a"|"b"|null,
                      "pick_name": str|null, "summary": str},
     "provenance": {"models": [str], "prompt_versions": [str], "reviewed_from": iso|null,
                    "reviewed_to": iso|null}}

"community" is {"votes", "ship", "skip", "ship_pct": int|null, "label"}, the label being
"No community votes yet" or e.g. "12 votes · 67% ship".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from panel.cards import ToolCard
from panel.files import json_text, write_atomic
from panel.personas import Persona
from panel.results import provenance, tool_document
from panel.store import Store, StoredReview

SCHEMA = "panel.compare/1"

CLOSE_CALL_POINTS = 3.0
"""With equal panel ship %, a mean-score gap below this many points is too close to call."""


def community(store: Store, slug: str) -> dict[str, Any]:
    """Return the community vote summary of a tool."""
    ship, skip = store.vote_counts(slug)
    votes = ship + skip
    pct = round(100 * ship / votes) if votes else None
    if not votes:
        label = "No community votes yet"
    else:
        label = f"{votes} vote{'s' if votes != 1 else ''} · {pct}% ship"
    return {"votes": votes, "ship": ship, "skip": skip, "ship_pct": pct, "label": label}


_VS = re.compile(r"(?=-vs-)")


def comparison_slug(a: str, b: str) -> str:
    """Return the file name of the pair (a, b), distinct for distinct pairs: "a-vs-b", or, when a
    slug itself holds "-vs-" (so "a-vs-b" vs "c" and "a" vs "b-vs-c" would meet), the same
    followed by "--" and a hash of the pair. Plain names hold "-vs-" once, hashed ones twice."""
    plain = f"{a}-vs-{b}"
    if len(_VS.findall(plain)) == 1:
        return plain
    return f"{plain}--{hashlib.sha256(f'{a}/{b}'.encode()).hexdigest()[:12]}"


def _scorecard(
    a: dict[str, Any], b: dict[str, Any], personas: list[Persona]
) -> list[dict[str, Any]]:
    a_by = {r["persona"]: r for r in a["reviews"]}
    b_by = {r["persona"]: r for r in b["reviews"]}
    keys = [p.key for p in personas if p.key in a_by or p.key in b_by]
    keys += sorted((set(a_by) | set(b_by)) - set(keys))
    names = {p.key: p.display_name for p in personas}
    rows = []
    for key in keys:
        ra, rb = a_by.get(key), b_by.get(key)
        margin = ra["score"] - rb["score"] if ra and rb else None
        prefers = None if margin is None else "a" if margin > 0 else "b" if margin < 0 else "tie"
        rows.append(
            {
                "persona": key,
                "display_name": names.get(key) or (ra or rb or {}).get("display_name", key.title()),
                "a": ra,
                "b": rb,
                "prefers": prefers,
                "margin": abs(margin) if margin is not None else None,
            }
        )
    return rows


def _head_to_head(
    a: dict[str, Any], b: dict[str, Any], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    a_wins = sum(1 for r in rows if r["prefers"] == "a")
    b_wins = sum(1 for r in rows if r["prefers"] == "b")
    ties = sum(1 for r in rows if r["prefers"] == "tie")
    pa, pb = a["panel"], b["panel"]
    gap = round((pa["score_mean"] or 0) - (pb["score_mean"] or 0), 1)
    if pa["ship_pct"] != pb["ship_pct"]:
        pick: str | None = "a" if pa["ship_pct"] > pb["ship_pct"] else "b"
    elif abs(gap) >= CLOSE_CALL_POINTS:
        pick = "a" if gap > 0 else "b"
    else:
        pick = None
    name_a, name_b = a["tool"]["name"], b["tool"]["name"]
    split = f"{name_a} is preferred by {a_wins} persona{'s' if a_wins != 1 else ''}, {name_b} by {b_wins}"
    if ties:
        split += f", {ties} tied"
    points = f"{abs(gap):g} point{'s' if abs(gap) != 1 else ''} apart on average"
    if pick is None:
        summary = f"Too close to call: both at {pa['ship_pct']}% panel ship, {points}. {split}."
    else:
        winner, loser = (a, b) if pick == "a" else (b, a)
        why = (
            f"{winner['panel']['ship_pct']}% panel ship against {loser['panel']['ship_pct']}%"
            if pa["ship_pct"] != pb["ship_pct"]
            else f"{abs(gap):g} points higher on average"
        )
        summary = f"The panel picks {winner['tool']['name']}: {why}. {split}."
        if winner["panel"].get("flags"):
            summary += (
                f" {winner['tool']['name']} is flagged: read its flags before trusting the pick."
            )
    return {
        "a_wins": a_wins,
        "b_wins": b_wins,
        "ties": ties,
        "mean_gap": gap,
        "pick": pick,
        "pick_name": None if pick is None else (name_a if pick == "a" else name_b),
        "summary": summary,
    }


def comparison_document(
    a: dict[str, Any], b: dict[str, Any], personas: list[Persona], store: Store
) -> dict[str, Any]:
    """Return the comparison document of two review documents (see the module docstring)."""
    a = {**a, "community": community(store, a["tool"]["slug"])}
    b = {**b, "community": community(store, b["tool"]["slug"])}
    rows = _scorecard(a, b, personas)
    return {
        "schema": SCHEMA,
        "slug": comparison_slug(a["tool"]["slug"], b["tool"]["slug"]),
        "title": f"{a['tool']['name']} vs {b['tool']['name']}",
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "a": a,
        "b": b,
        "scorecard": rows,
        "head_to_head": _head_to_head(a, b, rows),
        "provenance": provenance(a["reviews"] + b["reviews"]),
    }


def comparison_for(
    store: Store,
    personas: list[Persona],
    cards: tuple[ToolCard, ToolCard],
    reviews_of: Callable[[ToolCard], list[StoredReview]] | None = None,
) -> dict[str, Any]:
    """Return the comparison document of two tools from stored reviews: those `reviews_of`
    gives for a card, by default each persona's latest."""
    keys = {p.key for p in personas}
    documents = []
    for card in cards:
        if reviews_of is None:
            latest = store.latest_reviews(card.slug)
            reviews = [r for key, found in latest.items() if key in keys for r in found]
        else:
            reviews = reviews_of(card)
        documents.append(tool_document(card, reviews, personas))
    return comparison_document(documents[0], documents[1], personas, store)


def write_pages(document: dict[str, Any], out: Path) -> dict[str, Path]:
    """Render a comparison document and write its .html, .md and .json, each atomically (and the
    site's script the page loads, if out lacks it)."""
    from panel import pages  # rendering is only needed here

    write_script(out)
    base = out / "compare" / document["slug"]
    files = {
        "html": base.with_suffix(".html"),
        "md": base.with_suffix(".md"),
        "json": base.with_suffix(".json"),
    }
    write_atomic(files["html"], pages.compare_html(document))
    write_atomic(files["md"], pages.compare_markdown(document))
    write_atomic(files["json"], json_text(document))
    return files


_scripts_written: set[Path] = set()
"""Output folders this process has given the site's script already."""


def write_script(out: Path) -> None:
    """Write the site's script (pages.SCRIPT_NAME) into out unless it is there as it should be:
    the tool and comparison pages load it from the folder's root."""
    from panel import pages

    if out in _scripts_written:
        return
    path, text = out / pages.SCRIPT_NAME, pages.vote_script()
    try:
        current = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        current = None
    if current != text:
        write_atomic(path, text)
    _scripts_written.add(out)
