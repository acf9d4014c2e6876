"""Tool cards: the YAML or JSON file that describes one AI tool launch, loaded and validated.

A card is untrusted text. Loading it scans the raw text for injection attempts (kept with the
card as its `findings`), strips invisible characters, bounds every field and turns every problem
into a CardError naming the file and the field.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from panel.errors import CardError, InputError
from panel.files import read_capped
from panel.injection import INVISIBLE, Finding, scan
from panel.parsing import ParseError, load_json, load_yaml

MAX_CARD_BYTES = 64 * 1024
"""A card file larger than this is refused before it is parsed."""

MAX_DESCRIPTION_CHARS = 4000
"""The documented size limit of a card's description."""

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$"

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(text: str) -> str:
    """Return text with invisible and control characters removed and Unicode normalised (NFC)."""
    text = unicodedata.normalize("NFC", text)
    return _CONTROL.sub("", INVISIBLE.sub("", text)).strip()


def slugify(name: str) -> str:
    """Return the URL slug of a tool name: "Mistral 3 Small (22B)" -> "mistral-3-small-22b"."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:80].strip("-")


Line = Annotated[str, Field(min_length=1, max_length=300)]

FIELD_ORDER = (
    "name",
    "tagline",
    "category",
    "pricing",
    "entry",
    "maker",
    "license",
    "url",
    "launched",
    "description",
)
"""The order in which a prompt shows a card's fields (panel eval's `order` probe changes it)."""


class Flag(BaseModel):
    """What the injection scan found in the page a card was read from (panel.injection)."""

    model_config = ConfigDict(extra="forbid")

    kind: Annotated[str, Field(pattern=r"^[a-z-]{1,40}$")]
    excerpt: Annotated[str, Field(max_length=200)] = ""


class Source(BaseModel):
    """Where a card read from a launch page (`panel card`) came from: the page's address, when
    it was fetched, the hash of the text it was read from, and what the injection scan found
    in that text. Not shown to the panel, not part of the card's content hash."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(max_length=2000)]
    fetched_at: dt.datetime
    content_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{16,64}$")]
    flagged: Annotated[list[Flag], Field(max_length=20)] = []


