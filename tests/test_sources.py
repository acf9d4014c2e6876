"""Reading a launch page, and the checks in code that keep a card read from it honest."""

from __future__ import annotations

import datetime as dt

import pytest

from panel.errors import PageError
from panel.intake import card_of
from panel.sources import (
    Page,
    english_share,
    licence_id,
    read_page,
    supported_entry,
    supported_licence,
    supported_text,
    unsupported_terms,
)

NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
README = """---
title: "Introducing Quillmate"
---
<p align="center"><img src="logo.png" alt="logo"></p>

# Quillmate [![ci](https://ci.example/badge.svg)](https://ci.example)

Quillmate is an open-source writing assistant for developers, made by Inkwell Labs. It drafts
release notes from your diffs and runs on your own machine. It is free to use.

```shell
# Install it
pip install quillmate
```

## License

Quillmate is released under the Apache License, Version 2.0. Pro plans cost $9/month.
"""


def page(text: str = README, **facts: str) -> Page:
    read = read_page("https://quill.example/", "markdown", text, NOW)
    return Page(read.url, read.kind, read.text, {**read.facts, **facts}, NOW)


def test_a_readme_is_read_as_prose_with_its_title() -> None:
    read = page()
    assert read.facts["title"] == "Introducing Quillmate"
    assert "badge.svg" not in read.text and "<img" not in read.text and "title:" not in read.text
    assert read.findings == ()


def test_a_heading_in_code_is_not_the_title() -> None:
    text = "```\n# not a title\n```\n\n" + README.split("---\n", 2)[2]
    assert read_page("x.md", "markdown", text, NOW).facts["title"] == "Quillmate"


@pytest.mark.parametrize(
    ("text", "english"),
    [
        (README, True),
        (
            "Quillmate est un assistant d'écriture libre pour les développeurs du monde entier.",
            False,
        ),
        (
            "ChatGLM-6B 是一个开源的、支持中英双语的对话语言模型，基于 General Language Model 架构。"
            * 3,
            False,
        ),
    ],
)
def test_the_language_check(text: str, english: bool) -> None:
    assert (english_share(text) >= 0.03) is english


def test_an_empty_page_is_refused() -> None:
    with pytest.raises(PageError, match="holds no readable text"):
        read_page("x.html", "html", "<html><body><p>Hi</p></body></html>", NOW)


@pytest.mark.parametrize(
    ("spelt", "spdx"),
    [
        ("Apache License, Version 2.0", "Apache-2.0"),
        ("apache 2.0", "Apache-2.0"),
        ("MIT License", "MIT"),
        ("GPLv3", "GPL-3.0"),
        ("Llama 3 Community License", None),
    ],
)
def test_licences_are_named_by_their_spdx_name(spelt: str, spdx: str | None) -> None:
    assert licence_id(spelt) == spdx


def test_a_licence_must_be_on_the_page() -> None:
    read = page()
    assert supported_licence("Apache-2.0", read) == "Apache-2.0"
    assert supported_licence("MIT", read) is None  # not on the page
    assert supported_licence("Unknown", read) is None
    assert supported_licence("https://example.org/blob/main/LICENSE", read) is None
    linked = page(license="https://opensource.org/licenses/MIT")
    assert supported_licence("Unknown", linked) == "MIT"


@pytest.mark.parametrize(
    ("said", "kept"),
    [
        ("$9/month", "$9/month"),
        ("$19/month", None),  # a price the page does not state
        ("Free", "Free"),  # "free to use"
        ("€9", None),  # another currency
        ("Unknown", None),
    ],
)
def test_an_entry_price_must_be_on_the_page(said: str, kept: str | None) -> None:
    assert supported_entry(said, page()) == kept


def test_free_needs_the_page_to_say_so() -> None:
    quiet = page(README.replace("It is free to use.", ""))
    assert supported_entry("Free", quiet) is None
    assert (
        supported_entry("Free", page(README.replace("It is free to use.", ""), price="0")) == "Free"
    )


def test_invented_numbers_and_names_are_found_and_left_out() -> None:
    read = page()
    assert unsupported_terms("Quillmate drafts release notes for Inkwell Labs.", read) == []
    assert unsupported_terms("It has 10 million users at Google.", read) == ["10", "Google"]
    said = "Quillmate drafts release notes from diffs. Stripe uses it for 40 teams."
    kept, dropped = supported_text(said, read, 1000)
    assert kept == "Quillmate drafts release notes from diffs." and dropped == 1


def test_a_reading_becomes_a_card_with_only_what_the_page_supports() -> None:
    said = {
        "name": "Quillmate",
        "maker": "Anthropic",
        "tagline": "A writing assistant for developers.",
        "category": "Coding Agents",
        "pricing": "Paid",
        "entry": "$9/month",
        "license": "MIT",
        "description": "Quillmate drafts release notes. It won an award at NeurIPS 2025.",
    }
    card, dropped = card_of(page(), said)
    assert (card.name, card.maker, card.license, card.entry) == (
        "Quillmate",
        None,
        None,
        "$9/month",
    )
    assert card.description == "Quillmate drafts release notes." and dropped == 1
    assert card.category == "Coding Agents" and card.pricing == "Paid"
    assert card.source is not None and card.source.content_hash == page().content_hash()
    assert card.content_hash() == card.model_copy(update={"source": None}).content_hash()
