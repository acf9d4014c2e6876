"""Comparisons: two tools' review documents side by side, with community votes and a head-to-head.

The comparison document (schema "panel.compare/1") is what every page is rendered from:

    {"schema": "panel.compare/1", "slug": "a-vs-b", "title": "A vs B", "generated_at": iso,
     "a": <review document of A (panel.review/1) + "community">,
     "b": <same for B>,
     "scorecard": [{"persona", "display_name", "a": review|null, "b": review|null,
                    "prefers": "a"|"b"|"tie"|null, "margin": int|null}],
     "head_to_head": {"a_wins", "b_wins", "ties", "mean_gap", "pick": "a"|"b"|null,
                      "pick_name": str|null, "summary": str,
                      "pairwise": <see below, only when the pair was judged>},
     "verdict": <the one verdict of the page: see `verdict`>,
     "judge": <who judged, reviews and pair judgments: see results.judge>,
     "provenance": {"models": [str], "prompt_versions": [str], "reviewed_from": iso|null,
                    "reviewed_to": iso|null}}

"community" is {"votes", "ship", "skip", "ship_pct": int|null, "label"}, the label being
"No community votes yet" or e.g. "12 votes · 67% ship".

The head-to-head above is the score-based view: each persona's two absolute reviews set side
by side. When the pair itself was judged (compare --pairwise: each persona reads both cards and
says which it would ship with, once with A shown first and once with B first),
"head_to_head.pairwise" holds that view:

    {"pick": "a"|"b"|null, "pick_name": str|null, "a_wins", "b_wins", "ties",
     "inconsistent", "consistency": float|null, "summary": str, "models": [str],
     "personas": [{"persona", "display_name", "pick": "a"|"b"|"tie"|null,
                   "orders": [answer with A first, answer with B first], "reason", "line"}]}

Each order's answer is mapped to "a", "b" or "tie" (null: not judged), the majority of its
samples where there are several. A persona's pick counts only when its two orders agree; two
that disagree make it inconsistent (a position effect), counted, never dropped. "consistency"
is the share of the persona judgments (one per persona and sample) whose two orders agree.
The pick is the tool more personas pick in both orders (null on a draw).

Where the judge reported its probabilities (the local model always; an OpenAI-compatible
server with --logprobs), the pairwise view also holds "probabilities", the pick read from them:

    {"a": float, "b": float, "tie": float, "position_lean": float, "pick": "a"|"b"|null,
     "pick_name": str|null, "summary": str}

and each persona entry its own {"a", "b", "tie", "position_lean", "pick"} (null where it was
not read in both orders). P(A) is the mean of P(first) with A shown first and P(second) with B
shown first (likewise B), so a constant preference for a position cancels; "position_lean" is
the mean P(first) less the mean P(second), the position effect itself. A pick needs a lean of
PROBABILITY_MARGIN between the two. The pairwise "pick", "pick_name" and "summary" then come
from the probabilities and "pick_from" says so ("probabilities"; "answers" otherwise): the
counts (a_wins, b_wins, ties, inconsistent, consistency) stay those of the sampled answers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from panel.cards import ToolCard
from panel.files import json_text, write_atomic
from panel.personas import PAIR_CHOICES, Persona
from panel.results import judge, provenance, tool_document
from panel.store import Store, StoredPair, StoredReview

SCHEMA = "panel.compare/1"

CLOSE_CALL_POINTS = 3.0
"""With equal panel ship %, a mean-score gap below this many points is too close to call."""
PROBABILITY_MARGIN = 0.05
"""How much more probable one tool must be than the other, both orders combined, to be picked."""


def community(store: Store, slug: str) -> dict[str, Any]:
    """Return the community vote summary of a tool: its votes, and how many distinct client
    networks they came from (Store.vote_summary: many votes from few networks show)."""
    return community_of(*store.vote_summary(slug))


def community_of(ship: int, skip: int, networks: int) -> dict[str, Any]:
    """Return the community vote summary of a tool's vote totals (see community)."""
    votes = ship + skip
    pct = round(100 * ship / votes) if votes else None
    if not votes:
        label = "No community votes yet"
    else:
        label = f"{votes} vote{'s' if votes != 1 else ''} · {pct}% ship"
    return {
        "votes": votes,
        "ship": ship,
        "skip": skip,
        "ship_pct": pct,
        "label": label,
        "networks": networks,
    }


_VS = re.compile(r"(?=-vs-)")


