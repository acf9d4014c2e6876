"""A capable reader of launch pages for the loopback OpenAI fake: it answers a page's reading
(the third kind of question, `panel card`) from the page in the prompt as a careful model
would, and leaves every other request to FakeOpenAI's reviews.

It reads what the prompt's fence holds (the page's URL, its metadata lines, its text) and
takes the name from the metadata or the first heading, the maker from the metadata or a "by
X" / "X released" phrase, the licence and the entry price from the phrases pages use for them,
and the tagline and description from the page's first sentences. `inventive=True` adds a claim
no page makes (a number and a company): what panel's checks must leave out.

Use: `FakeOpenAI(content=read_pages)` (or `content=inventive_reader`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .http import LoopbackServer, Reply, Seen
from .judges import schema_of
from .openai import prompt_text

_FENCE = re.compile(r"<<<TOOL_CARD>>>\n(.*?)\n<<<END_TOOL_CARD>>>", re.DOTALL)
_FACT = re.compile(r"^Page (\w+): (.+)$", re.MULTILINE)
_HEADING = re.compile(r"^\s*#{1,2}\s+(.+?)\s*#*$", re.MULTILINE)
_MAKER = re.compile(
    r"\b(?:by|from|built by|made by|developed by) ((?:[A-Z][\w&-]*)(?: [A-Z][\w&-]*){0,2})"
    r"|((?:[A-Z][\w&-]*)(?: [A-Z][\w&-]*){0,2}) (?:releases|released|launches|launched|"
    r"introduces|announced)\b"
)
_NOT_MAKERS = {"We", "I", "It", "This", "The", "URL", "PyPI", "GitHub", "Unknown"}
_LICENCE = re.compile(
    r"\b(MIT|Apache[- ]2\.0|Apache License,? Version 2\.0|Apache License 2\.0|GPL-?3\.0|GPLv3|"
    r"AGPL-?3\.0|AGPLv3|BSD-3-Clause|MPL-2\.0)\b(?=[^.\n]{0,40}\blicen[cs]e|\s+licen[cs]e)"
    r"|\blicen[cs]ed? under (?:the )?(MIT|Apache[- ]2\.0|Apache License,? Version 2\.0|GPLv3|AGPL-?3\.0)",
    re.IGNORECASE,
)
_PRICE = re.compile(
    r"[$€£]\s?\d+(?:\.\d{1,2})?(?:\s*(?:/|per)\s*(?:month|mo|hour|year|user|seat))?", re.IGNORECASE
)
_FREE = re.compile(r"\b(?:free (?:plan|tier|forever|to use)|completely free|is free)\b", re.I)
INVENTED = " It already has 10 million users at Google."


def read_pages(body: dict[str, Any]) -> str | None:
    """Return the reading of the page a request shows (JSON text), None if the request is not
    a page's reading."""
    return _reading(body, inventive=False)


def inventive_reader(body: dict[str, Any]) -> str | None:
    """Return read_pages' answer with a claim no page makes added to its description."""
    return _reading(body, inventive=True)


def _reading(body: dict[str, Any], *, inventive: bool) -> str | None:
    props = schema_of(body).get("properties", {})
    if not {"tagline", "license", "entry"} <= set(props):
        return None
    fenced = _FENCE.search(prompt_text(body["messages"]))
    inside = fenced.group(1) if fenced else ""
    facts = dict(_FACT.findall(inside))
    text = "\n".join(
        line for line in inside.splitlines() if not line.startswith(("URL: ", "Page "))
    ).strip()
    answer = page_reading(text, facts)
    if inventive:
        answer["description"] += INVENTED
    return json.dumps(answer)


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    if match is None:
        return None
    return next((g for g in match.groups() if g), match.group()).strip()


def _sentences(text: str, count: int) -> str:
    prose = " ".join(
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "|", "```", "-", "*", "!", "["))
    )
    found = re.split(r"(?<=[.!?])\s+", prose)
    return _within(" ".join(found[:count]), 590) or "Unknown"


def _within(text: str, limit: int) -> str:
    """Return text cut at its last sentence end within limit characters."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    end = max(head.rfind(". "), head.rfind("! "), head.rfind("? "))
    return head[: end + 1] if end > 0 else head.rsplit(" ", 1)[0]


def page_reading(text: str, facts: dict[str, str]) -> dict[str, str]:
    """Return what a careful reader takes from a page's text and metadata facts."""
    title = facts.get("title", "")
    introduced = re.match(r"(?:Introducing|Announcing|Meet)\s+(.+)", title)
    name = (
        facts.get("name")
        or (introduced.group(1) if introduced else None)
        or title
        or _first(_HEADING, text)
        or "Unknown"
    )
    name = re.split(r"\s+[-|:–]\s+|:\s", name)[0].strip()
    maker = facts.get("maker") or _first(_MAKER, text[:1500]) or "Unknown"
    maker = "Unknown" if maker in _NOT_MAKERS else maker
    price = _first(_PRICE, text)
    entry = price or ("Free" if _FREE.search(text) else "Unknown")
    if entry == "Unknown" and facts.get("price") in ("0", "0.0", "0.00"):
        entry = "Free"
    description = facts.get("description") or _sentences(text, 3)
    return {
        "name": name[:120],
        "maker": maker,
        "tagline": _sentences(description, 1)[:200],
        "category": "Developer Tools",
        "pricing": "Free" if entry == "Free" else ("Paid" if price else "Unknown"),
        "entry": entry,
        "license": facts.get("license") or _first(_LICENCE, text) or "Unknown",
        "description": _within(_sentences(text, 3) if len(description) < 40 else description, 590),
    }


CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".xml": "application/rss+xml",
    ".json": "application/feed+json",
}


class PageServer(LoopbackServer):
    """A loopback server of saved pages: `pages` maps a path ("/ollama.md") to a Reply, or to
    the bytes of a file served with its suffix's content type; any other path is 404, or with
    `made_up`, a short launch page of its own naming the path's last part (a feed's links to
    pages never saved). Counts what it served."""

    def __init__(
        self, pages: dict[str, Reply | bytes] | None = None, *, made_up: bool = False
    ) -> None:
        super().__init__()
        self.pages: dict[str, Reply | bytes] = dict(pages or {})
        self.made_up = made_up
        self.hits: dict[str, int] = {}
        self.agents: set[str] = set()

    @classmethod
    def of_folder(cls, folder: Path) -> PageServer:
        """Return a server of every file in folder, at /<name>."""
        return cls({f"/{p.name}": p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()})

    def respond(self, seen: Seen) -> Reply:
        path = seen.path.split("?", 1)[0]
        with self._lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            self.agents.add(seen.headers.get("user-agent", ""))
        found = self.pages.get(path)
        if found is None and self.made_up:
            return Reply(200, made_up_page(path.rstrip("/").rsplit("/", 1)[-1]))
        if found is None:
            return Reply(404, "<h1>Not Found</h1>")
        if isinstance(found, Reply):
            return found
        kind = CONTENT_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")
        return Reply(200, found, {"content-type": kind})


def made_up_page(name: str) -> str:
    """Return a short English launch page about the tool `name` (HTML)."""
    return (
        f"<html><head><title>{name}</title></head><body><article><h1>{name}</h1>"
        f"<p>{name} is a new open model in the library. It runs on your own machine with one "
        f"command, and it is free to use for developers and teams.</p>"
        f"<p>Pull {name} and run it from the command line or from the API.</p>"
        "</article></body></html>"
    )
