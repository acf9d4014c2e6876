"""Mitigations: what the panel takes out of its judges' view of a card, so a bias `panel eval`
finds cannot act on the reviews. Each is a setting (flag, PANEL_* variable, config key):

- rotate-fields: the card's fields put in the panel's own order (FIELD_ORDER, so the order a
  card's author chose never reaches the judges), then shown in a different order per sample,
  balanced over the samples of a set: every field in every position equally often, and every
  pair of fields in both relative orders equally often (`balanced_order`);
- blind-names: the tool's name, its maker and the brand words of famous companies replaced by
  neutral placeholders ([TOOL], [MAKER], [COMPANY]); a persona that needs the maker is told what
  kind of maker it is (`maker_kind`), never its name;
- strip-injection: the lines the injection scan flags replaced by a placeholder that says so.

Only what the judges see changes: the stored card, the pages and the review documents keep the
real text. They shape every kind of question alike (a pair judgment shows both cards blinded,
rotated or stripped). A mitigation that shaped an answer is recorded with it
(`Mitigations.shaping`), part of its key in the store, so mitigated and unmitigated answers are
never mixed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from panel.cards import FIELD_ORDER, ToolCard
from panel.errors import InputError
from panel.injection import scan_text

ROTATE_FIELDS = "rotate-fields"
BLIND_NAMES = "blind-names"
STRIP_INJECTION = "strip-injection"
NAMES = (ROTATE_FIELDS, BLIND_NAMES, STRIP_INJECTION)
"""Every mitigation, in the order they are applied and named."""

DESCRIPTIONS = {
    ROTATE_FIELDS: "the card's fields shown in the panel's order, rotated across samples",
    BLIND_NAMES: "names, maker and brands hidden from the judges",
    STRIP_INJECTION: "lines the injection scan flagged replaced before judging",
}
"""What each mitigation did to a review, in words for a reader of the pages."""

TOOL = "[TOOL]"
MAKER = "[MAKER]"
COMPANY = "[COMPANY]"
HIDDEN = "[hidden]"
STRIPPED = "[removed by panel: the injection scan flagged this text as addressed to the reviewers]"

BRANDS = (
    "Adobe",
    "AI21 Labs",
    "Alibaba",
    "Amazon",
    "AMD",
    "Anthropic",
    "Apple",
    "AWS",
    "Baidu",
    "ByteDance",
    "ChatGPT",
    "Claude",
    "Cohere",
    "Copilot",
    "DeepMind",
    "DeepSeek",
    "Gemini",
    "GitHub",
    "Google",
    "Hugging Face",
    "IBM",
    "Intel",
    "Meta",
    "Microsoft",
    "Mistral",
    "NVIDIA",
    "OpenAI",
    "Oracle",
    "Perplexity",
    "Salesforce",
    "Samsung",
    "Stability AI",
    "Tencent",
    "xAI",
)
"""Famous companies and products: a judge that favours a famous name finds them in any field."""

_BIG_TECH = "a large technology company"
_AI_LAB = "a well-funded AI lab that trains its own models"
_PLATFORM = "an established AI platform company"
_UNKNOWN_MAKER = "a maker the panel has no record of (a startup, a small company or a project)"
MAKER_KINDS = {
    **dict.fromkeys(
        (
            "adobe",
            "alibaba",
            "amazon",
            "amd",
            "apple",
            "aws",
            "baidu",
            "bytedance",
            "google",
            "ibm",
            "intel",
            "meta",
            "microsoft",
            "nvidia",
            "oracle",
            "salesforce",
            "samsung",
            "tencent",
        ),
        _BIG_TECH,
    ),
    **dict.fromkeys(
        (
            "ai21",
            "anthropic",
            "cohere",
            "deepmind",
            "deepseek",
            "mistral",
            "openai",
            "perplexity",
            "stability",
            "xai",
        ),
        _AI_LAB,
    ),
    **dict.fromkeys(("github", "hugging"), _PLATFORM),
}
"""What kind of maker a known maker is, by the first word of its name (lower case)."""

_GENERIC_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "the",
        "of",
        "for",
        "by",
        "with",
        "to",
        "in",
        "on",
        "at",
        "from",
        "ai",
        "inc",
        "ltd",
        "llc",
        "labs",
        "lab",
        "corp",
        "company",
        "technologies",
        "open",
        "source",
        "opensource",
        "model",
        "models",
        "instruct",
        "chat",
        "base",
        "pro",
        "mini",
        "max",
        "lite",
        "preview",
        "beta",
        "alpha",
        "edition",
        "app",
        "api",
        "sdk",
        "studio",
        "cloud",
    ]
)
"""Words of a name or maker that say nothing about who made it, left in place."""
_SIZE_LIKE = re.compile(r"^(?:v?\d+(?:\.\d+)*[a-z]?|\d+(?:\.\d+)?[kmbt]|\d+x\d+[kmbt]?)$", re.I)
_STEM = re.compile(r"^([A-Za-z]{4,}\d*)[-_.]")


@dataclass(frozen=True)
class Mitigations:
    """Which mitigations a run applies."""

    rotate_fields: bool = False
    blind_names: bool = False
    strip_injection: bool = False

    @classmethod
    def named(cls, names: Iterable[str]) -> Mitigations:
        """Return the mitigations named ("rotate-fields", ...); InputError for an unknown name."""
        chosen = {name.strip() for name in names if name.strip()}
        if unknown := sorted(chosen - set(NAMES)):
            raise InputError(
                f"unknown mitigation '{unknown[0]}' (known: {', '.join(NAMES)})",
                field="mitigations",
            )
        return cls(**{_attribute(name): True for name in chosen})

    @property
    def names(self) -> tuple[str, ...]:
        """Return the names of the mitigations on, in NAMES order."""
        return tuple(name for name in NAMES if getattr(self, _attribute(name)))

    def __or__(self, other: Mitigations) -> Mitigations:
        return Mitigations.named(self.names + other.names)

    def __sub__(self, other: Mitigations) -> Mitigations:
        return Mitigations.named(n for n in self.names if n not in other.names)

    def shaping(self, *cards: ToolCard) -> tuple[str, ...]:
        """Return the names of the mitigations that change what the judges see of the cards
        of one question (a review's card, a pair's two): the ones recorded with its answers
        (strip-injection only when it replaced something in one of them)."""
        return tuple(
            name
            for name in self.names
            if name != STRIP_INJECTION or any(stripped(card)[1] > 0 for card in cards)
        )

    def view(self, card: ToolCard, sample: int = 0) -> View:
        """Return card as the judges of sample `sample` see it."""
        shown, removed, kind = card, 0, None
        if self.strip_injection:
            shown, removed = stripped(shown)
        if self.blind_names:
            shown, kind = blinded(shown), maker_kind(card.maker)
        order = card.field_order
        if self.rotate_fields:
            order = balanced_order(present_fields(shown), sample)
        return View(shown, order, kind, removed)


@dataclass(frozen=True)
class View:
    """A card as its judges see it: its text, the order of its fields, and what was changed."""

    card: ToolCard
    order: tuple[str, ...]
    maker_kind: str | None
    """With blind-names: what kind of maker the tool has, for a persona that needs it."""
    stripped: int
    """How many flagged lines were replaced (strip-injection)."""


def _attribute(name: str) -> str:
    return name.replace("-", "_")


# ---- rotate-fields ---------------------------------------------------------------------------


def present_fields(card: ToolCard) -> tuple[str, ...]:
    """Return the fields card shows (non-empty), in the panel's own order."""
    values = card.model_dump(mode="json")
    return tuple(name for name in FIELD_ORDER if values.get(name))


