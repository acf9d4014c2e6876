"""`panel serve`'s API in process (Starlette's TestClient on the real app), on both backends:
votes, the voter cookie and the origin check, the shared vote limit, tool summaries, card
submissions through the queue, security headers and the site's files."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from panel.cards import load_card
from panel.config import Settings, data_dir
from panel.personas import load_personas
from panel.queue.store import QueueStore
from panel.records import import_file
from panel.serve.app import Serving, make_app
from panel.serve.keeper import Keeper
from panel.store import Store
from tests.conftest import REPO

SEED = REPO / "examples" / "seeds" / "000-smolvlm-3b-vs-mistral-8x22b-v2.jsonl"
KEY = SecretStr("test-signing-key-" + "k" * 32)
TOKEN = "test-submit-token-0123456789"
SITE = "http://testserver"
"""The origin TestClient's requests reach."""
SMOL, MISTRAL = "smolvlm-3b", "mistral-8x22b-v2"


def seeded(db: str, out: Path, **more: Any) -> Settings:
    """Return settings of a store holding seed 000 (two tools, four reviews each)."""
    more = {"allowed_hosts": ["testserver"], "voter_min_age": 0, **more}
    settings = Settings(db=db, out=out, signing_key=KEY, **more)
    store = Store(db)
    try:
        import_file(SEED, load_personas(data_dir("personas")), store)
    finally:
        store.close()
    return settings


@pytest.fixture
def settings(db: str, tmp_path: Path) -> Settings:
    return seeded(db, tmp_path / "site")


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return seeded(str(tmp_path / "panel.db"), tmp_path / "site")


def client_of(settings: Settings, **options: Any) -> TestClient:
    """Return a client of the app (its store opens when the block starts)."""
    return TestClient(make_app(Serving(settings, rebuild_every=0)), **options)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with client_of(settings) as browser:
        browser.get("/")  # the first answer sets the voter cookie
        yield browser


def vote(
    client: TestClient, tool: str, verdict: str, origin: str | None = SITE, **headers: str
) -> Any:
    if origin is not None:
        headers["origin"] = origin
    return client.post("/api/votes", json={"tool": tool, "verdict": verdict}, headers=headers)


def counts(settings: Settings, tool: str) -> tuple[int, int]:
    store = Store(settings.db)
    try:
        return store.vote_counts(tool)
    finally:
        store.close()


# --- votes -----------------------------------------------------------------------------------


def test_one_vote_per_voter_and_tool_the_latest_counts(
    client: TestClient, settings: Settings
) -> None:
    first = vote(client, SMOL, "ship")
    assert first.status_code == 200, first.text
    assert first.json() == {
        "tool": SMOL,
        "your_vote": "ship",
        "community": {
            "votes": 1,
            "ship": 1,
            "skip": 0,
            "ship_pct": 100,
            "label": "1 vote · 100% ship",
            "networks": 1,
        },
    }
    assert vote(client, SMOL, "ship").json()["community"]["votes"] == 1  # no double
    assert vote(client, SMOL, "skip").json()["community"]["label"] == "1 vote · 0% ship"
    with client_of(settings) as other:  # a second browser: its own cookie, its own vote
        other.get("/index.html")
        assert vote(other, SMOL, "ship").json()["community"]["label"] == "2 votes · 50% ship"
        assert other.get(f"/api/tools/{SMOL}").json()["your_vote"] == "ship"
    assert client.get(f"/api/tools/{SMOL}").json()["your_vote"] == "skip"
    assert counts(settings, SMOL) == (1, 1)
    assert counts(settings, MISTRAL) == (0, 0)


def test_the_voter_cookie_is_set_on_the_first_answer_only(settings: Settings) -> None:
    with client_of(settings) as browser:
        page = browser.get("/")
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("panel_voter=")
        for flag in ("Path=/", "HttpOnly", "SameSite=Lax", "Max-Age="):
            assert flag in cookie
        assert "Secure" not in cookie  # plain HTTP here; behind HTTPS see the proxy test
        assert "set-cookie" not in browser.get("/").headers
        assert "set-cookie" not in browser.get(f"/api/tools/{SMOL}").headers
        refused = vote(browser, SMOL, "ship", origin="http://evil.example")
        assert "set-cookie" not in refused.headers


