"""The store's part of intake on both backends: a page's reading kept under its key (the third
kind of question), and the feed entries queued (m020)."""

from __future__ import annotations

import datetime as dt

from panel.sources import Page
from panel.store import CARD, Key, Store, StoredCard

PAGE = Page(
    "https://quill.example/", "html", "Quillmate drafts release notes.", {}, dt.datetime.now(dt.UTC)
)


def test_a_reading_is_found_under_its_key(db: str) -> None:
    store = Store(db)
    try:
        reading = StoredCard(
            url=PAGE.url,
            text_hash=PAGE.content_hash(),
            persona="reader",
            prompt_version="v1",
            provider="openai",
            model="fake",
            fields={"name": "Quillmate"},
            temperature=0.0,
            attempts=1,
            created_at=1.0,
        )
        store.save((PAGE,), reading)
        key = Key(CARD, (PAGE.content_hash(),), "reader", "v1", "openai", "fake")
        assert reading.key == key
        assert store.find(key) == [reading]
        assert store.find(Key(CARD, ("0" * 16,), "reader", "v1", "openai", "fake")) == []
        assert store.tools() == []  # a page is not a tool
    finally:
        store.close()


def test_a_feed_entry_is_seen_under_any_of_its_names(db: str) -> None:
    store = Store(db)
    try:
        names = ["id:1", "link:https://quill.example/", "hash:abc"]
        assert store.seen_entry(names) is None
        store.remember_entry("https://feed.example/", names, "quillmate")
        store.remember_entry("https://feed.example/", names, "quillmate")  # again: nothing new
        assert store.seen_entry(["id:2", "link:https://quill.example/"]) == "quillmate"
        assert store.seen_entry(["id:2", "link:https://other.example/"]) is None
    finally:
        store.close()
