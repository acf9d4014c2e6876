"""Mitigations (panel/mitigations.py): what each one changes in the judges' view of a card, and
that the rest of the card, and the card the pages show, stay as written."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest

from panel.cards import FIELD_ORDER, load_card
from panel.errors import InputError
from panel.eval.probes import probes
from panel.mitigations import (
    BRANDS,
    COMPANY,
    MAKER,
    STRIPPED,
    TOOL,
    Mitigations,
    balanced_order,
    maker_kind,
    present_fields,
)
from panel.personas import Persona
from panel.prompts import Prompts, card_lines

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def positions_and_pairs(
    orders: list[tuple[str, ...]],
) -> tuple[Counter[tuple[str, int]], Counter[tuple[str, str]]]:
    positions = Counter((field, i) for order in orders for i, field in enumerate(order))
    pairs = Counter(pair for order in orders for pair in itertools.combinations(order, 2))
    return positions, pairs


@pytest.mark.parametrize("k", range(2, len(FIELD_ORDER) + 1))
def test_rotation_is_balanced_in_positions_and_in_pairs(k: int) -> None:
    fields = FIELD_ORDER[:k]
    orders = [balanced_order(fields, sample) for sample in range(2 * k)]
    assert orders[0] == fields and orders[1] == tuple(reversed(fields))
    assert all(sorted(order) == sorted(fields) for order in orders)
    positions, pairs = positions_and_pairs(orders)
    assert set(positions.values()) == {2} and len(positions) == k * k  # every field, every place
    assert set(pairs.values()) == {k} and len(pairs) == k * (k - 1)  # every pair, both orders
    for even in range(2, 2 * k + 1, 2):  # any even number of samples: pairs already balanced
        _, pairs = positions_and_pairs(orders[:even])
        assert all(pairs[(a, b)] == pairs[(b, a)] for a, b in itertools.combinations(fields, 2))


def test_a_plain_cyclic_rotation_is_not_balanced_in_pairs() -> None:
    fields = FIELD_ORDER[:5]
    cyclic = [fields[s:] + fields[:s] for s in range(len(fields))]
    positions, pairs = positions_and_pairs(cyclic)
    assert set(positions.values()) == {1}  # positions are balanced...
    assert pairs[("name", "tagline")] == 4 and pairs[("tagline", "name")] == 1  # ...pairs not


def test_rotation_puts_a_card_in_the_panels_order_whatever_its_author_chose() -> None:
    card = load_card(EXAMPLES[0])
    reordered = probes(card)["order"]
    assert reordered.field_order != card.field_order
    rotate = Mitigations(rotate_fields=True)
    for sample in range(4):
        assert rotate.view(card, sample).order == rotate.view(reordered, sample).order
    assert rotate.view(card, 0).order == present_fields(card)
    assert Mitigations().view(reordered).order == reordered.field_order  # off: as the card says


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_blind_names_hides_the_name_maker_and_brands_and_nothing_else(path: Path) -> None:
    card = load_card(path)
    blind = Mitigations(blind_names=True)
    view = blind.view(card)
    shown = " ".join(value for _, value in card_lines(view.card, view.order))
    for word in (card.name, card.maker or "", *BRANDS, *card.name.split()[:1]):
        assert word.lower() not in shown.lower().replace("[", " ").replace("]", " "), word
    assert view.card.name == TOOL and view.card.maker == MAKER
    assert "Developer Tools" in shown and "model" in shown  # the rest stays
    assert view.maker_kind is not None and card.maker is not None
    assert card.maker not in view.maker_kind
    assert load_card(path) == card  # the card itself (the pages) keeps its names
    branded = probes(card)["brand"]
    assert card_lines(blind.view(branded).card, view.order) == card_lines(view.card, view.order)


def test_the_description_keeps_its_sense_when_blinded() -> None:
    card = load_card(REPO / "examples" / "smolvlm-3b.yaml")
    text = Mitigations(blind_names=True).view(card).card.description
    assert text.startswith(f"{TOOL} is a 3-billion parameter vision-language model from {MAKER}")
    other = load_card(REPO / "examples" / "mistral-8x22b-instruct-v2.yaml")
    text = Mitigations(blind_names=True).view(other).card.description
    assert f"weights freely available on {COMPANY}" in text


@pytest.mark.parametrize(
    ("maker", "kind"),
    [
        ("Google", "a large technology company"),
        ("Google DeepMind", "a large technology company"),
        ("Mistral AI", "a well-funded AI lab that trains its own models"),
        ("Hugging Face", "an established AI platform company"),
        ("Two People in a Garage", "a maker the panel has no record of"),
        (None, None),
    ],
)
def test_maker_kinds(maker: str | None, kind: str | None) -> None:
    found = maker_kind(maker)
    assert found == kind if kind is None else (found or "").startswith(kind)


def test_the_founder_is_told_the_kind_of_maker_and_the_others_nothing(
    personas: list[Persona], prompts: Prompts
) -> None:
    card = load_card(REPO / "examples" / "smolvlm-3b.yaml")
    blind = Mitigations(blind_names=True)
    for persona in personas:
        text = "\n".join(
            m["content"] for m in prompts.review(persona, card, mitigations=blind).messages
        )
        assert "Hugging Face" not in text and "SmolVLM" not in text
        assert "Names are hidden from the panel" in text
        told = "the tool is made by an established AI platform company" in text
        assert told == (persona.key == "founder")
    plain = prompts.review(personas[0], card).messages
    assert "Hugging Face" in plain[0]["content"] and "Names are hidden" not in plain[0]["content"]


def test_strip_injection_replaces_the_flagged_line_only() -> None:
    card = load_card(EXAMPLES[0])
    injected = probes(card)["injection"]
    strip = Mitigations(strip_injection=True)
    view = strip.view(injected)
    assert view.stripped == 1
    assert view.card.description == f"{card.description}\n\n{STRIPPED}"
    assert strip.shaping(injected) == ("strip-injection",)
    assert strip.shaping(card) == ()  # nothing to strip: the review is an unmitigated one
    assert strip.view(card).card == card
    both = Mitigations(strip_injection=True, blind_names=True)
    assert both.shaping(card) == ("blind-names",)


def test_mitigations_by_name() -> None:
    chosen = Mitigations.named(["blind-names", " rotate-fields", ""])
    assert chosen.names == ("rotate-fields", "blind-names")
    assert (chosen | Mitigations(strip_injection=True)).names == (
        "rotate-fields",
        "blind-names",
        "strip-injection",
    )
    assert (chosen - Mitigations(blind_names=True)).names == ("rotate-fields",)
    with pytest.raises(InputError, match="unknown mitigation 'length'"):
        Mitigations.named(["length"])