def comparison_slug(a: str, b: str) -> str:
    """Return the file name of the pair (a, b), distinct for distinct pairs: "a-vs-b", or, when a
    slug itself holds "-vs-" (so "a-vs-b" vs "c" and "a" vs "b-vs-c" would meet), the same
    followed by "--" and a hash of the pair. Plain names hold "-vs-" once, hashed ones twice."""
    plain = f"{a}-vs-{b}"
    if ("vs" not in a and "vs" not in b) or len(_VS.findall(plain)) == 1:
        return plain  # (without "vs" in either slug, the joint is the one "-vs-")
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


def _mean_gap(a: dict[str, Any], b: dict[str, Any]) -> float:
    return round((a["panel"]["score_mean"] or 0) - (b["panel"]["score_mean"] or 0), 1)


def score_pick(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """Return the tool the absolute reviews of two review documents pick: "a" or "b" by panel
    ship %, else by a mean-score gap of CLOSE_CALL_POINTS or more; None: too close to call."""
    pa, pb = a["panel"], b["panel"]
    gap = _mean_gap(a, b)
    if pa["ship_pct"] != pb["ship_pct"]:
        return "a" if (pa["ship_pct"] or 0) > (pb["ship_pct"] or 0) else "b"
    if abs(gap) >= CLOSE_CALL_POINTS:
        return "a" if gap > 0 else "b"
    return None


def _head_to_head(
    a: dict[str, Any], b: dict[str, Any], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    a_wins = sum(1 for r in rows if r["prefers"] == "a")
    b_wins = sum(1 for r in rows if r["prefers"] == "b")
    ties = sum(1 for r in rows if r["prefers"] == "tie")
    pa, pb = a["panel"], b["panel"]
    gap = _mean_gap(a, b)
    pick = score_pick(a, b)
    name_a, name_b = a["tool"]["name"], b["tool"]["name"]
    split = f"{name_a} is preferred by {a_wins} persona{'s' if a_wins != 1 else ''}, {name_b} by {b_wins}"
    if ties:
        split += f", {ties} tied"
    points = f"{abs(gap):g} point{'s' if abs(gap) != 1 else ''} apart on average"
    if pick is None:
        summary = f"Too close to call on the scores: both at {pa['ship_pct']}% panel ship, {points}. {split}."
    else:
        winner, loser = (a, b) if pick == "a" else (b, a)
        why = (
            f"{winner['panel']['ship_pct']}% panel ship against {loser['panel']['ship_pct']}%"
            if pa["ship_pct"] != pb["ship_pct"]
            else f"{abs(gap):g} points higher on average"
        )
        summary = f"{winner['tool']['name']} leads on the scores: {why}. {split}."
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


def _majority(answers: list[str]) -> str | None:
    """Return the answer most samples give ("tie" when two answers lead), None for none."""
    if not answers:
        return None
    counts = Counter(answers).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return "tie"
    return counts[0][0]


def _mapped(judgment: StoredPair, a_slug: str) -> str:
    """Return what a judgment prefers as "a", "b" or "tie", whichever card was shown first."""
    if judgment.prefers == "tie":
        return "tie"
    a_first = judgment.first == a_slug
    return "a" if (judgment.prefers == "first") == a_first else "b"


def _persona_pairwise(
    key: str, display_name: str, judged: list[StoredPair], a_slug: str, names: dict[str, str]
) -> tuple[dict[str, Any], list[bool]]:
    """Return one persona's pairwise entry, and for each sample judged in both orders whether
    the two orders agree."""
    a_first = sorted((j for j in judged if j.first == a_slug), key=lambda j: j.sample)
    b_first = sorted((j for j in judged if j.first != a_slug), key=lambda j: j.sample)
    orders = [_majority([_mapped(j, a_slug) for j in found]) for found in (a_first, b_first)]
    pick = orders[0] if orders[0] is not None and orders[0] == orders[1] else None
    reasons = [j for j in a_first + b_first if pick is None or _mapped(j, a_slug) == pick]
    agree = order_agreements(judged, a_slug)
    entry = {
        "persona": key,
        "display_name": display_name,
        "pick": pick,
        "orders": orders,
        "reason": reasons[0].reason if reasons else None,
        "line": _persona_line(display_name, orders, names),
        "probabilities": order_probabilities(a_first, b_first),
    }
    return entry, agree


def _mean_choice(judged: list[StoredPair]) -> dict[str, float] | None:
    """Return the mean P(first), P(second), P(tie) over judgments of one order (None if any
    was not read as probabilities)."""
    read = [(j.probabilities or {}).get("prefers") for j in judged]
    if not read or any(not p for p in read):
        return None
    return {c: statistics.fmean(p.get(c, 0.0) for p in read if p) for c in PAIR_CHOICES}


def order_probabilities(
    a_first: list[StoredPair], b_first: list[StoredPair]
) -> dict[str, Any] | None:
    """Return one persona's pick read from its probabilities in both orders (see the module
    docstring), or None unless both orders were read."""
    one, other = _mean_choice(a_first), _mean_choice(b_first)
    if one is None or other is None:
        return None
    p_a = (one["first"] + other["second"]) / 2
    p_b = (one["second"] + other["first"]) / 2
    lean = (one["first"] + other["first"]) / 2 - (one["second"] + other["second"]) / 2
    return {
        "a": round(p_a, 3),
        "b": round(p_b, 3),
        "tie": round((one["tie"] + other["tie"]) / 2, 3),
        "position_lean": round(lean, 3),
        "pick": _leaning(p_a, p_b),
    }


def _leaning(p_a: float, p_b: float) -> str | None:
    """Return "a" or "b" when one is PROBABILITY_MARGIN more probable, else None."""
    if abs(p_a - p_b) < PROBABILITY_MARGIN:
        return None
    return "a" if p_a > p_b else "b"


def _panel_probabilities(
    entries: list[dict[str, Any]], names: dict[str, str]
) -> dict[str, Any] | None:
    """Return the panel's pick read from its personas' probabilities (their mean), or None
    when no persona's were read in both orders."""
    read = [e["probabilities"] for e in entries if e["probabilities"] is not None]
    if not read:
        return None
    mean = {
        k: round(statistics.fmean(p[k] for p in read), 3)
        for k in ("a", "b", "tie", "position_lean")
    }
    pick = _leaning(mean["a"], mean["b"])
    lean = mean["position_lean"]
    position = (
        f"; the judges lean {abs(lean):.2f} towards the card shown {'first' if lean > 0 else 'second'}, "
        "which the two orders cancel"
        if abs(lean) >= PROBABILITY_MARGIN
        else ""
    )
    odds = f"P({names['a']}) {mean['a']:.2f} against P({names['b']}) {mean['b']:.2f}"
    if pick is None:
        summary = (
            f"Too close to call from the judges' probabilities in both orders: {odds}{position}."
        )
    else:
        summary = (
            f"Read from the judges' probabilities in both orders, the panel leans to "
            f"{names[pick]}: {odds}{position}."
        )
    return {
        **mean,
        "pick": pick,
        "pick_name": None if pick is None else names[pick],
        "summary": summary,
    }


def order_agreements(judgments: list[StoredPair], a_slug: str) -> list[bool]:
    """Return, for each sample one persona answered in both orders of a pair, whether its two
    answers agree (mapped to "a", "b" or "tie"); `judgments` are that persona's."""
    b_first = {j.sample: _mapped(j, a_slug) for j in judgments if j.first != a_slug}
    return [
        _mapped(j, a_slug) == b_first[j.sample]
        for j in sorted(judgments, key=lambda j: j.sample)
        if j.first == a_slug and j.sample in b_first
    ]


def _persona_line(display_name: str, orders: list[str | None], names: dict[str, str]) -> str:
    """Return what a persona's two orders say, in a sentence for the page."""

    def verb(answer: str | None) -> str:
        return "calls it a tie" if answer == "tie" else f"picks {names[answer or 'a']}"

    who = f"The {display_name}"
    first, second = orders
    if first is not None and first == second:
        return f"{who} {verb(first)} in both orders."
    if (first, second) in (("a", "b"), ("b", "a")):
        position = "first" if first == "a" else "second"
        return f"{who} flipped with the order: it picks whichever tool is shown {position}."
    if first is not None and second is not None:
        return (
            f"{who} flipped with the order: {verb(first)} when {names['a']} is shown first, "
            f"{verb(second)} when {names['b']} is."
        )
    shown, answer = (names["a"], first) if first is not None else (names["b"], second)
    return f"{who} was judged in one order only: {verb(answer)} when {shown} is shown first."


def pairwise_head_to_head(
    a: dict[str, Any], b: dict[str, Any], judgments: list[StoredPair], personas: list[Persona]
) -> dict[str, Any]:
    """Return the pairwise view of the head-to-head from the pair's judgments in both orders
    (see the module docstring)."""
    a_slug = a["tool"]["slug"]
    names = {"a": a["tool"]["name"], "b": b["tool"]["name"]}
    display = {p.key: p.display_name for p in personas}
    found = {j.persona for j in judgments}
    keys = [p.key for p in personas if p.key in found] + sorted(found - set(display))
    entries, agreements = [], []
    for key in keys:
        mine = [j for j in judgments if j.persona == key]
        entry, agree = _persona_pairwise(key, display.get(key, key.title()), mine, a_slug, names)
        entries.append(entry)
        agreements.extend(agree)
    counts = Counter(entry["pick"] for entry in entries)
    inconsistent = sum(1 for e in entries if None not in e["orders"] and e["pick"] is None)
    a_wins, b_wins = counts["a"], counts["b"]
    pick = "a" if a_wins > b_wins else "b" if b_wins > a_wins else None
    summary = _pairwise_summary(pick, names, counts, inconsistent, len(entries))
    read = _panel_probabilities(entries, names)
    if read is not None:
        pick = read["pick"]
        summary = (
            f"{read['summary']} Sampled answers: {_answer_counts(names, counts, inconsistent)}."
        )
    return {
        "pick": pick,
        "pick_name": None if pick is None else names[pick],
        "pick_from": "answers" if read is None else "probabilities",
        "a_wins": a_wins,
        "b_wins": b_wins,
        "ties": counts["tie"],
        "inconsistent": inconsistent,
        "consistency": round(sum(agreements) / len(agreements), 3) if agreements else None,
        "summary": summary,
        "probabilities": read,
        "models": sorted({f"{j.provider}/{j.model}" for j in judgments}),
        "personas": entries,
    }


def _personas(n: int) -> str:
    return f"{n} persona{'s' if n != 1 else ''}"


def _answer_counts(
    names: dict[str, str], counts: Counter[str | None], flipped: int
) -> tuple[str, str]:
    """Return the sampled answers' tally ("A 2, B 1, 1 tied") and their flips ("no persona
    flipped")."""
    split = f"{names['a']} {counts['a']}, {names['b']} {counts['b']}"
    if counts["tie"]:
        split += f", {counts['tie']} tied"
    flips = f"{_personas(flipped)} flipped with the order" if flipped else "no persona flipped"
    return split, flips


def _pairwise_summary(
    pick: str | None, names: dict[str, str], counts: Counter[str | None], flipped: int, total: int
) -> str:
    personas = _personas
    split, flips = _answer_counts(names, counts, flipped)
    if pick is not None:
        return (
            f"Judged side by side in both orders, the panel picks {names[pick]}: "
            f"{counts[pick]} of {personas(total)} pick it in both orders ({split}); {flips}."
        )
    if flipped and flipped == total:
        return (
            f"No pick: every persona flipped with the order (a position effect), so the judged "
            f"pair says nothing about {names['a']} against {names['b']}."
        )
    return f"Too close to call side by side: {split}; {flips}."


def comparison_document(
    a: dict[str, Any],
    b: dict[str, Any],
    personas: list[Persona],
    store: Store,
    pairs: list[StoredPair] | None = None,
) -> dict[str, Any]:
    """Return the comparison document of two review documents (see the module docstring),
    with the pairwise head-to-head when judgments of the pair are given; a document that
    holds its "community" already keeps it (the site read the votes with every tool's)."""
    a, b = (
        doc if "community" in doc else {**doc, "community": community(store, doc["tool"]["slug"])}
        for doc in (a, b)
    )
    rows = _scorecard(a, b, personas)
    head_to_head = _head_to_head(a, b, rows)
    if pairs:
        head_to_head["pairwise"] = pairwise_head_to_head(a, b, pairs, personas)
    reviews = a["reviews"] + b["reviews"]
    return {
        "schema": SCHEMA,
        "slug": comparison_slug(a["tool"]["slug"], b["tool"]["slug"]),
        "title": f"{a['tool']['name']} vs {b['tool']['name']}",
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "a": a,
        "b": b,
        "scorecard": rows,
        "head_to_head": head_to_head,
        "verdict": verdict(head_to_head),
        "judge": judge(reviews, head_to_head.get("pairwise", {}).get("models")),
        "provenance": provenance(reviews),
    }


VERDICT_RULE = (
    "The pick judged side by side leads when there is one; without it, the scores decide. "
    "When the two disagree, the verdict says Split and names both."
)


def verdict(head_to_head: dict[str, Any]) -> dict[str, Any]:
    """Return the one verdict of a comparison (VERDICT_RULE) from its head-to-head:

        {"pick": "a"|"b"|null, "pick_name": str|null, "kind": "judged"|"scores"|"split"|
         "lean"|"none", "headline": str, "explanation": str, "rule": str}

    "judged": the judged pick, the scores agree or do not pick; "split": the judged pick, the
    scores lean the other way; "lean": no judged pick, the scores lean one way; "scores": not
    judged side by side, the scores pick; "none": nobody picks."""
    judged = head_to_head.get("pairwise")
    scores = head_to_head["pick_name"]
    kind, pick, name = _verdict_kind(head_to_head)
    if kind == "split":
        headline = f"Split: judged side by side the panel picks {name}; its scores lean {scores}"
    elif kind == "lean":
        headline = f"No clear pick: too close to call side by side; the scores lean {scores}"
    elif pick is not None:
        headline = f"The panel picks {name}"
    else:
        headline = "Too close to call"
    return {
        "pick": pick,
        "pick_name": name,
        "kind": kind,
        "headline": headline,
        "explanation": _verdict_explanation(kind, judged, head_to_head),
        "rule": VERDICT_RULE,
    }


def _verdict_kind(head_to_head: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """Return the verdict's kind, its pick and the pick's name (see `verdict`)."""
    judged = head_to_head.get("pairwise")
    scores = head_to_head["pick"]
    if judged is None:
        kind = "scores" if scores else "none"
        return kind, scores, head_to_head["pick_name"]
    if judged["pick"] is None:
        return ("lean" if scores else "none"), None, None
    kind = "split" if scores not in (None, judged["pick"]) else "judged"
    return kind, judged["pick"], judged["pick_name"]


def _verdict_explanation(
    kind: str, judged: dict[str, Any] | None, head_to_head: dict[str, Any]
) -> str:
    """Return what the verdict rests on, in words."""
    side_by_side = (
        "Judged side by side, each persona read both cards in both orders and said which it "
        "would ship with"
    )
    scores = "each persona reviewed each tool on its own, and the scores are set side by side"
    if kind == "split":
        return (
            f"{side_by_side}; separately, {scores}. The two disagree: the judged pick leads, "
            "because it asks the question directly; read both before you choose."
        )
    if kind == "judged":
        agree = "agree" if head_to_head["pick"] else "are too close to call"
        return f"{side_by_side}; the scores (each tool reviewed on its own) {agree}."
    if kind == "lean":
        return (
            f"{side_by_side}, and no tool was picked in both orders; the scores (each tool "
            "reviewed on its own) lean one way, too little to call it a pick."
        )
    if kind == "scores":
        return f"The scores decide: {scores}. The pair was not judged side by side."
    if judged is not None:
        return f"{side_by_side}, and no tool was picked; the scores are too close to call too."
    return f"The scores decide, and they are too close to call: {scores}."


def comparison_for(
    store: Store,
    personas: list[Persona],
    cards: tuple[ToolCard, ToolCard],
    reviews_of: Callable[[ToolCard], list[StoredReview]] | None = None,
    pairs: list[StoredPair] | None = None,
) -> dict[str, Any]:
    """Return the comparison document of two tools from stored reviews: those `reviews_of`
    gives for a card, by default each persona's latest; with the pair judgments given."""
    keys = {p.key for p in personas}
    documents = []
    for card in cards:
        if reviews_of is None:
            latest = store.latest_reviews(card.slug)
            reviews = [r for key, found in latest.items() if key in keys for r in found]
        else:
            reviews = reviews_of(card)
        documents.append(tool_document(card, reviews, personas))
    return comparison_document(documents[0], documents[1], personas, store, pairs)


def page_texts(document: dict[str, Any]) -> dict[str, str]:
    """Return the texts of a comparison's three files, by suffix: its HTML and Markdown pages
    and the document itself."""
    from panel import pages  # rendering is only needed here

    return {
        ".html": pages.compare_html(document),
        ".md": pages.compare_markdown(document),
        ".json": json_text(document),
    }


def write_pages(document: dict[str, Any], out: Path) -> dict[str, Path]:
    """Render a comparison document and write its .html, .md and .json, each atomically (and the
    site's scripts the page loads, if out lacks them)."""
    write_script(out)
    files = page_paths(document, out)
    for suffix, text in page_texts(document).items():
        write_atomic(files[suffix[1:]], text)
    return files


def page_paths(document: dict[str, Any], out: Path) -> dict[str, Path]:
    """Return where a comparison's three files are under out: {"html", "md", "json"}."""
    base = out / "compare" / document["slug"]
    return {kind: base.with_suffix(f".{kind}") for kind in ("html", "md", "json")}


_scripts_written: set[Path] = set()
"""Output folders this process has given the site's scripts already."""


def write_script(out: Path) -> None:
    """Write the site's scripts (pages.SCRIPTS) into out unless they are there as they should
    be: the pages load them from the folder's root."""
    from panel import pages

    if out in _scripts_written:
        return
    for name in pages.SCRIPTS:
        path, text = out / name, pages.script(name)
        try:
            current = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            current = None
        if current != text:
            write_atomic(path, text)
    _scripts_written.add(out)
