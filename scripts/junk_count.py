"""Count the junk in review documents: glued words and other odd tokens, per review.

    .venv/bin/python scripts/junk_count.py [outputs/reviews/*.json ...]

A *glued word* is two words run together, the embedded model's typical slip: a one-letter word
fused to the next ("a.10", "a3%", "a[Apache"), a sentence joined without its space ("month.The",
"fine-tune,anddeploy"), a word fused to a price ("andrequires$49"), or a run of letters too long
to be one word. An *odd token* is any other token a reader would stop at: markup characters
inside a word, camelCase or letters around digits that the card does not itself contain
("aPrimitive", "a3dpc"). Tokens the card contains ("SmolVLM-3B") are never odd.

Prints one line per review with its odd tokens, then the totals; exits 0. The targets for the
embedded default: no glued words, at most one odd token per review.
"""

from __future__ import annotations

import glob
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ABBREVIATIONS = {"e.g.", "i.e.", "a.k.a.", "u.s.", "vs.", "etc.", "no.", "approx."}
_STRIP_LEFT = "(\"'“‘"
_STRIP_RIGHT = ".,;:!?)\"'”’…"

GLUED = {
    "letter-fused": re.compile(r"^a[.\[\]*%$\d]\S|^I[.\[\]*%$]\S"),
    "no-space": re.compile(r"[a-z][,;:][A-Za-z]|[a-z]{2}\.[A-Z]|[a-z]{2}\.\d"),
    "fused-price": re.compile(r"[a-z]{3}[$%]|[a-z]{3}\d{2}"),
    "too-long": re.compile(r"[a-z]{17,}"),
}
ODD = {
    "markup": re.compile(r"[*\[\]{}<>`|_~#@\\^]"),
    "camel": re.compile(r"[a-z][A-Z]"),
    "letters-around-digits": re.compile(r"[A-Za-z]\d+[A-Za-z]"),
}


def words(text: str) -> list[str]:
    """Return the tokens of text with the punctuation around them removed."""
    stripped = (token.lstrip(_STRIP_LEFT).rstrip(_STRIP_RIGHT) for token in text.split())
    return [token for token in stripped if token]


def odd_tokens(text: str, known: set[str]) -> list[tuple[str, str]]:
    """Return (token, kind) for every glued or odd token of text; kinds are GLUED's and ODD's keys."""
    found = []
    for token in words(text):
        if token.lower() in known or token.lower() + "." in ABBREVIATIONS:
            continue
        for kind, pattern in (*GLUED.items(), *ODD.items()):
            if pattern.search(token):
                found.append((token, kind))
                break
    return found


def known_tokens(tool: dict[str, Any]) -> set[str]:
    """Return the tokens of a card (lower-cased): what a review may repeat without being odd."""
    text = " ".join(str(value) for value in tool.values() if isinstance(value, str))
    return {token.lower() for token in words(text)} | ABBREVIATIONS


def review_texts(review: dict[str, Any]) -> Iterable[str]:
    """Return every text a review holds: the review and each field (list items one by one)."""
    yield review["review"]
    for value in review["fields"].values():
        yield from value if isinstance(value, list) else [value]


def count(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """Return per review its odd tokens, and the totals over all documents."""
    rows = []
    for document in documents:
        known = known_tokens(document["tool"])
        for review in document["reviews"]:
            found = [hit for text in review_texts(review) for hit in odd_tokens(text, known)]
            rows.append(
                {"tool": document["tool"]["slug"], "persona": review["persona"], "odd": found}
            )
    glued = sum(1 for row in rows for _, kind in row["odd"] if kind in GLUED)
    return {
        "reviews": len(rows),
        "glued": glued,
        "odd": sum(len(row["odd"]) for row in rows),
        "most_odd_in_one_review": max((len(row["odd"]) for row in rows), default=0),
        "rows": rows,
    }


def main(paths: list[str]) -> None:
    files = [Path(p) for pattern in paths or ["outputs/reviews/*.json"] for p in glob.glob(pattern)]
    documents = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(files)]
    result = count(documents)
    for row in result["rows"]:
        shown = ", ".join(f"{token} ({kind})" for token, kind in row["odd"]) or "-"
        print(f"{row['tool']:40} {row['persona']:10} {shown}")
    print(
        f"{result['reviews']} reviews in {len(documents)} documents: {result['glued']} glued "
        f"words, {result['odd']} odd tokens in all, at most {result['most_odd_in_one_review']} "
        "in one review"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
