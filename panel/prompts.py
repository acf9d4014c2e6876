"""Prompt templates: Jinja2 files rendered strictly, with the tool card fenced as untrusted data.

A prompt is laid out so that the calls of a panel share a prefix: first what every persona is
told (card.j2: the panel's rules and the fenced card, the system message), then the persona's
own part (persona.j2). A provider's prompt cache (llama.cpp's KV cache, OpenAI's automatic
caching, Anthropic's cache_control) then evaluates a card once for its four calls.

The card sits between random delimiters, one fence per card shared by its calls: the nonce is a
keyed hash of the card under a key drawn fresh for each run, so no card can know its fence and
forge the end of the data block. Runs of angle brackets in the card are softened besides, so
nothing in it even looks like a delimiter. The prompt version is a hash of the persona file and
the template sources: it changes when, and only when, what the model is asked changes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import jinja2
import jinja2.sandbox

from panel.cards import ToolCard
from panel.errors import ConfigError
from panel.mitigations import Mitigations, View
from panel.personas import CARD_CATEGORIES, CARD_SCHEMA, Persona
from panel.providers.base import Message
from panel.rules import SHIP_THRESHOLD
from panel.sources import SHOWN_FACT_CHARS, Page

TEMPLATES = ("card.j2", "persona.j2", "reask.j2")
PAIR_TEMPLATES = ("pair.j2", "pair_persona.j2")
"""The templates of a pair judgment (two cards side by side), needed only when one is asked."""
READING_TEMPLATE = "reading.j2"
"""The template of a launch page read into a card (`panel card`), needed only when one is."""
READING_ASK = "Now fill in the tool card of the page above as one JSON object."

_MARKER_LIKE = re.compile(r"<{3,}|>{3,}")


def soften(text: str) -> str:
    """Return text with runs of three or more < or > as one ‹ or ›: nothing looks like a fence."""
    return _MARKER_LIKE.sub(lambda m: "‹" if m.group()[0] == "<" else "›", text)


def fenced(card: ToolCard) -> ToolCard:
    """Return card as the prompt shows it: runs of three or more < or > become one ‹ or ›."""
    changes = {
        name: soften(value)
        for name, value in card.model_dump().items()
        if isinstance(value, str) and _MARKER_LIKE.search(value)
    }
    return card.model_copy(update=changes) if changes else card


LABELS = {
    "name": "Name",
    "tagline": "Tagline",
    "category": "Category",
    "pricing": "Pricing",
    "entry": "Entry price",
    "maker": "Maker",
    "license": "License",
    "url": "URL",
    "launched": "Launched",
    "description": "Description",
}


def card_lines(card: ToolCard, order: tuple[str, ...]) -> list[tuple[str, str]]:
    """Return the (label, value) lines of card as the prompt shows them, in `order`, empty
    fields left out (the outcome label is never shown)."""
    values = card.model_dump(mode="json")
    return [(LABELS[name], str(values[name])) for name in order if values.get(name)]


@dataclass(frozen=True)
class Prompt:
    """The messages for one persona reviewing one card, and what identifies them."""

    messages: list[Message]
    version: str
    """Hash of persona file + templates: the cache key part that says "same question"."""
    nonce: str
    """The random part of the card's delimiters (the same for every persona in a run)."""

    @property
    def hash(self) -> str:
        """Hash of the exact messages sent (differs from run to run because of the nonce)."""
        return hashlib.sha256(json.dumps(self.messages).encode()).hexdigest()[:16]


