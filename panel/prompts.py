"""Prompt templates: Jinja2 files rendered strictly, with the tool card fenced as untrusted data.

Every call gets fresh random delimiters around the card, so text inside a card cannot forge
the end of the data block; runs of angle brackets in the card are softened besides, so nothing
in it even looks like a delimiter. The prompt version is a hash of the persona file and the
template sources: it changes when, and only when, what the model is asked changes.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import jinja2
import jinja2.sandbox

from panel.cards import ToolCard
from panel.errors import ConfigError
from panel.personas import Persona
from panel.providers.base import Message
from panel.rules import REVIEW_MAX_CHARS, REVIEW_MIN_CHARS, SHIP_THRESHOLD

TEMPLATES = ("system.j2", "user.j2", "reask.j2")

_MARKER_LIKE = re.compile(r"<{3,}|>{3,}")


def fenced(card: ToolCard) -> ToolCard:
    """Return card as the prompt shows it: runs of three or more < or > become one ‹ or ›."""

    def soften(text: str) -> str:
        return _MARKER_LIKE.sub(lambda m: "‹" if m.group()[0] == "<" else "›", text)

    changes = {
        name: soften(value)
        for name, value in card.model_dump().items()
        if isinstance(value, str) and _MARKER_LIKE.search(value)
    }
    return card.model_copy(update=changes) if changes else card


@dataclass(frozen=True)
class Prompt:
    """The messages for one persona reviewing one card, and what identifies them."""

    messages: list[Message]
    version: str
    """Hash of persona file + templates: the cache key part that says "same question"."""
    nonce: str
    """The random part of this call's delimiters."""

    @property
    def hash(self) -> str:
        """Hash of the exact messages sent (differs per call because of the nonce)."""
        return hashlib.sha256(json.dumps(self.messages).encode()).hexdigest()[:16]


class Prompts:
    """The prompt templates of one folder."""

    def __init__(self, folder: Path) -> None:
        missing = [name for name in TEMPLATES if not (folder / name).is_file()]
        if missing:
            raise ConfigError(f"{folder}: prompt template {missing[0]} not found")
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
            raise ConfigError(f"{self.folder / name}: {exc}") from None

    def review(self, persona: Persona, card: ToolCard) -> Prompt:
        """Return the system and user messages asking persona to review card."""
        nonce = secrets.token_hex(6)
        context = {
            "persona": persona,
            "card": fenced(card),
            "open": f"<<<TOOL_CARD_{nonce}>>>",
            "close": f"<<<END_TOOL_CARD_{nonce}>>>",
            "ship_threshold": SHIP_THRESHOLD,
            "review_chars": f"{REVIEW_MIN_CHARS} to {REVIEW_MAX_CHARS}",
        }
        messages = [
            {"role": "system", "content": self._render("system.j2", **context)},
            {"role": "user", "content": self._render("user.j2", **context)},
        ]
        return Prompt(messages=messages, version=self.version(persona), nonce=nonce)

    def reask(self, problems: list[str]) -> str:
        """Return the follow-up message that asks the model to fix its answer."""
        return self._render("reask.j2", problems=problems)
