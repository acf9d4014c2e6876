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

That prose grammar is the `tiny` profile, for SmolLM2-135M. A capable model (the `capable`
profile: Qwen2.5-Coder and any GGUF not in the catalogue) is held only to the JSON layout and
the lengths: its words are whatever it writes between spaces ("SmolVLM-3B" keeps its capitals),
a text field is a bounded run of words, and one that reaches its cap is cut back to its last
whole sentence (trim_capped), so no field ends mid-word or mid-sentence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from panel.errors import ConfigError
from panel.rules import (
    FIELD_MAX_CHARS,
    LIST_ITEM_MAX_CHARS,
    PAIR_REASON_MAX_CHARS,
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


PROFILES = ("tiny", "capable")
"""The grammar profiles a model can want (panel.models names each catalogue model's)."""

C_WORD_CHARS = 24
"""The longest word the capable profile admits (a longer one, a URL, is cut in two)."""
C_ITEM_WORD_CHARS = 20
"""The longest word of a list item."""
C_REVIEW_WORDS = (8, 64)
"""A review's words: two sentences, as the prompt asks, with room to end the second."""
C_TEXT_WORDS = (2, 24)
"""Another text field's words (a field is a phrase of at most twelve words, as the prompt
asks, with room to end it; trim_capped keeps it within the
characters panel.personas validates)."""
C_LETTER = r"[!#-\[\]-~\u00C0-\u024F\u2018\u2019\u201C\u201D\u2013\u2014]"
"""A character of a word: printable ASCII but the quote and the backslash, Latin letters with
accents, typographic quotes and dashes (no CJK: Qwen drifts into Chinese mid-sentence)."""

_CAPABLE_COMMON = rf"""
c-char ::= {C_LETTER}
c-word ::= c-char{{1,{C_WORD_CHARS}}}
c-end ::= c-char{{0,{C_WORD_CHARS - 1}}} [.!?]
c-item-word ::= [!#-+\--\[\]-~\u00C0-\u024F]{{1,{C_ITEM_WORD_CHARS}}}
int100 ::= "100" | [1-9] [0-9] | [0-9]
"""


def _capable_text(least: int, most: int) -> str:
    """Return the body of a text field of least to most whole words (see trim_capped)."""
    least, most = max(least, 1), max(most, 1)
    return f'"\\"" c-word (" " c-word){{{least - 1},{most - 1}}} "\\""'


def trim_capped(text: str, schema: dict[str, Any]) -> str:
    """Return a capable model's answer with every text field that reached its word cap, or
    runs past the characters panel.personas allows, cut back to its last whole sentence (a
    model stopped at a cap may glue its next words into the last one: "running
    under.realmemory"); a field of one unfinished sentence loses its last word and ends there.
    Other answers come back as they are."""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict):
        return text
    changed = False
    for name, value in data.items():
        prop = schema.get("properties", {}).get(name, {})
        if not isinstance(value, str) or prop.get("type") != "string" or "enum" in prop:
            continue
        if name == "reason" and _SECOND in value:
            trimmed = _trim_halves(value)
            data[name], changed = trimmed, changed or trimmed != value
            continue
        limit = _most_chars(name)
        if len(value.split(" ")) >= _capable_words(name)[1] or len(value) > limit:
            data[name], changed = _cut(value, limit), True
    return json.dumps(data, ensure_ascii=False) if changed else text


_SECOND = " The second tool"
"""Where the grammar opens the second half of a pair's reason (see _comparison)."""


def _trim_halves(reason: str) -> str:
    """Return a pair's reason with each half that reached its word cap cut back to its last
    whole sentence (at the cap a model glues its next words into one: "froma.phoneoverthe")."""
    first, _, second = reason.partition(_SECOND)
    second = _SECOND.lstrip() + second
    halves = []
    for half in (first, second):
        if len(half.split(" ")) >= C_HALF_WORDS[1]:
            half = _cut(half, len(half))
        halves.append(half)
    return " ".join(halves)


def _most_chars(name: str) -> int:
    if name == "review":
        return REVIEW_MAX_CHARS
    return PAIR_REASON_MAX_CHARS if name == "reason" else FIELD_MAX_CHARS


def _cut(value: str, limit: int) -> str:
    """Return value cut back to its last sentence end within limit, else to its last whole
    word but one (the one at the cap may be glued), closed by a full stop."""
    head = value[:limit]
    end = max(head.rfind(". "), head.rfind("! "), head.rfind("? "))
    if end > 0:
        return head[: end + 1]
    words = head[: limit - 1].split(" ")[:-1] or [head[: limit - 1]]
    return " ".join(words).rstrip(",;:-") + "."


def _capable_words(name: str) -> tuple[int, int]:
    """Return the least and most words of text field `name`, within the lengths
    panel.personas validates (a pair's reason, the comparison, may run longer than a field)."""
    if name == "review":
        return C_REVIEW_WORDS[0], min(C_REVIEW_WORDS[1], REVIEW_MAX_CHARS // (C_WORD_CHARS + 1))
    if name == "reason":
        return C_HALF_WORDS[0] * 2, C_HALF_WORDS[1] * 2 + 4
    return C_TEXT_WORDS


C_HALF_WORDS = (4, 40)
"""Words of each half of a pair's reason."""


def _comparison() -> str:
    """Return the body of a pair answer's reason: one part on each card, opened by the grammar
    ("The first tool", "The second tool"), so a small model weighs both before it picks
    instead of restating the card it read first."""
    least, most = C_HALF_WORDS
    half = f'[,:]? (" " c-word){{{least - 1},{most - 1}}} " " c-end'
    return f'"\\"The first tool" {half} " The second tool" {half} "\\""'


def _capable_field(name: str, prop: dict[str, Any]) -> str | None:
    """Return the rule body of a text or list field under the capable profile (None: other)."""
    kind = prop.get("type")
    if name == "reason" and kind == "string":
        return _comparison()
    if kind == "string" and "enum" not in prop:
        return _capable_text(*_capable_words(name))
    if kind == "array" and prop.get("items", {}).get("type") == "string":
        items = prop.get("maxItems", LIST_ITEMS)
        words = LIST_ITEM_MAX_CHARS // (C_ITEM_WORD_CHARS + 1)
        item = f'"\\"" c-item-word (" " c-item-word){{0,{words - 1}}} "\\""'
        return f'"[" {item} (", " {item}){{0,{int(items) - 1}}} "]"'
    return None


def schema_to_gbnf(
    schema: dict[str, Any], ship_threshold: int = SHIP_THRESHOLD, profile: str = "tiny"
) -> str:
    """Return a GBNF grammar that only admits JSON objects of this (flat) portable schema,
    written for a model of this profile (PROFILES)."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown grammar profile '{profile}' ({', '.join(PROFILES)})")
    capable = profile == "capable"
    rules: dict[str, str] = {}
    parts: list[str] = []
    properties = list(schema["properties"].items())
    if [name for name, _ in properties[-2:]] == ["score", "verdict"]:
        properties = properties[:-1]  # the verdict is written by the score rule
    for index, (name, prop) in enumerate(properties):
        rule = "f-" + name.replace("_", "-")
        kind = prop.get("type")
        capable_body = _capable_field(name, prop) if capable else None
        if capable_body is not None:
            body = capable_body
        elif name == "score" and len(properties) < len(schema["properties"]):
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
    return "\n".join([root, *rules.values()]) + (_CAPABLE_COMMON if capable else _GRAMMAR_COMMON)


assert (C_HALF_WORDS[1] * 2 + 4) * (C_WORD_CHARS + 1) <= PAIR_REASON_MAX_CHARS
