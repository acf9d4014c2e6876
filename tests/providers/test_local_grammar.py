"""The local grammar's profiles, without a model: the capable profile holds a model to the
layout and the lengths only, and an answer cut at a cap ends on a whole sentence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from panel.errors import ConfigError
from panel.personas import PAIR_SCHEMA, load_personas
from panel.providers.local_grammar import schema_to_gbnf, trim_capped
from panel.rules import FIELD_MAX_CHARS

REPO = Path(__file__).resolve().parents[2]


def test_the_capable_profile_keeps_the_layout_and_drops_the_prose_rules() -> None:
    persona = load_personas(REPO / "personas")[0]
    tiny = schema_to_gbnf(persona.answer_schema, profile="tiny")
    capable = schema_to_gbnf(persona.answer_schema, profile="capable")
    assert "opener ::=" in tiny and "opener ::=" not in capable
    assert capable.startswith('root ::= "{\\"review\\": " f-review')
    assert '", \\"verdict\\": \\"ship\\""' in capable  # the verdict still follows the score
    pair = schema_to_gbnf(PAIR_SCHEMA, profile="capable")
    assert '"\\"The first tool"' in pair and '" The second tool"' in pair
    with pytest.raises(ConfigError):
        schema_to_gbnf(PAIR_SCHEMA, profile="huge")


def test_a_field_cut_at_its_cap_ends_on_its_last_whole_sentence() -> None:
    schema = {"properties": {"review": {"type": "string"}, "kill_risk": {"type": "string"}}}
    glued = " ".join(["word"] * 46) + " implications forIoT,AR/VR,healthcare,"
    sentences = "It ships. " + " ".join(["word"] * 50)
    text = json.dumps({"review": "Fine.", "kill_risk": glued})
    assert json.loads(trim_capped(text, schema))["kill_risk"].endswith("word implications.")
    text = json.dumps({"review": "Fine.", "kill_risk": sentences})
    assert json.loads(trim_capped(text, schema))["kill_risk"] == "It ships."
    long_words = "It ships today. " + " ".join(["x" * 20] * 40)
    cut = json.loads(trim_capped(json.dumps({"kill_risk": long_words}), schema))["kill_risk"]
    assert cut == "It ships today." and len(cut) <= FIELD_MAX_CHARS
    short = json.dumps({"review": "Fine.", "kill_risk": "Short and whole"})
    assert trim_capped(short, schema) == short


def test_each_half_of_a_pair_reason_that_reached_its_cap_ends_on_a_whole_sentence() -> None:
    """At its word cap the 1.5B glued the rest of a sentence into one word ("used
    froma.phoneoverthelocal."): that half loses its unfinished sentence, the other is kept."""
    first = "The first tool card, Ollama Web UI, runs in Ollama. " + " ".join(["It"] * 37)
    glued = first + " used froma.phoneoverthelocal."
    second = "The second tool card, big-AGI, offers personas and voice input."
    text = json.dumps({"reason": f"{glued} {second}", "prefers": "tie"})
    reason = json.loads(trim_capped(text, PAIR_SCHEMA))["reason"]
    assert reason == f"The first tool card, Ollama Web UI, runs in Ollama. {second}"
    whole = json.dumps({"reason": f"The first tool is small. {second}", "prefers": "first"})
    assert trim_capped(whole, PAIR_SCHEMA) == whole
