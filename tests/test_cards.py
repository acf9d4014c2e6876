"""Tool cards: loading, slugs, normalisation, and one clear error per kind of bad card."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from panel.cards import MAX_DESCRIPTION_CHARS, clean_text, load_card, load_cards, slugify
from panel.errors import CardError
from tests.conftest import REPO

GOOD = "name: Tool X\ntagline: Does a thing\ndescription: A tool that does a thing well.\n"


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Mistral 3 Small (22B)", "mistral-3-small-22b"),
        ("Mistral 3 8B & 70B Instruct (Open Source)", "mistral-3-8b-70b-instruct-open-source"),
        ("SmolVLM2-2B", "smolvlm2-2b"),
        ("  Café  Déjà-Vu!! ", "cafe-deja-vu"),
    ],
)
def test_slug_is_derived_from_the_name(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_every_example_card_loads() -> None:
    cards = load_cards(sorted((REPO / "examples").glob("*.yaml")))
    assert len(cards) == 6
    assert {c.slug for c in cards} >= {"smolvlm-3b", "mistral-8x22b-v2", "smolvlm2-2b"}
    assert all(c.category == "Developer Tools" and c.entry == "Free" for c in cards)


def test_defaults_and_optional_fields(write_card: Callable[[str, str], Path]) -> None:
    card = load_card(write_card("x.yaml", GOOD + "launched: 2025-03-01\nurl: https://x.dev\n"))
    assert card.slug == "tool-x"
    assert card.category == "Developer Tools"
    assert card.launched is not None and card.launched.isoformat() == "2025-03-01"


def test_json_cards_load(write_card: Callable[[str, str], Path]) -> None:
    path = write_card("x.json", '{"name": "J", "tagline": "t", "description": "d", "slug": "jay"}')
    assert load_card(path).slug == "jay"


def test_invisible_characters_are_stripped() -> None:
    hidden = "Great\u200b tool\U000e0049\U000e0047\u202e\x07"
    assert clean_text(hidden) == "Great tool"


def test_content_hash_follows_content(write_card: Callable[[str, str], Path]) -> None:
    a = load_card(write_card("a.yaml", GOOD))
    b = load_card(write_card("b.yaml", GOOD))
    c = load_card(write_card("c.yaml", GOOD.replace("well", "badly")))
    assert a.content_hash() == b.content_hash() != c.content_hash()


BAD_CARDS: list[tuple[str, str, str | bytes, str]] = [
    # (id, file name, content, expected fragment of the error line)
    ("missing-name", "c.yaml", "tagline: t\ndescription: d\n", "name: required field is missing"),
    (
        "empty-tagline",
        "c.yaml",
        "name: n\ntagline: ''\ndescription: d\n",
        "tagline: must not be empty",
    ),
    (
        "blank-description",
        "c.yaml",
        "name: n\ntagline: t\ndescription: '   '\n",
        "description: must not be empty",
    ),
    (
        "wrong-type",
        "c.yaml",
        "name: [1, 2]\ntagline: t\ndescription: d\n",
        "name: must be text, got list",
    ),
    (
        "number-name",
        "c.yaml",
        "name: 42\ntagline: t\ndescription: d\n",
        "name: must be text, got int",
    ),
    ("not-yaml", "c.yaml", "name: n\ntagline: [unclosed\n", "invalid YAML at line"),
    ("not-json", "c.json", '{"name": "n",', "invalid JSON at line 1"),
    ("empty-file", "c.yaml", "", "file is empty"),
    ("whitespace-file", "c.yaml", "  \n\n", "file is empty"),
    ("a-list", "c.yaml", "- name: n\n", "a card must be a mapping of fields, got a list"),
    ("a-scalar", "c.yaml", "just words", "a card must be a mapping of fields, got str"),
    ("binary", "c.yaml", b"\x89PNG\r\n\x1a\n\x00\x00", "looks binary"),
    ("not-utf8", "c.yaml", "name: caf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
    (
        "too-long",
        "c.yaml",
        f"name: n\ntagline: t\ndescription: {'x' * (MAX_DESCRIPTION_CHARS + 1)}\n",
        f"at most {MAX_DESCRIPTION_CHARS} characters",
    ),
    ("unknown-field", "c.yaml", GOOD + "price: 3\n", "price: unknown field"),
    ("slug-with-path", "c.yaml", GOOD + "slug: ../etc/passwd\n", "slug: must be lowercase letters"),
    ("bad-url", "c.yaml", GOOD + "url: javascript:alert(1)\n", "url:"),
    ("bad-date", "c.yaml", GOOD + "launched: someday\n", "launched:"),
    (
        "no-letters-in-name",
        "c.yaml",
        "name: '!!!'\ntagline: t\ndescription: d\n",
        "no letters or digits",
    ),
    (
        "null-name",
        "c.yaml",
        "name: ~\ntagline: t\ndescription: d\n",
        "name: must be text, got nothing",
    ),
    (
        "name-too-long",
        "c.yaml",
        f"name: {'n' * 121}\ntagline: t\ndescription: d\n",
        "name: is too long",
    ),
    ("file-too-large", "c.yaml", GOOD + f"# {'x' * 70_000}\n", "file is larger than 64 KiB"),
    ("yaml-duplicate-key", "c.yaml", GOOD + "name: Other\n", "duplicate key 'name'"),
    ("json-duplicate-key", "c.json", '{"name": "a", "name": "b"}', "duplicate key 'name'"),
    ("deep-json", "c.json", '{"name": ' + "[" * 20_000 + "]" * 20_000 + "}", "nested too deeply"),
    ("deep-yaml", "c.yaml", "name: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested too deeply"),
    (
        "yaml-python-tag",
        "c.yaml",
        "name: !!python/object/apply:os.system [echo pwned]\ntagline: t\ndescription: d\n",
        "could not determine a constructor",
    ),
    (
        "yaml-alias-bomb",
        "c.yaml",
        "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        + "".join(
            f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + "name: *i\ntagline: t\ndescription: d\n",
        "name: must be text, got list",
    ),
]


@pytest.mark.parametrize(
    ("file", "content", "expected"), [b[1:] for b in BAD_CARDS], ids=[b[0] for b in BAD_CARDS]
)
def test_bad_cards_raise_a_card_error_naming_file_and_problem(
    write_card: Callable[[str, str | bytes], Path], file: str, content: str | bytes, expected: str
) -> None:
    path = write_card(file, content)
    with pytest.raises(CardError) as caught:
        load_card(path)
    message = str(caught.value)
    assert message.startswith(str(path) + ": ")
    assert expected in message
    assert "\n" not in message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CardError, match="no such file"):
        load_card(tmp_path / "nope.yaml")
    with pytest.raises(CardError, match="is a directory"):
        load_card(tmp_path)


def test_duplicate_slugs_in_one_run(write_card: Callable[[str, str], Path]) -> None:
    a = write_card("a.yaml", GOOD)
    b = write_card("b.yaml", GOOD.replace("A tool", "Another tool"))
    with pytest.raises(CardError, match="duplicate slug 'tool-x'"):
        load_cards([a, b])
