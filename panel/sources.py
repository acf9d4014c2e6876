"""A launch page as panel reads it, and the checks that keep a card made from it honest.

Reading: an HTML page's main text comes from trafilatura (boilerplate, menus and footers left
out), its structured metadata from extruct (JSON-LD and OpenGraph: name, description, offers
and price, author or publisher, licence) and trafilatura's own (title, author, site name, a
`rel="license"` link). Markdown and plain text are their own text. Both libraries are imported
when a page is read, never by `panel --help`.

Checking: a card drafted by a model from a page keeps a fact only where the page supports it,
decided here in code, never asked of the model: the name, the maker, the licence and the entry
price must each be found in the page's text or metadata (`supported_*`), and a description or
tagline keeps only its sentences whose numbers and proper nouns are all in the page
(`unsupported_terms`, the check `make bench-intake` counts invented claims with).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from panel.cards import clean_text, slugify
from panel.errors import PageError
from panel.injection import Finding, scan_text

HEAD_CHARS = 1800
"""What a model reads of a page's text from its start (a launch page says what it is first)."""
FACT_LINES_CHARS = 600
"""Then at most this much of the later lines that may state a fact (a licence, a price, a
maker): with the prompt, about 1,100 tokens, so a page fits the embedded model's context of
2,048 tokens a sequence with room for its answer. The checks read the whole page."""
SHOWN_FACT_CHARS = 200
"""What a model reads of each metadata fact."""
_FACT_LINES = (
    re.compile(r"licen[cs]|pric|[$€£]\s?\d|\bfree\b", re.I),
    re.compile(r"copyright|©|\bby\b|author|maintain|develop|creat", re.I),
)
"""Later lines that may state a fact: a licence or a price first, then a maker."""
MIN_TEXT_CHARS = 80
"""A page with less text than this (its metadata's description counted: an app shell's text is
filled by a script) is empty for panel's purposes."""
ENGLISH_SHARE = 0.03
"""The least share of a page's words that must be common English words: the personas and
prompts read English, and a page in another language is refused rather than translated."""
_ENGLISH = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "is",
        "are",
        "be",
        "this",
        "that",
        "it",
        "its",
        "by",
        "from",
        "as",
        "at",
        "we",
        "you",
        "your",
        "our",
        "can",
        "will",
        "not",
        "more",
        "use",
        "new",
    ]
)


