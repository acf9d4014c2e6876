"""The local model's GBNF grammar, written from a persona's portable JSON schema.

Not llama.cpp's own schema converter: that one expands length limits into grammars large enough
to crash, and lets raw newlines into strings. Ours has a fixed layout (no free whitespace) and
writes prose as a 135M model should be held to it:

- a word is letters and digits and the few symbols prose needs (' - / % $ & +, a period inside a
  number), one letter at the least ("a", "I"), punctuation only at its end, no capital after a
  lower-case letter and no more than one digit after one;
- a text field is whole sentences, each closed by a full stop, so a field ends where a sentence
  ends instead of running into a word cap and gluing the rest of its sentence into one "word";
- bounded sentences and words keep every answer inside the lengths panel.personas validates.

Every answer is valid JSON that ends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from panel.errors import ConfigError
from panel.rules import (
    FIELD_MAX_CHARS,
    LIST_ITEM_MAX_CHARS,
    REVIEW_MAX_CHARS,
    REVIEW_MIN_CHARS,
    SHIP_THRESHOLD,
)

CAPITALS = 5
"""Capitals, digits and % a word may start with ("GPT", "8B", "API", "$49", "30%")."""
WORD_TAIL = 15
"""Then lower-case letters and symbols ("state-of-the-art" fits), and one digit at most at the
end ("llama3"). No capital follows a lower-case letter, so no camelCase glue ("SmolVLM" is
written "Smolvlm"); no digits run on from lower-case letters, so no price or size fused to a
word ("only30mb", "cost%"); no period inside a word but in a number ("2.5", "$0.50"), so no two
sentences joined ("calls.15", "read.The")."""
WORD_CHARS = 1 + CAPITALS + WORD_TAIL + 1 + 2
"""The longest word the grammar admits, closing punctuation included (a number is shorter)."""


@dataclass(frozen=True)
class Prose:
    """A text field: `sentences` (min, max), each `words` (min, max) long."""

    sentences: tuple[int, int]
    words: tuple[int, int]
    first_words: int | None = None
    """Least words in the first two sentences (the review's floor), if not words[0]."""

    def most_chars(self) -> int:
        return self.sentences[1] * self.words[1] * (WORD_CHARS + 1)

    def least_chars(self) -> int:
        least = self.first_words or self.words[0]  # a sentence: words, spaces, a full stop
        return self.sentences[0] * 2 * least + self.sentences[0] - 1


# What a 135M model writes well is short: past these lengths it fills fields with noise, and
# every token costs about 40 ms on two cores (measured by `make bench-local`).
REVIEW = Prose(sentences=(2, 2), words=(10, 20))
"""Two sentences of ten to twenty words (41 characters at the least)."""
FIELD = Prose(sentences=(1, 1), words=(3, 12))
"""A persona's own text field: one sentence."""
LIST_ITEM_WORDS = 3
"""Words of a list item: a name such as "Apple Intelligence"."""
LIST_ITEMS = 3
"""Items of a list field (personas allow up to 5: a small model repeats itself past 3)."""

assert REVIEW.least_chars() >= REVIEW_MIN_CHARS and REVIEW.most_chars() <= REVIEW_MAX_CHARS
assert FIELD.most_chars() <= FIELD_MAX_CHARS
assert LIST_ITEM_WORDS * (WORD_CHARS + 1) <= LIST_ITEM_MAX_CHARS

_GRAMMAR_COMMON = rf"""
core ::= [A-Za-z0-9$(] [A-Z0-9%]{{0,{CAPITALS}}} [a-z'/&+-]{{0,{WORD_TAIL}}} [0-9]? | number
number ::= [$(]? [0-9]{{1,5}} "." [0-9]{{1,3}} [BKMTbkmx%]?
mid ::= core ")"? [,;:]?
end ::= core ")"? [.!?]
last ::= [A-Za-z0-9] [a-z']{{0,7}} [0-9]? ")"? [.!?]
opener ::= [A-Z] [a-z']{{1,14}} [,;:]?
name ::= core (" " core){{0,{LIST_ITEM_WORDS - 1}}}
int100 ::= "100" | [1-9] [0-9] | [0-9]
"""


def _sentence_rule(least: int, most: int) -> tuple[str, str]:
    """Return (name, rule) of a sentence of least to most words, closed by a full stop.

    A sentence opens with a capitalised word of two letters or more, so a text is prose (what
    Answer.check_rules asks), not a run of numbers. The word that reaches the cap is a short
    one: a model that has not finished its sentence by then ends it on a short word instead of
    fusing the rest of the sentence into one.
    """
    name = f"sent-{least}-{most}"
    body = f'opener " " (mid " "){{{least - 2},{most - 3}}} end | opener " " (mid " "){{{most - 2}}} last'
    return name, f"{name} ::= {body}"


def _prose_rules(prose: Prose) -> tuple[str, list[str]]:
    """Return the body of a text field's rule, and the sentence rules it uses."""
    least, most = prose.words
    any_name, any_rule = _sentence_rule(least, most)
    rules = [any_rule]
    first = [any_name] * prose.sentences[0]
    if prose.first_words:
        first_name, first_rule = _sentence_rule(prose.first_words, most)
        rules.append(first_rule)
        first = [first_name] * prose.sentences[0]
    extra = prose.sentences[1] - prose.sentences[0]
    body = ' " " '.join(first) + (f' (" " {any_name}){{0,{extra}}}' if extra else "")
    return f'"\\"" {body} "\\""', rules


def _scores(low: int, high: int) -> str:
    return " | ".join(f'"{n}"' for n in range(low, high + 1))


def _score_and_verdict(threshold: int) -> str:
    """Return the rule for `score, verdict` that only admits pairs obeying the verdict rule.

    A 135M model cannot be trusted to keep the two consistent, so its grammar does; other
    providers are checked in code and re-asked (panel.personas.Answer.check_rules).
    """
    ship = f'({_scores(threshold, 100)}) ", \\"verdict\\": \\"ship\\""'
    skip = f'({_scores(0, threshold - 1)}) ", \\"verdict\\": \\"skip\\""'
    return f"{ship} | {skip}"


def schema_to_gbnf(schema: dict[str, Any], ship_threshold: int = SHIP_THRESHOLD) -> str:
    """Return a GBNF grammar that only admits JSON objects of this (flat) portable schema."""
    rules: dict[str, str] = {}
    parts: list[str] = []
    properties = list(schema["properties"].items())
    if [name for name, _ in properties[-2:]] == ["score", "verdict"]:
        properties = properties[:-1]  # the verdict is written by the score rule
    for index, (name, prop) in enumerate(properties):
        rule = "f-" + name.replace("_", "-")
        kind = prop.get("type")
        if name == "score" and len(properties) < len(schema["properties"]):
            body = _score_and_verdict(ship_threshold)
        elif "enum" in prop:
            body = " | ".join(json.dumps(json.dumps(v)) for v in prop["enum"])
        elif kind == "integer":
            body = "int100"
        elif kind == "string":
            body, sentence_rules = _prose_rules(REVIEW if name == "review" else FIELD)
            rules.update((r.split(" ::=")[0], r) for r in sentence_rules)
        elif kind == "array" and prop.get("items", {}).get("type") == "string":
            body = f'"[\\"" name "\\"" (", \\"" name "\\""){{0,{LIST_ITEMS - 1}}} "]"'
        else:
            raise ConfigError(f"local provider: cannot constrain field '{name}' of type {kind}")
        rules[rule] = f"{rule} ::= {body}"
        key = ("{" if index == 0 else ", ") + json.dumps(name) + ": "
        parts.append(f"{json.dumps(key)} {rule}")
    root = "root ::= " + " ".join(parts) + ' "}"'
    return "\n".join([root, *rules.values()]) + _GRAMMAR_COMMON