@lru_cache(maxsize=32)
def williams_square(k: int) -> tuple[tuple[int, ...], ...]:
    """Return Williams' balanced Latin square of k items, relabelled so row 0 is 0, 1, …, k-1.

    Every item takes every position once, and (k even) every item is followed by every other
    exactly once. Its rows with their reverses put every pair in both relative orders equally
    often, which a plain cyclic rotation does not.
    """
    first = [0]
    low, high = 1, k - 1
    while len(first) < k:
        first.append(low)
        low += 1
        if len(first) < k:
            first.append(high)
            high -= 1
    relabel = {item: position for position, item in enumerate(first)}
    return tuple(tuple(relabel[(item + row) % k] for item in first) for row in range(k))


def balanced_order(fields: tuple[str, ...], sample: int) -> tuple[str, ...]:
    """Return the order sample `sample` shows fields in: row sample // 2 of the Williams square,
    reversed for odd samples. Over any 2k samples (k fields) every field is in every position
    twice; over any even number of samples every pair comes in both orders equally often.
    Sample 0 keeps the panel's order."""
    k = len(fields)
    if k < 2:
        return fields
    row = [fields[i] for i in williams_square(k)[(sample // 2) % k]]
    return tuple(reversed(row)) if sample % 2 else tuple(row)


# ---- blind-names -----------------------------------------------------------------------------


def maker_kind(maker: str | None) -> str | None:
    """Return what kind of maker `maker` is, in words (None: the card names no maker)."""
    if not maker:
        return None
    words = re.findall(r"[a-z0-9]+", maker.lower())
    return next((MAKER_KINDS[w] for w in words[:1] if w in MAKER_KINDS), _UNKNOWN_MAKER)


def _distinctive(words: list[str]) -> list[str]:
    """Return the words (and their stems: SmolVLM of SmolVLM-3B) that name a maker or product."""
    found = []
    for word in words:
        word = word.strip("()[]{},;:!?\"'&")
        if len(word) < 3 or word.lower() in _GENERIC_WORDS or _SIZE_LIKE.match(word):
            continue
        if not any(c.isalpha() for c in word):
            continue
        found.append(word)
        if stem := _STEM.match(word):
            found.append(stem.group(1))
    return found


def name_terms(card: ToolCard) -> dict[str, str]:
    """Return every term blind-names hides in card, each with its placeholder (lower case keys):
    the name, the maker, the maker's first word, the name's endings and distinctive words,
    famous brands."""
    terms: dict[str, str] = {}

    def add(term: str, placeholder: str) -> None:
        if term and term.lower() not in terms:
            terms[term.lower()] = placeholder

    words = card.name.split()
    add(card.name, TOOL)
    if card.maker:
        add(card.maker, MAKER)
        for word in _distinctive(card.maker.split()[:1]):
            add(word, MAKER)
    for start in range(1, len(words)):  # "Google SmolVLM-3B" is also "SmolVLM-3B" in the text
        if _distinctive(words[start:]):
            add(" ".join(words[start:]), TOOL)
    for word in _distinctive(words):
        add(word, TOOL)
    for brand in BRANDS:
        add(brand, COMPANY)
    return terms


def blinded(card: ToolCard) -> ToolCard:
    """Return card with its name, maker and brand words replaced by placeholders (its URL, which
    names them too, hidden)."""
    terms = name_terms(card)
    pattern = re.compile(
        r"(?<![\w-])(?:"
        + "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
        + r")(?![\w])",
        re.IGNORECASE,
    )

    def hide(text: str) -> str:
        return pattern.sub(lambda m: terms[m.group().lower()], text)

    changes: dict[str, object] = {
        name: hide(value)
        for name, value in card.model_dump().items()
        if isinstance(value, str) and name not in ("slug", "url", "name", "maker", "outcome")
    }
    changes.update(name=TOOL, maker=MAKER if card.maker else None)
    if card.url:
        changes["url"] = HIDDEN
    return card.model_copy(update=changes)


# ---- strip-injection -------------------------------------------------------------------------


def stripped(card: ToolCard) -> tuple[ToolCard, int]:
    """Return card with the lines the injection scan flags replaced by a placeholder, and how
    many (a one-line description the scan flags goes whole: what is left of a plea is a plea)."""
    changes: dict[str, object] = {}
    removed = 0
    for name, value in card.model_dump().items():
        if not isinstance(value, str) or name in ("slug", "url", "outcome"):
            continue
        lines = []
        for line in value.split("\n"):
            kept, count = _stripped_line(name, line)
            lines.append(kept)
            removed += count
        text = "\n".join(lines)
        if text != value:
            changes[name] = text
    return (card.model_copy(update=changes) if changes else card), removed


def _stripped_line(field: str, line: str) -> tuple[str, int]:
    if not line.strip() or not scan_text(field, line):
        return line, 0
    return STRIPPED, 1
