"""Fetching a launch page against loopback servers: redirects, the address guard on every hop and
on the resolved address, the caps (size once decompressed, the deadline), the types accepted."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator

import pytest

import panel.fetch
from panel.errors import PageError
from panel.fetch import Fetched, fetch
from panel.testing.fakes.http import Reply
from panel.testing.fakes.reader import PageServer

PAGE = b"<html><head><title>Tool</title></head><body><p>A page about a tool.</p></body></html>"
PUBLIC = "launch.test"
"""A name the tests resolve to the loopback server and let through the guard: a stand-in for a
public host, so that what a page redirects to meets the guard on its own."""


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[PageServer]:
    real_resolve, real_refused = panel.fetch._resolve, panel.fetch.refused

    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == PUBLIC else await real_resolve(host, port)

    def refused(host: str, address: str) -> str | None:
        return None if host == PUBLIC else real_refused(host, address)

    monkeypatch.setattr(panel.fetch, "_resolve", resolve)
    monkeypatch.setattr(panel.fetch, "refused", refused)
    with PageServer({"/page.html": PAGE}) as pages:
        yield pages


def public(server: PageServer, path: str) -> str:
    return server.url.replace("127.0.0.1", PUBLIC) + path


def get(url: str, **options: object) -> Fetched:
    return asyncio.run(fetch(url, **options))  # type: ignore[arg-type]


def refused_with(url: str, words: str, **options: object) -> str:
    with pytest.raises(PageError) as caught:
        get(url, **options)
    line = str(caught.value)
    assert words in line and "\n" not in line, line
    return line


def test_a_page_is_fetched_with_its_kind_and_a_clear_user_agent(server: PageServer) -> None:
    fetched = get(public(server, "/page.html"))
    assert fetched.kind == "html" and fetched.body == PAGE
    assert server.agents == {panel.fetch.USER_AGENT}
    assert "panel" in panel.fetch.USER_AGENT and "launch page" in panel.fetch.USER_AGENT


def test_redirects_are_followed_up_to_five(server: PageServer) -> None:
    for n in range(5):
        server.pages[f"/hop{n}"] = Reply(302, "", {"location": f"/hop{n + 1}"})
    server.pages["/hop5"] = Reply(200, "<p>arrived</p>")
    assert get(public(server, "/hop0")).url.endswith("/hop5")
    server.pages["/loop"] = Reply(302, "", {"location": "/loop"})
    refused_with(public(server, "/loop"), "more than 5 redirects")


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("http://127.0.0.1:{port}/page.html", "127.0.0.1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://10.0.0.1/", "10.0.0.1 is a private address"),
        ("http://[::ffff:127.0.0.1]:{port}/", "a loopback address"),
        ("http://localhost:{port}/page.html", "localhost resolves to"),
        ("file:///etc/passwd", "only http and https"),
    ],
)
def test_a_redirect_to_an_address_panel_must_not_reach_is_refused(
    server: PageServer, target: str, words: str
) -> None:
    port = server.url.rsplit(":", 1)[1]
    server.pages["/away"] = Reply(302, "", {"location": target.format(port=port)})
    line = refused_with(public(server, "/away"), words)
    assert "--allow-private" in line or "http and https" in line
    assert server.hits.get("/page.html", 0) == 0  # the loopback page was never reached


def test_the_resolved_address_is_checked_not_only_the_name(server: PageServer) -> None:
    """localhost is a name, not an address: what it resolves to is refused."""
    port = server.url.rsplit(":", 1)[1]
    refused_with(f"http://localhost:{port}/page.html", "localhost resolves to")
    refused_with(f"{server.url}/page.html", "127.0.0.1 is a loopback address")
    assert server.hits == {}
    assert get(f"http://localhost:{port}/page.html", allow_private=True).body == PAGE


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (Reply(404, "<h1>gone</h1>"), "HTTP 404"),
        (Reply(200, b"%PDF-1.7 ...", {"content-type": "application/pdf"}), "is a PDF"),
        (Reply(200, b"\x7fELF\x00\x00", {"content-type": "application/octet-stream"}), "HTML"),
        (Reply(200, b"<p>\x00\x01\x02</p>", {"content-type": "text/html"}), "looks binary"),
        (Reply(200, b"x" * (3 * 2**20), {"content-type": "text/html"}), "larger than 1 MiB"),
    ],
    ids=["404", "pdf", "binary", "nul-bytes", "too-large"],
)
def test_what_is_no_page_is_refused_in_one_line(
    server: PageServer, reply: Reply, words: str
) -> None:
    server.pages["/bad"] = reply
    refused_with(public(server, "/bad"), words, max_bytes=2**20)


def test_a_50_mb_page_and_a_gzip_bomb_stop_at_the_cap(server: PageServer) -> None:
    server.pages["/huge.html"] = Reply(
        200, b"<p>" + b"a" * (50 * 2**20), {"content-type": "text/html"}
    )
    refused_with(public(server, "/huge.html"), "larger than 5 MiB once decompressed")
    bomb = gzip.compress(b"<p>" + b"a" * (64 * 2**20), compresslevel=9)
    assert len(bomb) < 2**20
    server.pages["/bomb.html"] = Reply(
        200, bomb, {"content-type": "text/html", "content-encoding": "gzip"}
    )
    refused_with(public(server, "/bomb.html"), "larger than 5 MiB once decompressed")


def test_a_trickling_server_fails_at_the_deadline(server: PageServer) -> None:
    server.pages["/slow.html"] = Reply(200, "<p>" + "a" * 200, trickle=0.05)
    refused_with(public(server, "/slow.html"), "did not answer in full within 1 s", deadline=1.0)
