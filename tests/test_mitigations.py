"""Mitigations (panel/mitigations.py): what each one changes in the judges' view of a card, and
that the rest of the card, and the card the pages show, stay as written."""

from __future__ import annotations

import itertools
import json
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


# --- through the command line ---------------------------------------------------------------


def test_a_mitigation_is_a_setting_recorded_with_its_reviews_and_shown_on_the_pages(
    tmp_path: Path,
) -> None:
    """Flag, PANEL_* variable and config key; the review document names it; the pages say it
    and keep the real names; its reviews are stored apart from unmitigated ones."""
    from panel.testing.fakes import judges
    from panel.testing.fakes.openai import FakeOpenAI
    from tests.cli.test_cli import panel

    config = tmp_path / "config.toml"
    config.write_text("[panel]\nstrip_injection = true\n")
    cards = [str(p) for p in EXAMPLES[:2]]
    with FakeOpenAI(content=judges.brand_loving) as server:
        env = {"OPENAI_API_KEY": "sk-test-mitigations-0000000000000", "PANEL_CONFIG": str(config)}
        args = ["--provider", "openai", "--base-url", server.base_url, "--model", "fake"]
        args += ["--db", str(tmp_path / "panel.db"), "--out", str(tmp_path / "out")]
        plain = panel("compare", *cards, *args, "--no-strip-injection", env=env)
        assert plain.returncode == 0, plain.stderr
        assert server.answered == 8
        blind = panel(
            "compare",
            *cards,
            *args,
            env={**env, "PANEL_BLIND_NAMES": "1", "PANEL_ROTATE_FIELDS": "true"},
        )
        assert blind.returncode == 0, blind.stderr
        assert server.answered == 16  # stored apart: nothing reused from the plain run
        again = panel(
            "review", cards[0], "--json", *args, "--blind-names", "--rotate-fields", env=env
        )
        assert server.answered == 16  # flags and variables name the same reviews
    shown = [judges.card_text(b) for b in server.bodies[8:]]
    assert all("Name: [TOOL]" in text and "Hugging Face" not in text for text in shown)
    document = json.loads(again.stdout)
    assert {tuple(r["mitigations"]) for r in document["reviews"]} == {
        ("rotate-fields", "blind-names")
    }
    assert document["tool"]["name"] == "Mistral 3 8B & 70B Instruct (Open Source)"
    pages = tmp_path / "out" / "compare"
    html = next(pages.glob("*.html")).read_text()
    markdown = next(pages.glob("*.md")).read_text()
    for page in (html, markdown):
        assert "names, maker and brands hidden from the judges" in page
        assert "Mistral 3 8B" in page  # the pages keep the real names
    assert "<dt>Mitigations</dt>" in html
