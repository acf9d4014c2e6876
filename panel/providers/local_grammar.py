"""The local model's GBNF grammar, written from a persona's portable JSON schema.

Not llama.cpp's own schema converter: that one expands length limits into grammars large enough
to crash, and lets raw newlines into strings. Ours has a fixed layout (no free whitespace), text
made of bounded words, and a bounded word count, so every answer is valid JSON that ends, inside
the lengths panel.personas validates.
"""

from __future__ import annotations

import json
from typing import Any

from panel.errors import ConfigError
from panel.rules import FIELD_MAX_CHARS, LIST_ITEM_MAX_CHARS, SHIP_THRESHOLD

# Word bounds keep every answer inside the limits panel.personas validates: a word is 2 to
# WORD_CHARS characters, so N words take at most N * (WORD_CHARS + 1) characters.
WORD_CHARS = 24
TEXT_WORDS = {"review": (14, 110)}
"""(min, max) words of a text field by name: 14 words >= 40 characters, 110 words <= 4000."""
DEFAULT_TEXT_WORDS = (2, FIELD_MAX_CHARS // (WORD_CHARS + 1))
LIST_ITEM_WORDS = (1, LIST_ITEM_MAX_CHARS // (WORD_CHARS + 1))

_GRAMMAR_COMMON = rf"""
word ::= [A-Za-z0-9(] wchar{{1,{WORD_CHARS - 1}}}
wchar ::= [^"\\\x00-\x1F\x7F ] | "\\\""
int100 ::= "100" | [1-9] [0-9] | [0-9]
"""


def _text_rule(min_words: int, max_words: int) -> str:
    return f'"\\"" word (" " word){{{min_words - 1},{max_words - 1}}} "\\""'


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
    rules: list[str] = []
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
            body = _text_rule(*TEXT_WORDS.get(name, DEFAULT_TEXT_WORDS))
        elif kind == "array" and prop.get("items", {}).get("type") == "string":
            item = _text_rule(*LIST_ITEM_WORDS)
            body = f'"[" {item} (", " {item}){{0,4}} "]"'
        else:
            raise ConfigError(f"local provider: cannot constrain field '{name}' of type {kind}")
        rules.append(f"{rule} ::= {body}")
        key = ("{" if index == 0 else ", ") + json.dumps(name) + ": "
        parts.append(f"{json.dumps(key)} {rule}")
    root = "root ::= " + " ".join(parts) + ' "}"'
    return "\n".join([root, *rules]) + _GRAMMAR_COMMON