@dataclass(frozen=True)
class Page:
    """A launch page as read: where it is, its kind, its main text, the facts its metadata
    states (name, description, maker, license, price, currency, site, title) and when it was
    fetched."""

    url: str
    kind: str
    text: str
    facts: dict[str, str]
    fetched_at: dt.datetime
    findings: tuple[Finding, ...] = field(default=())
    """What the injection scan found in the page's text and metadata."""

    def content_hash(self) -> str:
        """Return the hash of what a card is drawn from (text and metadata): a page whose text
        changes is read again; one that does not reuses its stored reading."""
        canonical = json.dumps([self.text, self.facts], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def slug(self) -> str:
        """How the call log names the page (its address as a slug)."""
        return slugify(self.url.split("://", 1)[-1]) or "page"

    @property
    def seed_shift(self) -> int:
        return 0

    def shown_text(self) -> str:
        """Return the text a model reads: the start of the page (HEAD_CHARS, cut at a line
        end), then the later lines that may state a fact (FACT_LINES_CHARS)."""
        if len(self.text) <= HEAD_CHARS + FACT_LINES_CHARS:
            return self.text
        head = self.text[:HEAD_CHARS]
        head = head[: head.rfind("\n")] if "\n" in head else head
        lines = [line.strip()[:300] for line in self.text[len(head) :].splitlines()]
        picked: set[int] = set()
        for pattern in _FACT_LINES:
            for number, line in enumerate(lines):
                size = sum(len(lines[n]) + 1 for n in picked) + len(line)
                if line and number not in picked and pattern.search(line):
                    if size > FACT_LINES_CHARS:
                        break
                    picked.add(number)
        found = "\n".join(lines[n] for n in sorted(picked))
        return head + ("\n[…]\n" + found if found else "")

    def haystack(self) -> str:
        """Return everything a fact may be found in: the text and the metadata, normalised."""
        return normalised(" ".join([self.text, *self.facts.values()]))


def read_page(source: str, kind: str, body: str, fetched_at: dt.datetime) -> Page:
    """Return the page in body (HTML, Markdown or plain text); raise PageError if it holds no
    readable text or is not in English."""
    if kind == "html":
        text, facts = _html_text(body, source), html_facts(body, source)
    else:
        text, facts = _markdown(body)
    text = _tidy(text)
    if len(text) + len(facts.get("description", "")) < MIN_TEXT_CHARS:
        raise PageError(source, f"holds no readable text ({len(text)} characters)")
    if english_share(text) < ENGLISH_SHARE and len(text) >= MIN_TEXT_CHARS:
        raise PageError(source, "is not in English (the panel's prompts and personas read English)")
    findings = scan_text("page", text) + [
        f for name, value in facts.items() for f in scan_text(f"page {name}", value)
    ]
    return Page(source, kind, text, facts, fetched_at, tuple(findings))


_NOT_PROSE = re.compile(r"```.*?```|`[^`\n]*`|\S+://\S+|<[^>]+>", re.DOTALL)
_IDEOGRAPHS = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def english_share(text: str) -> float:
    """Return the share of text's words that are common English words, code and addresses
    left out, every Chinese, Japanese or Korean character counted as a word."""
    prose = _NOT_PROSE.sub(" ", text).casefold()
    ideographs = len(_IDEOGRAPHS.findall(prose))
    words = re.findall(r"[^\W\d_]+", _IDEOGRAPHS.sub(" ", prose))
    total = len(words) + ideographs
    return sum(word in _ENGLISH for word in words) / total if total else 0.0


def _tidy(text: str) -> str:
    """Return text with invisible characters removed and blank runs collapsed."""
    lines = [" ".join(clean_text(line).split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _html_text(html: str, source: str) -> str:
    import trafilatura

    text = trafilatura.extract(
        html, url=source, include_comments=False, include_tables=True, favor_recall=True
    )
    if not text:  # a page trafilatura finds no article in: its whole text
        text = trafilatura.html2txt(html)
    return str(text or "")


_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)


def _markdown(text: str) -> tuple[str, dict[str, str]]:
    """Return a Markdown or text page's text without its YAML front matter, and what it states
    of itself: the front matter's title and description, else its first heading as title."""
    facts: dict[str, str] = {}
    front = _FRONT_MATTER.match(text)
    if front:
        text = text[front.end() :]
        for name in ("title", "description"):
            said = re.search(rf"^{name}:\s*(.+)$", front.group(1), re.MULTILINE)
            _put(facts, name, said.group(1).strip().strip("\"'") if said else None)
    _put(facts, "title", _first_heading(text))
    return _prose_of(text), facts


_CODE_OR_COMMENT = re.compile(r"```.*?```|~~~.*?~~~|<!--.*?-->", re.S)
_H1 = re.compile(r"^[ \t]*#[ \t]+([^\n]+)$|<h1[^>]*>(.*?)</h1>", re.M | re.S | re.I)
_H2 = re.compile(r"^[ \t]*##[ \t]+([^\n]+)$|<h2[^>]*>(.*?)</h2>", re.M | re.S | re.I)


def _first_heading(text: str) -> str | None:
    """Return a Markdown page's first top heading (# or an HTML <h1>, as READMEs write
    them), else its first second-level one, without markup."""
    text = _CODE_OR_COMMENT.sub(" ", text)
    for pattern in (_H1, _H2):
        if (match := pattern.search(text)) is not None:
            heading = " ".join(_prose_of(match.group(1) or match.group(2)).split()).strip("# ")
            if heading:
                return heading
    return None


_IMAGE = re.compile(r"!\[[^\]\n]*\]\([^)\s]*\)")
_LINK_OR_TAG = re.compile(r"\[([^\]\n]*)\]\([^)\s]*\)|</?[A-Za-z!][^<>]{0,2000}>")


def _prose_of(markdown: str) -> str:
    """Return Markdown without what a README carries that is no prose: images and badges and
    HTML tags dropped, links as their words."""
    text = _IMAGE.sub("", markdown)
    return _LINK_OR_TAG.sub(lambda m: m.group(1) or " ", text)


def html_facts(html: str, source: str) -> dict[str, str]:
    """Return the facts an HTML page's metadata states: JSON-LD and OpenGraph (extruct), then
    trafilatura's title, author, site name and licence; the first found of each wins."""
    import extruct
    import trafilatura

    facts: dict[str, str] = {}
    try:
        data = extruct.extract(html, base_url=source, syntaxes=["json-ld", "opengraph"])
    except Exception:  # extruct raises what its parsers raise on broken markup: no metadata
        data = {}
    for item in _items(data.get("json-ld", [])):
        _json_ld_facts(item, facts)
    for og in data.get("opengraph", []):
        props = dict(og.get("properties", [])) if isinstance(og, dict) else {}
        _put(facts, "name", props.get("og:title"))
        _put(facts, "description", props.get("og:description"))
        _put(facts, "site", props.get("og:site_name"))
    meta = trafilatura.extract_metadata(html, default_url=source)
    if meta is not None:
        _put(facts, "title", meta.title)
        _put(facts, "maker", meta.author)
        _put(facts, "site", meta.sitename)
        _put(facts, "description", meta.description)
        _put(facts, "license", meta.license)
    return facts


def _items(found: Any) -> list[dict[str, Any]]:
    """Return every JSON-LD object, those inside an @graph or a list too."""
    items: list[dict[str, Any]] = []
    stack = list(found) if isinstance(found, list) else [found]
    while stack:
        item = stack.pop(0)
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            items.append(item)
            stack.extend(v for v in (item.get("@graph"),) if v)
    return items


def _json_ld_facts(item: dict[str, Any], facts: dict[str, str]) -> None:
    """Add the facts one JSON-LD object states (a product, an application, a model, a repo)."""
    kinds = item.get("@type")
    kinds = " ".join(kinds) if isinstance(kinds, list) else str(kinds or "")
    if any(k in kinds for k in ("Application", "Product", "Software", "Dataset", "Model")):
        _put(facts, "name", item.get("name"))
        _put(facts, "description", item.get("description"))
    for who in ("author", "creator", "publisher", "brand", "manufacturer"):
        _put(facts, "maker", _name_of(item.get(who)))
    _put(facts, "license", _name_of(item.get("license")))
    offers = item.get("offers")
    offer = offers[0] if isinstance(offers, list) and offers else offers
    if isinstance(offer, dict):
        _put(facts, "price", offer.get("price") if offer.get("price") is not None else None)
        _put(facts, "currency", offer.get("priceCurrency"))


def _name_of(value: Any) -> Any:
    """Return the name of a JSON-LD person, organisation or licence (or the text given)."""
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, dict):
        return value.get("name") or value.get("url")
    return value


def _put(facts: dict[str, str], name: str, value: Any) -> None:
    """Set facts[name] to value as one clean line, unless it is set or value is empty."""
    if name in facts or value is None or isinstance(value, (dict, list)):
        return
    text = " ".join(clean_text(str(value)).split())[:300]
    if text:
        facts[name] = text


# --- what a card may say ------------------------------------------------------------------------


def normalised(text: str) -> str:
    """Return text as facts are compared: NFKC, case folded, every run of other characters
    than letters and digits one space, padded with a space each side."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " " + " ".join(re.findall(r"[^\W_]+", text)) + " "


def found(value: str, page: Page) -> bool:
    """Return whether value (as whole words) is in the page's text or metadata."""
    needle = normalised(value)
    return needle.strip() != "" and needle in page.haystack()


UNKNOWN = {"", "unknown", "n/a", "none", "not stated", "not specified", "unspecified", "null"}

LICENCES = {
    "MIT": ("mit license", "mit licence", "mit licensed", "licensed under mit", "mit"),
    "Apache-2.0": ("apache 2 0", "apache license 2 0", "apache license version 2 0", "apache2"),
    "GPL-3.0": ("gpl 3 0", "gplv3", "gpl v3", "gnu general public license v3", "gpl 3"),
    "AGPL-3.0": ("agpl 3 0", "agplv3", "agpl v3", "gnu affero general public license"),
    "LGPL-3.0": ("lgpl 3 0", "lgplv3", "lgpl v3"),
    "BSD-3-Clause": ("bsd 3 clause", "3 clause bsd", "bsd 3"),
    "BSD-2-Clause": ("bsd 2 clause", "2 clause bsd"),
    "MPL-2.0": ("mpl 2 0", "mozilla public license 2 0"),
    "CC-BY-4.0": ("cc by 4 0", "creative commons attribution 4 0"),
    "CC-BY-NC-4.0": ("cc by nc 4 0",),
    "CC-BY-SA-4.0": ("cc by sa 4 0",),
    "Unlicense": ("unlicense",),
}
"""Licences by their SPDX name, with the ways a page spells them (normalised)."""


def licence_id(text: str) -> str | None:
    """Return the SPDX name of a licence as spelt ("Apache License 2.0" -> Apache-2.0)."""
    said = normalised(text)
    for spdx, spellings in LICENCES.items():
        if said == normalised(spdx) or any(said == f" {s} " for s in spellings):
            return spdx
    return None


def supported_licence(said: str | None, page: Page) -> str | None:
    """Return the licence a card may name: the one said, in its SPDX name where known, if the
    page spells it some way; else the licence the page's metadata states; else None."""
    if said and "://" in said:  # a link to a licence file: the licence its path names, if any
        said = licence_id(_last_segment(said))
    if said and normalised(said).strip() not in _NO_LICENCE:
        spdx = licence_id(said)
        spellings = LICENCES.get(spdx, ()) if spdx else ()
        if any(f" {s} " in page.haystack() for s in spellings) or found(said, page):
            return spdx or said.strip()
    stated = page.facts.get("license", "")
    if "://" in stated:  # a link to a licence file names no licence, unless its path does
        return licence_id(_last_segment(stated))
    if stated:
        return licence_id(stated) or (stated if len(stated) <= 60 else None)
    return None


_NO_LICENCE = UNKNOWN | {"license", "licence", "see license", "license file", "other"}


def _last_segment(url: str) -> str:
    """Return the last part of a URL's path, without a .txt, .md or .html suffix."""
    last = url.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"\.(txt|md|html?)$", "", last, flags=re.IGNORECASE)