REFUSED = {
    "no Origin": {"origin": None},
    "another site": {"origin": "http://evil.example"},
    "another port": {"origin": "http://testserver:8080"},
    "another scheme": {"origin": "https://testserver"},
    "null origin": {"origin": "null"},
    "cross-site fetch": {"sec-fetch-site": "cross-site"},
    "same-site fetch": {"sec-fetch-site": "same-site"},
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_vote_from_anywhere_but_the_site_stores_nothing(
    client: TestClient, settings: Settings, case: str
) -> None:
    headers = dict(REFUSED[case])
    origin = headers.pop("origin", SITE)
    refused = vote(client, SMOL, "ship", origin=origin, **headers)  # type: ignore[arg-type]
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"].startswith("vote refused: ")
    assert counts(settings, SMOL) == (0, 0)


@pytest.mark.parametrize("cookie", [None, "forged", "0123456789abcdef0123456789abcdef.AAAA"])
def test_a_vote_without_a_valid_voter_cookie_stores_nothing(
    settings: Settings, cookie: str | None
) -> None:
    with client_of(settings) as browser:
        if cookie is not None:
            browser.cookies.set("panel_voter", cookie)
        refused = vote(browser, SMOL, "ship")
        assert refused.status_code == 403
        assert "no valid voter cookie" in refused.json()["error"]
    other_key = settings.model_copy(update={"signing_key": SecretStr("x" * 40)})
    with client_of(other_key) as elsewhere:  # a cookie signed with another key is no cookie
        elsewhere.get("/")
        stolen = elsewhere.cookies["panel_voter"]
    with client_of(settings) as browser:
        browser.cookies.set("panel_voter", stolen)
        assert vote(browser, SMOL, "ship").status_code == 403
    assert counts(settings, SMOL) == (0, 0)


BAD_BODIES = {
    "not JSON": (b"tool=smolvlm-3b&verdict=ship", "application/json", 422, "invalid JSON"),
    "a form": (b'{"tool": "smolvlm-3b", "verdict": "ship"}', "text/plain", 415, "Content-Type"),
    "a list": (b'["smolvlm-3b", "ship"]', "application/json", 422, "body"),
    "a key twice": (
        b'{"tool": "smolvlm-3b", "verdict": "skip", "verdict": "ship"}',
        "application/json",
        422,
        "duplicate key 'verdict'",
    ),
    "another field": (
        b'{"tool": "smolvlm-3b", "verdict": "ship", "voter": "ana"}',
        "application/json",
        422,
        "voter: Extra inputs are not permitted",
    ),
    "a free-text verdict": (
        b'{"tool": "smolvlm-3b", "verdict": "great!"}',
        "application/json",
        422,
        "verdict: Input should be 'ship' or 'skip'",
    ),
    "a number": (b'{"tool": "smolvlm-3b", "verdict": 1}', "application/json", 422, "verdict"),
    "a bad slug": (
        b'{"tool": "<script>", "verdict": "ship"}',
        "application/json",
        422,
        "tool: String should match pattern",
    ),
    "too big": (
        b'{"tool": "smolvlm-3b", "verdict": "ship", "x": "' + b"a" * 2000 + b'"}',
        "application/json",
        413,
        "larger than 1024 bytes",
    ),
    "no such tool": (
        b'{"tool": "no-such-tool", "verdict": "ship"}',
        "application/json",
        404,
        "no tool 'no-such-tool'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_a_bad_vote_is_one_line_and_stores_nothing(sqlite_settings: Settings, case: str) -> None:
    body, kind, status, says = BAD_BODIES[case]
    with client_of(sqlite_settings) as browser:
        browser.get("/")
        answer = browser.post(
            "/api/votes", content=body, headers={"origin": SITE, "content-type": kind}
        )
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert says in error and "\n" not in error
    assert counts(sqlite_settings, SMOL) == (0, 0)


def test_a_chunked_body_is_capped_while_it_is_read(sqlite_settings: Settings) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"tool": "smolvlm-3b", "verdict": "ship", "x": "'
        for _ in range(100):
            yield b"a" * 100
        yield b'"}'

    with client_of(sqlite_settings) as browser:
        browser.get("/")
        answer = browser.post(
            "/api/votes",
            content=chunks(),
            headers={"origin": SITE, "content-type": "application/json"},
        )
    assert answer.status_code == 413
    assert counts(sqlite_settings, SMOL) == (0, 0)


def test_votes_from_one_address_are_limited_across_processes(db: str, tmp_path: Path) -> None:
    """Two apps on one store stand for two workers (or machines): one budget per address."""
    settings = seeded(db, tmp_path / "site", vote_rate=3)
    address = ("203.0.113.7", 40000)
    with client_of(settings, client=address) as one, client_of(settings, client=address) as two:
        one.get("/")
        two.get("/")
        for browser, tool in ((one, SMOL), (two, MISTRAL), (one, MISTRAL)):
            assert vote(browser, tool, "ship").status_code == 200
        limited = vote(two, SMOL, "skip")
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 21
        assert "too many votes" in limited.json()["error"]
    assert counts(settings, SMOL) == (1, 0)  # the limited vote changed nothing
    with client_of(settings, client=("203.0.113.8", 40000)) as elsewhere:
        elsewhere.get("/")
        assert vote(elsewhere, SMOL, "skip").status_code == 200  # another address, its own budget


def test_forwarded_addresses_count_only_behind_a_trusted_proxy(tmp_path: Path) -> None:
    proxy = ("10.0.0.5", 40000)
    forwarded = [{"x-forwarded-for": f"198.51.100.{n}"} for n in (1, 2)]
    direct = seeded(str(tmp_path / "a.db"), tmp_path / "a", vote_rate=1)
    with client_of(direct, client=proxy) as browser:
        browser.get("/")
        assert vote(browser, SMOL, "ship", **forwarded[0]).status_code == 200
        # Without a trusted proxy the header is the client's word: both come from 10.0.0.5.
        assert vote(browser, MISTRAL, "ship", **forwarded[1]).status_code == 429
    behind = seeded(
        str(tmp_path / "b.db"), tmp_path / "b", vote_rate=1, trusted_proxy=["10.0.0.0/8"]
    )
    with client_of(behind, client=proxy) as browser:
        browser.get("/")
        assert vote(browser, SMOL, "ship", **forwarded[0]).status_code == 200
        assert vote(browser, MISTRAL, "ship", **forwarded[1]).status_code == 200
        # A forged address in front of the proxy's own entry does not move the client.
        spoofed = {"x-forwarded-for": "192.0.2.99, 198.51.100.1"}
        assert vote(browser, MISTRAL, "skip", **spoofed).status_code == 429
    with client_of(behind, client=("192.0.2.50", 40000)) as outsider:
        outsider.get("/")
        assert vote(outsider, SMOL, "ship", **forwarded[0]).status_code == 200  # not believed
        assert vote(outsider, MISTRAL, "ship", **forwarded[1]).status_code == 429


def test_https_behind_a_trusted_proxy_makes_the_cookie_secure(tmp_path: Path) -> None:
    settings = seeded(str(tmp_path / "p.db"), tmp_path / "p", trusted_proxy=["127.0.0.1"])
    https = {"x-forwarded-proto": "https", "x-forwarded-for": "198.51.100.7"}
    with client_of(settings, client=("127.0.0.1", 40000)) as browser:
        cookie = browser.get("/", headers=https).headers["set-cookie"]
        assert "; Secure" in cookie
        # The client here speaks plain HTTP, so it keeps a Secure cookie to itself: send it.
        https["cookie"] = cookie.split(";")[0]
        # The site's origin is now https://testserver: a page served over plain http is not it.
        assert vote(browser, SMOL, "ship", origin=SITE, **https).status_code == 403
        assert vote(browser, SMOL, "ship", origin="https://testserver", **https).status_code == 200


def test_an_ipv6_client_counts_by_its_64(tmp_path: Path) -> None:
    settings = seeded(
        str(tmp_path / "v6.db"), tmp_path / "v6", vote_rate=1, trusted_proxy=["127.0.0.1"]
    )
    with client_of(settings, client=("127.0.0.1", 40000)) as browser:
        browser.get("/")
        first = {"x-forwarded-for": "2001:db8:1:2::1"}
        same_64 = {"x-forwarded-for": "2001:db8:1:2:ffff::9"}
        other_64 = {"x-forwarded-for": "2001:db8:1:3::1"}
        assert vote(browser, SMOL, "ship", **first).status_code == 200
        assert vote(browser, MISTRAL, "ship", **same_64).status_code == 429
        assert vote(browser, MISTRAL, "ship", **other_64).status_code == 200


# --- tool summaries ----------------------------------------------------------------------------


def test_a_tool_summary_has_the_panel_and_the_community(client: TestClient) -> None:
    answer = client.get(f"/api/tools/{SMOL}")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    found = answer.json()
    assert set(found) == {"tool", "panel", "community", "your_vote", "votes_in"}
    assert found["votes_in"] == 0  # an old enough cookie (voter_min_age 0 here)
    assert found["tool"]["slug"] == SMOL and found["tool"]["name"] == "SmolVLM-3B"
    assert found["panel"]["label"] == "Ship · 3 ship / 1 skip"
    assert found["panel"]["ship_pct"] == 75
    assert found["community"] == {
        "votes": 0,
        "ship": 0,
        "skip": 0,
        "ship_pct": None,
        "label": "No community votes yet",
        "networks": 0,
    }
    assert found["your_vote"] is None
    for slug in ("no-such-tool", "Bad%20Slug", "smolvlm-3b~padding", "x" * 300):
        missing = client.get(f"/api/tools/{slug}")
        assert missing.status_code == 404 and "error" in missing.json()


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"ok": True}


# --- cards -------------------------------------------------------------------------------------


NEW_CARD = {
    "name": "Tiny Vision 1B",
    "tagline": "A one-billion parameter vision model for phones",
    "description": "Tiny Vision answers questions about photos on the device.",
    "entry": "Free",
}


def submit(client: TestClient, card: Any, *, token: str | None = TOKEN, query: str = "") -> Any:
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    body = card if isinstance(card, bytes) else json.dumps(card).encode()
    headers["content-type"] = "application/json"
    return client.post(f"/api/cards{query}", content=body, headers=headers)


def test_card_submission_is_off_without_a_token(client: TestClient) -> None:
    answer = submit(client, NEW_CARD)
    assert answer.status_code == 404
    assert "off" in answer.json()["error"]


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}", TOKEN]
)
def test_a_card_needs_the_token(tmp_path: Path, authorization: str | None) -> None:
    settings = seeded(str(tmp_path / "c.db"), tmp_path / "c", submit_token=SecretStr(TOKEN))
    headers = {"content-type": "application/json"}
    if authorization is not None:
        headers["authorization"] = authorization
    with client_of(settings) as api:
        answer = api.post("/api/cards", content=json.dumps(NEW_CARD), headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    store = Store(settings.db)
    try:
        assert not store.has_tool("tiny-vision-1b")
    finally:
        store.close()


BAD_CARDS: dict[str, bytes] = {
    "missing tagline": json.dumps({"name": "X", "description": "d"}).encode(),
    "long description": json.dumps({**NEW_CARD, "description": "d" * 4001}).encode(),
    "unknown field": json.dumps({**NEW_CARD, "price": 3}).encode(),
    "bad slug": json.dumps({**NEW_CARD, "slug": "Not A Slug"}).encode(),
    "javascript url": json.dumps({**NEW_CARD, "url": "javascript:alert(1)"}).encode(),
    "not json": b"name: Tiny Vision\n",
    "NaN": b'{"name": "X", "tagline": "t", "description": "d", "outcome": NaN}',
    "a key twice": b'{"name": "X", "name": "Y", "tagline": "t", "description": "d"}',
    "a list": b'[{"name": "X"}]',
    "NUL bytes": b'{"name": "X\x00"}',
    "empty": b"   ",
}


@pytest.mark.parametrize("case", list(BAD_CARDS))
def test_a_bad_card_is_422_with_the_reason_the_cli_gives(tmp_path: Path, case: str) -> None:
    settings = seeded(str(tmp_path / "c.db"), tmp_path / "c", submit_token=SecretStr(TOKEN))
    path = tmp_path / "card.json"
    path.write_bytes(BAD_CARDS[case])
    with pytest.raises(Exception) as cli:  # what `panel review card.json` says, on one line
        load_card(path)
    with client_of(settings) as api:
        answer = submit(api, BAD_CARDS[case])
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == str(cli.value).replace(str(path), "card", 1)
    assert QueueStore(Store(settings.db)).status()["tasks"]["pending"] == 0


def test_a_card_naming_an_unknown_tool_stores_nothing(tmp_path: Path) -> None:
    settings = seeded(str(tmp_path / "c.db"), tmp_path / "c", submit_token=SecretStr(TOKEN))
    with client_of(settings) as api:
        answer = submit(api, NEW_CARD, query="?compare=no-such-tool")
        assert answer.status_code == 422
        assert answer.json()["error"] == "no-such-tool: no such tool in the store to compare with"
        too_many = "?" + "&".join(f"compare=t{n}" for n in range(21))
        assert submit(api, NEW_CARD, query=too_many).status_code == 422
        not_a_slug = submit(api, NEW_CARD, query="?compare=../" + "x" * 5000)
        assert not_a_slug.status_code == 422 and "x" * 200 not in not_a_slug.text
    store = Store(settings.db)
    try:
        assert not store.has_tool("tiny-vision-1b")
    finally:
        store.close()


def test_a_card_is_queued_reviewed_and_its_pages_appear(db: str, tmp_path: Path) -> None:
    from panel.testing.fakes.openai import FakeOpenAI
    from tests.cli.test_cli import panel
    from tests.queue.test_queue import env_for

    out = tmp_path / "site"
    settings = seeded(db, out, submit_token=SecretStr(TOKEN))
    with client_of(settings) as api:
        answer = submit(api, NEW_CARD, query=f"?compare={SMOL}")
        assert answer.status_code == 202, answer.text
        assert answer.json() == {
            "tool": "tiny-vision-1b",
            "queued": {"jobs": 1, "already": 0, "tools": 2, "tasks": 4, "pair_tasks": 0},
            "pages": ["tools/tiny-vision-1b.html", f"compare/tiny-vision-1b-vs-{SMOL}.html"],
        }
        again = submit(api, NEW_CARD, query=f"?compare={SMOL}")
        assert again.json()["queued"]["jobs"] == 0  # already queued: nothing twice
        with FakeOpenAI() as server:  # `queue run` workers do the rest
            ran = panel("queue", "run", env=env_for(server, db, out))
            assert ran.returncode == 0, ran.stderr
        assert (out / "compare" / f"tiny-vision-1b-vs-{SMOL}.html").exists()
        assert api.get(f"/compare/tiny-vision-1b-vs-{SMOL}.html").status_code == 200
        assert api.get("/tools/tiny-vision-1b.html").status_code == 404  # not built yet
        keeper = Keeper(settings, load_personas(data_dir("personas")), every=1)
        try:
            assert keeper.look()  # the keeper sees new reviews: the site is rebuilt
            assert not keeper.look()  # nothing new since
        finally:
            keeper.close()
        page = api.get("/tools/tiny-vision-1b.html")
        assert page.status_code == 200 and "Tiny Vision 1B" in page.text
        assert "tiny-vision-1b-vs-smolvlm-3b.html" in api.get("/index.html").text
        summary = api.get("/api/tools/tiny-vision-1b").json()
        assert summary["panel"]["reviews"] == 4


# --- what every answer carries, and the site's files --------------------------------------------


def test_every_answer_carries_the_security_headers_and_no_cors(client: TestClient) -> None:
    for path in ("/", f"/api/tools/{SMOL}", "/healthz", "/no-such-page.html", "/vote.js"):
        headers = client.get(path, headers={"origin": "http://evil.example"}).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        assert "access-control-allow-origin" not in headers
    preflight = client.options(
        "/api/votes",
        headers={
            "origin": "http://evil.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert preflight.status_code == 405
    assert "access-control-allow-origin" not in preflight.headers


def test_the_site_files_stay_inside_the_site(settings: Settings, tmp_path: Path) -> None:
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    (tmp_path / "secret.txt").write_text("outside the site")
    (out / "panel.db").write_bytes(b"SQLite format 3\x00")  # a store someone put in the folder
    (out / "signing.key").write_text("k" * 64)
    (out / ".hidden.html").write_text("<p>a temporary file</p>")
    (out / "leak.html").symlink_to(tmp_path / "secret.txt")
    (out / "compare").mkdir(exist_ok=True)
    (out / "compare" / "a.html").write_text("<p>a page</p>")
    with client_of(settings) as browser:
        assert browser.get("/compare/a.html").text == "<p>a page</p>"
        script = browser.get("/vote.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        for path in (
            "/panel.db",
            "/signing.key",
            "/.hidden.html",
            "/leak.html",
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/compare/..%2f..%2fsecret.txt",
            "/compare/%2e%2e/%2e%2e/secret.txt",
            "//etc/passwd",
            "/.panel-serve.lock",
        ):
            answer = browser.get(path)
            assert answer.status_code == 404, (path, answer.status_code)
            assert "outside the site" not in answer.text and "SQLite" not in answer.text
        for method in ("POST", "PUT", "DELETE"):
            assert browser.request(method, "/index.html").status_code == 405


def test_the_script_is_written_into_the_site(settings: Settings) -> None:
    with client_of(settings):
        pass
    from panel import pages

    assert (settings.out / pages.SCRIPT_NAME).read_text() == pages.vote_script()


def test_the_store_is_not_opened_before_the_server_starts(tmp_path: Path) -> None:
    settings = Settings(db=str(tmp_path / "none" / "panel.db"), out=tmp_path / "o", signing_key=KEY)
    make_app(Serving(settings, rebuild_every=0))
    assert not os.path.exists(tmp_path / "none" / "panel.db")
