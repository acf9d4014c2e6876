"""The injection scan: what in a tool card's untrusted text is aimed at the reviewers, not at readers.

A card is data for the panel, never instructions: the prompts fence it between per-call random
delimiters and tell the model so. This scan names what a card tried anyway, so its review
document carries an `injection` flag and the pages show it. It reads the raw text, before
`cards.clean_text` strips invisible characters, because hidden characters are a finding too.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EXCERPT_CHARS = 80

# Zero-width characters, bidi controls, the BOM and the Unicode tag block: invisible in a page,
# but read by a model, so a favourite carrier of hidden instructions (cards.clean_text strips them).
INVISIBLE = re.compile(
    "[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]"
)
_TAGS = re.compile("[\U000e0020-\U000e007e]+")
"""Unicode tag characters that mirror printable ASCII: text smuggled past a reader's eyes."""

_VARIATION_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
_LOOK_ALIKES = str.maketrans(
    # Cyrillic, Greek and Armenian letters drawn like Latin ones (Unicode's confusables.txt);
    # transliteration would be wrong here: Cyrillic "р" reads r but looks like p.
    "аеёһіїјкорсухѕԁԛԝӏɡոսցАВЕЁІЇЈКМНОРСТУХЅԀԚԜӀҮαονικυχεγωρτΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "aeehiijkopcyxsdqwlgnugABEEIIJKMHOPCTYXSDQWIYaovikuxeywptABEZHIKMNOPTYX",
)


def folded(text: str) -> str:
    """Return text as the patterns read it: NFKC (fullwidth and mathematical letters become
    plain), format characters (soft hyphen, zero-width, bidi, tags) and variation selectors
    removed, and Cyrillic and Greek look-alikes folded to Latin, so "ig\u00adnоre" with a soft
    hyphen and a Cyrillic o is "ignore"."""
    text = unicodedata.normalize("NFKC", _VARIATION_SELECTORS.sub("", text))
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return text.translate(_LOOK_ALIKES)


_I = re.IGNORECASE
PATTERNS: dict[str, re.Pattern[str]] = {
    "ignore-instructions": re.compile(
        r"\b(?:ignore|disregard|forget|override|bypass)\b[^.\n]{0,40}?"
        r"\b(?:instructions?|prompts?|rules|rubric|criteria|directions|guidelines|system message)\b",
        _I,
    ),
    "role-override": re.compile(
        r"\b(?:you are now|from now on,? you|new instructions?\s*:|pretend (?:to be|you are)"
        r"|your new (?:role|task|instructions?))",
        _I,
    ),
    "fake-system-note": re.compile(
        r"(?:^|[\n\[(<{]|[.!?]\s)\s*(?:system|admin(?:istrator)?|developer|assistant|moderator"
        r"|operator)(?:\s+(?:note|message|prompt|override|instructions?|notice))?\s*[:\]>)}]"
        r"|<\|im_start\|>|<\|system\|>|\[/?INST\]|<</?SYS>>|^#+\s*(?:system|instructions?)\b",
        _I | re.MULTILINE,
    ),
    "fake-verdict": re.compile(
        r"\{[^{}]{0,200}[\"'](?:score|verdict)[\"']\s*:"
        r"|\b(?:score|verdict|rating)\b\s*[\"']?\s*[:=]\s*[\"']?\s*(?:ship|skip|\d{1,3})\b"
        r"|\b(?:give|award|assign)\b[^.\n]{0,30}\b(?:score|rating|verdict)\b[^.\n]{0,15}"
        r"\b(?:100|ship)\b",
        _I,
    ),
    "delimiter": re.compile(r"<<<|>>>|\bEND_TOOL_CARD|\bTOOL_CARD_", _I),
    "html-comment": re.compile(r"<!--.*?(?:-->|$)", re.DOTALL),
}

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{20,}={0,2}(?![A-Za-z0-9+/=])")

LABELS = {
    "ignore-instructions": "an order to ignore instructions",
    "role-override": "an attempt to give the reviewer a new role",
    "fake-system-note": "a fake system or admin note",
    "fake-verdict": "a ready-made score or verdict",
    "delimiter": "a copy of the prompt's delimiters",
    "html-comment": "an HTML comment",
    "hidden-characters": "invisible characters",
    "encoded-instructions": "base64-encoded text",
}
"""What each kind of finding is, in words for a reader of the pages."""


@dataclass(frozen=True)
class Finding:
    """One attempt found in a card: its kind (a key of LABELS), the field, and what it said."""

    kind: str
    field: str
    excerpt: str


def _excerpt(text: str) -> str:
    text = " ".join(INVISIBLE.sub("", text).split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _sentence(match: re.Match[str]) -> str:
    """Return the matched text and the rest of its sentence."""
    rest = re.search(r"[.!?\n]", match.string[match.end() :])
    end = match.end() + (rest.end() if rest else len(match.string))
    return match.string[match.start() : end]


def _decoded_base64(text: str) -> list[str]:
    """Return the runs of text that decode from base64 to readable text (words, not bytes)."""
    readable = []
    for run in _BASE64.findall(text):
        try:
            decoded = base64.b64decode(run + "=" * (-len(run) % 4), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if decoded.isprintable() and " " in decoded and sum(c.isalpha() for c in decoded) >= 8:
            readable.append(decoded)
    return readable


def scan_text(field: str, text: str) -> list[Finding]:
    """Return what one field's raw text carries, at most one finding of each kind.

    The patterns are matched on the text as a model reads it (`folded`: invisible characters
    removed and look-alikes folded, so "ig\u200bnore" and "іgnore" are "ignore"), on text
    smuggled in Unicode tag characters and on decoded base64.
    """
    hidden = INVISIBLE.findall(text)
    smuggled = " ".join(
        "".join(chr(ord(c) - 0xE0000) for c in run) for run in _TAGS.findall(text)
    ).strip()
    visible = folded(INVISIBLE.sub("", text))
    decoded = [folded(run) for run in _decoded_base64(visible)]
    findings = []
    if hidden:
        what = f"{len(hidden)} invisible character{'s' if len(hidden) != 1 else ''}"
        findings.append(
            Finding(
                "hidden-characters", field, _excerpt(f"{what}: {smuggled}" if smuggled else what)
            )
        )
    if decoded:
        findings.append(Finding("encoded-instructions", field, _excerpt(decoded[0])))
    for kind, pattern in PATTERNS.items():
        sources = (visible, smuggled, *decoded)
        match = next((m for source in sources if (m := pattern.search(source))), None)
        if match:
            findings.append(Finding(kind, field, _excerpt(_sentence(match)).lstrip(".!? ")))
    return findings


def scan(data: Mapping[str, Any]) -> list[Finding]:
    """Return the findings in every text field of a raw card mapping, in field order."""
    return [
        finding
        for field, value in data.items()
        if isinstance(value, str)
        for finding in scan_text(field, value)
    ]


def describe(findings: list[Finding]) -> str:
    """Return one sentence naming what was found where, for the flag's message."""
    seen: dict[str, list[str]] = {}
    for finding in findings:
        fields = seen.setdefault(finding.kind, [])
        if finding.field not in fields:
            fields.append(finding.field)
    parts = [f"{LABELS.get(kind, kind)} ({', '.join(fields)})" for kind, fields in seen.items()]
    return "The card carries text aimed at the reviewers: " + "; ".join(parts) + "."
