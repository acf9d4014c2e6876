"""Feeds of launches: RSS, Atom (feedparser) and JSON Feed (a few lines of panel's own), read
into entries that each name one launch page (`panel queue add --feed`).

A feed is fetched like a page (panel.fetch: capped, one deadline, no private address), so a
feed of 10,000 entries costs at most `max_page_bytes` to read, and only its first MAX_ENTRIES
entries are looked at. An entry is known by its id, its link and the hash of what it says:
seen before under any of them, it is skipped (the store remembers the entries queued).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from panel.config import Settings
from panel.errors import PageError
from panel.fetch import FEED_TYPES, KINDS, fetch

MAX_ENTRIES = 100
"""Entries of one feed looked at per run, first first (a feed lists its newest first)."""
JSON_FEED = "https://jsonfeed.org/version/"


@dataclass(frozen=True)
class Entry:
    """One feed entry: its link (the launch page), its title, and the names it is known by."""

    link: str
    title: str
    names: list[str]
    """"id:…", "link:…", "hash:…": an entry seen under any of them was seen."""


@dataclass(frozen=True)
class Feed:
    """A feed as read: its address, the entries looked at, and how many it held in all."""

    url: str
    entries: list[Entry]
    total: int
    problems: list[str]
    """One line for each entry that names no page (skipped)."""


async def read_feed(url: str, settings: Settings) -> Feed:
    """Fetch and parse the feed at url; raise PageError if it is not a feed."""
    types = {**KINDS, **dict.fromkeys(FEED_TYPES, "feed")}
    fetched = await fetch(
        url,
        allow_private=settings.allow_private,
        max_bytes=settings.max_page_bytes,
        deadline=settings.fetch_timeout,
        types=types,
    )
    raw = fetched.body.lstrip()
    items = _json_feed(fetched.url, raw) if raw[:1] == b"{" else _xml_feed(fetched.url, raw)
    entries, problems = [], []
    for number, item in enumerate(items[:MAX_ENTRIES], start=1):
        link = str(item.get("link") or item.get("url") or "").strip()
        if not link.startswith(("http://", "https://")):
            problems.append(f"entry {number}: no http(s) link, skipped")
            continue
        title = " ".join(str(item.get("title") or "").split())[:200]
        said = json.dumps([title, str(item.get("summary") or item.get("content_text") or "")])
        names = [f"link:{link}", "hash:" + hashlib.sha256(said.encode()).hexdigest()[:32]]
        if item.get("id"):
            names.insert(0, f"id:{str(item['id'])[:500]}")
        entries.append(Entry(link, title, names))
    return Feed(fetched.url, entries, len(items), problems)


def _json_feed(url: str, raw: bytes) -> list[dict[str, Any]]:
    """Return the items of a JSON Feed (version 1 or 1.1)."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise PageError(url, "is not a feed (invalid JSON)") from None
    if not isinstance(data, dict) or not str(data.get("version", "")).startswith(JSON_FEED):
        raise PageError(url, "is not a feed (JSON without a JSON Feed version)")
    items = data.get("items")
    if not isinstance(items, list):
        raise PageError(url, "is not a feed (a JSON Feed without items)")
    return [item for item in items if isinstance(item, dict)]


def _xml_feed(url: str, raw: bytes) -> list[dict[str, Any]]:
    """Return the entries of an RSS or Atom feed (feedparser, which fetches nothing itself)."""
    import feedparser

    parsed = feedparser.parse(raw)
    if not parsed.get("version"):
        reason = parsed.get("bozo_exception")
        raise PageError(url, f"is not an RSS, Atom or JSON feed ({reason or 'no feed found'})")
    return [dict(entry) for entry in parsed.entries]