def supported_value(said: str | None, page: Page, fact: str) -> str | None:
    """Return a name or maker as a card may give it: the one said if the page has it, else
    what the metadata states of it (`fact`), else None."""
    said = " ".join((said or "").split()).rstrip(".,;:")
    if said.casefold() not in UNKNOWN and found(said, page):
        return said
    return page.facts.get(fact)


_AMOUNT = re.compile(
    r"(?P<cur>[$€£])\s?(?P<num>\d+(?:[.,]\d{1,2})?)|(?P<num2>\d+(?:[.,]\d{1,2})?)\s?(?P<cur2>USD|EUR|GBP|usd|eur|gbp)"
)
_CURRENCY = {"$": "USD", "€": "EUR", "£": "GBP"}
_FREE = re.compile(
    r"\bfree\b\s+(?:plan|tier|forever|trial|version|to use|of charge|for (?:everyone|personal|individuals|developers|non-commercial))"
    r"|\b(?:price|pricing|cost)\s*:?\s*free\b|\bfree and open[- ]source\b|\bis free\b"
    r"|\b(?:completely|totally|entirely|100%)\s+free\b|\bfor free\b",
    re.IGNORECASE,
)


def _amounts(text: str) -> set[tuple[str, float]]:
    """Return every (currency, amount) text states: "$20", "20 USD", "€9.99"."""
    found_amounts = set()
    for m in _AMOUNT.finditer(text):
        cur = m.group("cur") or m.group("cur2")
        num = m.group("num") or m.group("num2")
        found_amounts.add((_CURRENCY.get(cur, cur.upper()), float(num.replace(",", "."))))
    return found_amounts