class ToolCard(BaseModel):
    """One tool launch, as the panel sees it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Annotated[str, Field(min_length=1, max_length=120)]
    tagline: Line
    description: Annotated[str, Field(min_length=1, max_length=MAX_DESCRIPTION_CHARS)]
    slug: Annotated[str, Field(pattern=SLUG_PATTERN)] = ""
    category: Line = "Developer Tools"
    pricing: Line | None = None
    entry: Annotated[str, Field(min_length=1, max_length=60)] | None = None
    maker: Line | None = None
    url: Annotated[str, Field(max_length=500, pattern=r"^https?://\S+$")] | None = None
    license: Line | None = None
    launched: dt.date | None = None
    outcome: Annotated[float, Field(allow_inf_nan=False)] | Literal["hit", "miss"] | None = None
    """How the tool really fared (a number, or hit / miss), for `panel eval` to check the panel
    against; never shown to the panel and not part of the content hash."""
    source: Source | None = None
    """The launch page the card was read from (`panel card`); not part of the content hash."""

    _findings: tuple[Finding, ...] = PrivateAttr(default=())
    _field_order: tuple[str, ...] = PrivateAttr(default=FIELD_ORDER)
    _probe: str | None = PrivateAttr(default=None)
    _seed_shift: int = PrivateAttr(default=0)

    @property
    def field_order(self) -> tuple[str, ...]:
        """The order in which the prompt shows the card's fields."""
        return self._field_order

    @property
    def probe(self) -> str | None:
        """The perturbation this card is (`panel eval`), or None for a real card."""
        return self._probe

    @property
    def seed_shift(self) -> int:
        """Added to the seed of every sample of this card (a probe asked again with other seeds)."""
        return self._seed_shift

    def as_probe(self, kind: str, order: tuple[str, ...] | None = None, **changes: Any) -> ToolCard:
        """Return a perturbed copy for `panel eval`: its own slug (its reviews are its own),
        the changes, and optionally another field order."""
        card = self.model_copy(update={**changes, "slug": f"{self.slug}~{kind}"})
        card._findings = tuple(scan(card.model_dump(mode="json")))
        card._field_order = order or self._field_order
        card._probe = kind
        return card

    def with_seed_shift(self, shift: int) -> ToolCard:
        """Return a copy whose samples are asked with seeds `shift` from the run's."""
        card = self.model_copy()
        card._seed_shift = shift
        return card

    @property
    def findings(self) -> tuple[Finding, ...]:
        """What the injection scan found in the card's raw text (see panel.injection)."""
        return self._findings

    def with_findings(self, findings: tuple[Finding, ...] | list[Finding]) -> ToolCard:
        """Return a copy of the card that carries findings (a stored card gets them back)."""
        card = self.model_copy()
        card._findings = tuple(findings)
        return card

    @field_validator("*", mode="before")
    @classmethod
    def _clean_strings(cls, value: Any) -> Any:
        return clean_text(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _derive_slug(self) -> ToolCard:
        if not self.slug:
            derived = slugify(self.name)
            if not derived:
                raise ValueError("name has no letters or digits to make a slug from; add a slug")
            self.slug = derived
        return self

    def content_hash(self) -> str:
        """Return a stable hash of the card's content: same card, same hash, same cached reviews."""
        content = self.model_dump(mode="json", exclude={"outcome", "source"})
        canonical = json.dumps(content, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _describe(error: ErrorDetails) -> tuple[str, str]:
    """Return (field, problem) for the first pydantic error, in words a user understands."""
    field = ".".join(str(part) for part in error["loc"]) or "card"
    kind = error["type"]
    if kind == "missing":
        return field, "required field is missing"
    if kind == "extra_forbidden":
        return field, "unknown field (allowed: " + ", ".join(ToolCard.model_fields) + ")"
    if kind == "string_too_short":
        return field, "must not be empty"
    if kind == "string_too_long":
        limit = error.get("ctx", {}).get("max_length")
        return field, f"is too long (at most {limit} characters)"
    if kind == "string_type":
        got = error["input"]
        return field, "must be text, got " + ("nothing" if got is None else type(got).__name__)
    if kind == "string_pattern_mismatch" and field == "slug":
        return field, "must be lowercase letters, digits and single hyphens (e.g. my-tool-2)"
    return field, str(error["msg"]).removeprefix("Value error, ")


def parse_card(data: Any, source: str) -> ToolCard:
    """Validate an already-parsed mapping as a ToolCard, or raise CardError naming source."""
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else type(data).__name__
        raise CardError(source, f"a card must be a mapping of fields, got {kind}")
    try:
        card = ToolCard.model_validate(data)
    except ValidationError as exc:
        field, problem = _describe(exc.errors()[0])
        raise CardError(source, problem, field) from None
    return card.with_findings(scan(data) + page_findings(card))


def page_findings(card: ToolCard) -> list[Finding]:
    """Return what the scan found in the page a card was read from, as findings of the card."""
    flagged = card.source.flagged if card.source else []
    return [Finding(flag.kind, "source", flag.excerpt) for flag in flagged]


def load_card(path: str | Path) -> ToolCard:
    """Read, parse and validate one card file (YAML or JSON), or raise CardError."""
    path = Path(path)
    name = str(path)
    if path.is_dir():
        raise CardError(name, "is a directory, not a card file")
    return card_from_bytes(
        read_capped(path, MAX_CARD_BYTES), name, as_json=path.suffix.lower() == ".json"
    )


def card_from_bytes(raw: bytes, name: str, *, as_json: bool) -> ToolCard:
    """Parse and validate the bytes of one card (JSON, else YAML), or raise CardError naming
    `name`: what a card file holds, or the body of a card sent to `panel serve`."""
    if len(raw) > MAX_CARD_BYTES:
        raise CardError(name, f"file is larger than {MAX_CARD_BYTES // 1024} KiB")
    if b"\x00" in raw:
        raise CardError(name, "looks binary (contains NUL bytes), not a YAML or JSON card")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CardError(name, f"is not UTF-8 text (bad byte at offset {exc.start})") from None
    if not text.strip():
        raise CardError(name, "file is empty")
    try:
        data = load_json(text) if as_json else load_yaml(text)
    except ParseError as exc:
        raise CardError(name, str(exc)) from None
    return parse_card(data, name)


URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(arg: str) -> bool:
    """Return whether a card argument is a URL (a launch page to read a card from), not a path."""
    return URL.match(arg) is not None


def load_cards(
    args: Sequence[str | Path], read: Mapping[str, ToolCard] | None = None
) -> list[ToolCard]:
    """Load several cards (files, or URLs whose cards `read` holds); two cards with one slug in
    the same run are an error."""
    cards: list[ToolCard] = []
    seen: dict[str, str] = {}
    for arg in args:
        card = resolve_card(str(arg), None, read)
        if card.slug in seen:
            raise CardError(
                str(arg), f"duplicate slug '{card.slug}' (also in {seen[card.slug]})", "slug"
            )
        seen[card.slug] = str(arg)
        cards.append(card)
    return cards


CARD_SUFFIXES = (".yaml", ".yml", ".json")


def resolve_card(
    arg: str,
    stored: Callable[[str], ToolCard | None] | None,
    read: Mapping[str, ToolCard] | None = None,
) -> ToolCard:
    """Return the card a command-line argument names: the one place card arguments are
    resolved. A URL's card is the one read from its page (`read`, by URL: panel.intake reads
    them first); else a card file, or (where `stored` looks slugs up) a stored tool's slug."""
    if is_url(arg):
        if read is None or arg not in read:
            raise InputError("a URL is read into a card only where a model can read it", path=arg)
        return read[arg]
    path = Path(arg)
    if stored is None or path.suffix.lower() in CARD_SUFFIXES or path.exists():
        return load_card(path)
    card = stored(arg)
    if card is None:
        raise InputError("neither a card file nor the slug of a tool in the store", path=arg)
    return card


def category_slug(category: str) -> str:
    """Return a category as a file name: "Developer Tools" -> "developer-tools"."""
    return re.sub(r"[^a-z0-9]+", "-", category.casefold()).strip("-") or "tools"
