"""Launch pages into tool cards: `panel card`, and a URL wherever a card is given.

A source (an http(s) URL, an .html/.md/.txt file, or `-`) is fetched (panel.fetch: capped, one
deadline, no private address), read (panel.sources: main text, metadata, the injection scan),
asked about as the third kind of question (panel.questions CARD_KIND, through Runtime.plan and
Runtime.answer: one key, built by Reviewer.key from the page's text hash, so a page whose text
has not changed is not asked about again), and made into a card in code: a name, maker,
licence or entry price the page does not support is left out, and a description keeps only
the sentences whose numbers and proper nouns the page holds. The card carries its `source`:
the URL, when it was fetched, the hash of the text, and what the scan found in the page (its
reviews then carry the injection flag, as a hand-written card's would).
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from panel.cards import (
    MAX_DESCRIPTION_CHARS,
    Flag,
    Source,
    ToolCard,
    is_url,
    load_cards,
    parse_card,
)
from panel.config import Settings
from panel.errors import PageError
from panel.fetch import fetch
from panel.files import read_capped
from panel.personas import CARD_CATEGORIES, READER
from panel.questions import reading_of
from panel.runtime import Runtime
from panel.sources import (
    UNKNOWN,
    Page,
    opening_text,
    read_page,
    supported_entry,
    supported_licence,
    supported_text,
    supported_value,
)
from panel.store import StoredCard

FILE_KINDS = {
    ".html": "html",
    ".htm": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
}
DEFAULT_CATEGORY = "Developer Tools"


@dataclass(frozen=True)
class Intake:
    """A card read from a page: the card, the page, whether the reading was stored already,
    and how many sentences of the model's the page did not support (left out)."""

    card: ToolCard
    page: Page
    reused: bool
    dropped: int

    def summary(self) -> str:
        """Return the one line that says what was found and what is unknown."""
        card = self.card
        found = [f"name {card.name}"] + [
            f"{label} {value}"
            for label, value in (
                ("maker", card.maker),
                ("licence", card.license),
                ("entry", card.entry),
            )
            if value
        ]
        unknown = [
            label
            for label, value in (
                ("maker", card.maker),
                ("licence", card.license),
                ("entry", card.entry),
            )
            if not value
        ]
        notes = [f"unknown: {', '.join(unknown)}" if unknown else "nothing unknown"]
        if self.dropped:
            notes.append(f"{self.dropped} sentence(s) the page does not support left out")
        if card.findings:
            kinds = sorted({f.kind for f in card.findings})
            notes.append(f"flagged by the injection scan: {', '.join(kinds)}")
        notes.append("reading reused (page unchanged)" if self.reused else "page read now")
        return f"{card.slug}: " + "; ".join(found) + " · " + "; ".join(notes)


async def page_at(source: str, settings: Settings) -> Page:
    """Return the page a source names: a URL fetched, a file or `-` (standard input) read."""
    if is_url(source):
        fetched = await fetch(
            source,
            allow_private=settings.allow_private,
            max_bytes=settings.max_page_bytes,
            deadline=settings.fetch_timeout,
        )
        return read_page(fetched.url, fetched.kind, fetched.text(), fetched.fetched_at)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if source == "-":
        raw = sys.stdin.buffer.read(settings.max_page_bytes + 1)
        kind = "html" if raw.lstrip()[:1] == b"<" else "text"
    else:
        path = Path(source)
        kind = FILE_KINDS.get(path.suffix.lower(), "")
        if not kind:
            raise PageError(source, "is not a page: give a URL, an .html, .md or .txt file, or -")
        raw = read_capped(path, settings.max_page_bytes, "page")
    if len(raw) > settings.max_page_bytes:
        raise PageError(source, f"is larger than {settings.max_page_bytes} bytes")
    if b"\x00" in raw:
        raise PageError(source, "looks binary (NUL bytes), not a page")
    return read_page(source, kind, raw.decode("utf-8", errors="replace"), now)