def supported_entry(said: str | None, page: Page) -> str | None:
    """Return the entry price a card may give: "Free" if the page says it is free (in so many
    words, or a zero price in its metadata); an amount if the page states that amount in that
    currency (text or metadata offer); else None (unknown)."""
    price = page.facts.get("price")
    if said is None or said.strip().casefold() in UNKNOWN:
        return None
    if said.strip().casefold().startswith("free") or _amounts(said) == {("USD", 0.0)}:
        zero = price is not None and _as_float(price) == 0.0
        return "Free" if zero or _FREE.search(page.text) else None
    wanted = _amounts(said)
    stated = _amounts(page.text)
    if price is not None and (amount := _as_float(price)) is not None:
        stated.add((page.facts.get("currency", "USD").upper(), amount))
    if wanted and wanted & stated:
        return " ".join(said.split())[:60]
    return None


def _as_float(text: str) -> float | None:
    try:
        return float(text.replace(",", "."))
    except ValueError:
        return None


_TERM = re.compile(
    r"(?<![\w.])[$€£]?\d+(?:[.,]\d+)*(?:\s?%|[A-Za-z]{0,3})?(?!\w)|\b[A-Z][\w.+-]*\w"
)
_COMMON_CAPITALS = frozenset(
    [
        "I",
        "AI",
        "API",
        "APIs",
        "LLM",
        "LLMs",
        "UI",
        "CLI",
        "SDK",
        "SaaS",
        "It",
        "The",
        "This",
        "A",
        "An",
        "And",
        "Or",
        "In",
        "On",
        "For",
        "With",
        "Its",
        "Our",
        "We",
        "You",
        "Your",
        "They",
        "It's",
    ]
)


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def unsupported_terms(text: str, page: Page) -> list[str]:
    """Return the numbers and proper nouns of text (words with a capital not opening a sentence,
    or with a digit or inner capital anywhere) that the page's text and metadata do not hold:
    the simple check of an invented claim."""
    hay = page.haystack()
    missing: list[str] = []
    for sentence in _sentences(_NOT_PROSE.sub(" ", text)):  # code and addresses claim nothing
        for index, match in enumerate(_TERM.finditer(sentence)):
            term = match.group().rstrip(".")
            opening = match.start() == 0 or (index == 0 and not sentence[: match.start()].strip())
            shaped = any(c.isdigit() for c in term) or any(c.isupper() for c in term[1:])
            if term in _COMMON_CAPITALS or (opening and not shaped):
                continue
            if normalised(term) not in hay and term not in missing:
                missing.append(term)
    return missing


def supported_text(said: str | None, page: Page, limit: int) -> tuple[str | None, int]:
    """Return the sentences of said whose terms the page holds (at most `limit` characters),
    and how many sentences were dropped for a term it does not."""
    kept: list[str] = []
    dropped = 0
    for sentence in _sentences(said or ""):
        if unsupported_terms(sentence, page):
            dropped += 1
        elif len(" ".join([*kept, sentence])) <= limit:
            kept.append(sentence)
    return (" ".join(kept) or None), dropped


def opening_text(page: Page, limit: int) -> str:
    """Return the page's own words for a description: its metadata's, else its first
    sentences (at most `limit` characters)."""
    stated = page.facts.get("description", "")
    if len(stated) >= 40:
        return stated[:limit]
    kept: list[str] = []
    for sentence in _sentences(" ".join(page.text.split())):
        if len(" ".join([*kept, sentence])) > limit:
            break
        kept.append(sentence)
    return " ".join(kept) or page.text[:limit]