class Prompts:
    """The prompt templates of one folder."""

    def __init__(self, folder: Path) -> None:
        missing = [name for name in TEMPLATES if not (folder / name).is_file()]
        if missing:
            raise ConfigError(f"prompt template {missing[0]} not found", path=str(folder))
        self.folder = folder
        # A prompts folder may come from anywhere: templates run sandboxed, so
        # {{ cycler.__init__.__globals__.os }} is a SecurityError, not a shell.
        self._env = jinja2.sandbox.SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(folder),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # prompts are plain text for a model, never HTML
            trim_blocks=True,
            keep_trailing_newline=False,
        )
        self._fence_key = secrets.token_bytes(16)
        # A folder of one's own may lack the pair templates: it reviews, and judges no pair.
        pair_names = (*PAIR_TEMPLATES, "reask.j2")
        self._pair_sources_hash = (
            hashlib.sha256(b"".join((folder / n).read_bytes() for n in pair_names)).hexdigest()
            if all((folder / n).is_file() for n in PAIR_TEMPLATES)
            else None
        )
        self._sources_hash = hashlib.sha256(
            b"".join((folder / name).read_bytes() for name in TEMPLATES)
        ).hexdigest()

    def version(self, persona: Persona) -> str:
        """Return the prompt version of persona with these templates."""
        return hashlib.sha256((persona.source_hash + self._sources_hash).encode()).hexdigest()[:12]

    def _render(self, name: str, **context: object) -> str:
        try:
            return self._env.get_template(name).render(**context).strip()
        except jinja2.TemplateError as exc:
            raise ConfigError(f"{exc}", path=str(self.folder / name)) from None

    def fence(self, card: ToolCard | Page) -> str:
        """Return the nonce of card's delimiters in this run: shared by its calls, unguessable."""
        digest = hmac.new(self._fence_key, card.content_hash().encode(), hashlib.sha256)
        return digest.hexdigest()[:12]

    def pair_version(self, persona: Persona) -> str:
        """Return the prompt version of persona's pair judgment with these templates."""
        if self._pair_sources_hash is None:
            missing = next(n for n in PAIR_TEMPLATES if not (self.folder / n).is_file())
            raise ConfigError(f"prompt template {missing} not found", path=str(self.folder))
        return hashlib.sha256((persona.source_hash + self._pair_sources_hash).encode()).hexdigest()[
            :12
        ]

    def _fenced_card(self, card: ToolCard, view: View) -> dict[str, object]:
        """Return what a template shows of one card as its judges see it (`view`): its lines
        (softened, never the outcome label) between the delimiters of its fence in this run."""
        nonce = self.fence(card)
        shown = fenced(view.card).model_copy(update={"outcome": None})  # a label is never shown
        return {
            "card": shown,  # for prompt folders of your own; the templates show card_lines
            "card_lines": card_lines(shown, view.order),
            "open": f"<<<TOOL_CARD_{nonce}>>>",
            "close": f"<<<END_TOOL_CARD_{nonce}>>>",
        }

    def pair(
        self,
        persona: Persona,
        first: ToolCard,
        second: ToolCard,
        *,
        sample: int = 0,
        mitigations: Mitigations | None = None,
    ) -> Prompt:
        """Return the messages asking persona which of two cards it would ship with, `first`
        shown first, both as the mitigations show them to sample `sample`: both cards (each in
        its own fence, the lines a review shows), then persona's part. The two orders of a pair
        share no prefix; the four personas of one order do."""
        version = self.pair_version(persona)
        mitigations = mitigations or Mitigations()
        context = {
            "persona": persona,
            "first": self._fenced_card(first, mitigations.view(first, sample)),
            "second": self._fenced_card(second, mitigations.view(second, sample)),
            "names_hidden": mitigations.blind_names,
        }
        messages = [
            {"role": "system", "content": self._render("pair.j2", **context)},
            {"role": "user", "content": self._render("pair_persona.j2", **context)},
        ]
        nonce = f"{self.fence(first)} {self.fence(second)}"
        return Prompt(messages=messages, version=version, nonce=nonce)

    def review(
        self,
        persona: Persona,
        card: ToolCard,
        *,
        sample: int = 0,
        mitigations: Mitigations | None = None,
    ) -> Prompt:
        """Return the messages asking persona to review card (as the mitigations show it to
        sample `sample`): the card's part, then persona's."""
        view = (mitigations or Mitigations()).view(card, sample)
        context = {
            "persona": persona,
            **self._fenced_card(card, view),
            "ship_threshold": SHIP_THRESHOLD,
            "names_hidden": bool(mitigations and mitigations.blind_names),
            # Only a persona that needs the maker is told what kind it is (never its name).
            "maker_kind": view.maker_kind if persona.needs_maker else None,
        }
        messages = [
            {"role": "system", "content": self._render("card.j2", **context)},
            {"role": "user", "content": self._render("persona.j2", **context)},
        ]
        return Prompt(messages=messages, version=self.version(persona), nonce=self.fence(card))

    def reading_version(self, persona: Persona) -> str:
        """Return the prompt version of a page's reading (the template, the re-ask and the
        answer's schema; the reader is no persona file)."""
        path = self.folder / READING_TEMPLATE
        if not path.is_file():
            raise ConfigError(
                f"prompt template {READING_TEMPLATE} not found", path=str(self.folder)
            )
        sources = path.read_bytes() + (self.folder / "reask.j2").read_bytes()
        schema = json.dumps(CARD_SCHEMA, sort_keys=True).encode()
        return hashlib.sha256(sources + schema + persona.key.encode()).hexdigest()[:12]

    def reading(self, persona: Persona, page: Page) -> Prompt:
        """Return the messages asking for page's card: the page (what its metadata states,
        then its text, softened) between the delimiters of its fence in this run."""
        nonce = self.fence(page)
        context = {
            "open": f"<<<TOOL_CARD_{nonce}>>>",
            "close": f"<<<END_TOOL_CARD_{nonce}>>>",
            "url": soften(page.url),
            "facts": [
                (f"Page {k}", soften(v[:SHOWN_FACT_CHARS])) for k, v in sorted(page.facts.items())
            ],
            "text": soften(page.shown_text()),
            "categories": CARD_CATEGORIES,
        }
        messages: list[Message] = [
            {"role": "system", "content": self._render(READING_TEMPLATE, **context)},
            {"role": "user", "content": READING_ASK},
        ]
        return Prompt(messages=messages, version=self.reading_version(persona), nonce=nonce)

    def reask(self, problems: list[str]) -> str:
        """Return the follow-up message that asks the model to fix its answer."""
        return self._render("reask.j2", problems=problems)