async def card_from(runtime: Runtime, source: str) -> Intake:
    """Return the card of a source, read by the run's model (a stored reading of the same
    text reused); raise PageError for a page that cannot be used, the provider's error if the
    model gave no valid reading."""
    page = await page_at(source, runtime.settings)
    plan = runtime.plan([reading_of(page, READER)])
    runtime.estimate(plan)  # a --max-cost ceiling that cannot be kept is refused here
    answers, errors = await runtime.answer(plan.planned)
    if errors:
        raise next(iter(errors.values()))
    (reading,) = answers
    assert isinstance(reading, StoredCard)
    card, dropped = card_of(page, reading.fields)
    return Intake(card, page, reused=not plan.calls, dropped=dropped)


async def cards_at(runtime: Runtime, args: Iterable[str]) -> dict[str, ToolCard]:
    """Return the card of every URL among a command's card arguments, by URL (each read once)."""
    read: dict[str, ToolCard] = {}
    for arg in args:
        if is_url(arg) and arg not in read:
            read[arg] = (await card_from(runtime, arg)).card
    return read


async def named_cards(runtime: Runtime, args: Sequence[str]) -> list[ToolCard]:
    """Return the cards a command names, files and URLs (panel.cards.load_cards): every file
    checked before any page is read."""
    load_cards([arg for arg in args if not is_url(arg)])
    return load_cards(args, await cards_at(runtime, args))


def card_of(page: Page, said: dict[str, str]) -> tuple[ToolCard, int]:
    """Return the card a reading of page makes, keeping only what the page supports (see the
    module docstring), and how many sentences were left out for it."""
    name = supported_value(said.get("name"), page, "name") or page.facts.get("title")
    if not name:
        raise PageError(page.url, "names no tool (no name in its text or metadata)")
    description, dropped = supported_text(said.get("description"), page, MAX_DESCRIPTION_CHARS)
    tagline, cut = supported_text(said.get("tagline"), page, 300)
    description = description or opening_text(page, 1000)
    entry = supported_entry(said.get("entry"), page)
    licence = supported_licence(said.get("license"), page)
    category = said.get("category", "")
    data = {
        "name": name[:120],
        "tagline": tagline or _words_within(description, 300),
        "description": description,
        "category": category if category in CARD_CATEGORIES else DEFAULT_CATEGORY,
        "pricing": _pricing(said.get("pricing", ""), entry, licence),
        "entry": entry,
        "maker": (supported_value(said.get("maker"), page, "maker") or "")[:300] or None,
        "license": licence,
        "url": page.url if is_url(page.url) and len(page.url) <= 500 else None,
        "source": _source(page).model_dump(mode="json"),
    }
    card = parse_card({k: v for k, v in data.items() if v is not None}, page.url)
    return card, dropped + cut


def _words_within(text: str, limit: int) -> str:
    """Return text cut at its last whole word within limit characters."""
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0]


def _pricing(said: str, entry: str | None, licence: str | None) -> str | None:
    """Return the pricing a card may state: "Free" or "Paid" as its entry price says, "Open
    source" where a licence was found; else nothing."""
    said = said.strip()
    if said.casefold() in UNKNOWN:
        return None
    if said == "Open source" and licence:
        return "Open source"
    if entry == "Free" and said in ("Free", "Freemium", "Open source"):
        return "Free"
    if entry and entry != "Free" and said in ("Paid", "Freemium"):
        return said
    return None


def _source(page: Page) -> Source:
    flags = [Flag(kind=f.kind, excerpt=f.excerpt[:200]) for f in page.findings[:20]]
    return Source(
        url=page.url,
        fetched_at=page.fetched_at,
        content_hash=page.content_hash(),
        flagged=flags,
    )


def card_yaml(card: ToolCard) -> str:
    """Return a card as the YAML file every command accepts (fields in the panel's order)."""
    data = card.model_dump(mode="json", exclude_none=True, exclude={"slug"})
    if data.get("source", {}).get("flagged") == []:
        del data["source"]["flagged"]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=96)
