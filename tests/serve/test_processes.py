"""Real `panel serve` processes: several of them (one with two uvicorn workers) on one PostgreSQL
store share voters, votes, the vote limit and the queue, and each rebuilds its own copy of the
site when `queue run` has reviewed a card sent to one of them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from panel.config import data_dir
from panel.personas import load_personas
from panel.records import import_file
from panel.store import Store
from panel.testing.fakes.openai import FakeOpenAI
from panel.testing.postgres import PostgresServer
from panel.testing.serving import RunningServer, panel_serve
from tests.cli.test_cli import panel
from tests.queue.test_queue import env_for
from tests.serve.test_api import NEW_CARD, SEED, SMOL

pytestmark = pytest.mark.slow

KEY = "shared-signing-key-of-the-site-" + "s" * 16
TOKEN = "shared-submit-token-0123456789"


def vote(client: httpx.Client, server: RunningServer, tool: str, verdict: str) -> Any:
    return client.post(
        server.url + "api/votes",
        json={"tool": tool, "verdict": verdict},
        headers={"origin": server.origin},
    )


def wait_for(url: str, seconds: float = 30.0) -> httpx.Response:
    """GET url until it answers 200 (a page the keeper has yet to write), or fail."""
    deadline = time.monotonic() + seconds
    while True:
        answer = httpx.get(url)
        if answer.status_code == 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_processes_on_postgres_share_votes_limits_and_the_queue(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    db = postgres.database()
    store = Store(db)
    try:
        import_file(SEED, load_personas(data_dir("personas")), store)
    finally:
        store.close()
    shared = {
        "PANEL_DB": db,
        "PANEL_SIGNING_KEY": KEY,
        "PANEL_SUBMIT_TOKEN": TOKEN,
        "PANEL_VOTE_RATE": "3",
        "PANEL_VOTER_MIN_AGE": "0",  # a fresh cookie votes at once here (see test_edge)
    }
    a_env = {**shared, "PANEL_OUT": str(tmp_path / "a")}  # two machines: a site folder each
    b_env = {**shared, "PANEL_OUT": str(tmp_path / "b")}
    with (
        panel_serve(
            "--workers", "2", "--rebuild-every", "0.5", env=a_env, log=tmp_path / "a.log"
        ) as a,
        panel_serve("--rebuild-every", "0.5", env=b_env, log=tmp_path / "b.log") as b,
        httpx.Client() as browser,
    ):
        browser.get(a.url)  # the cookie of machine a ...
        first = vote(browser, a, SMOL, "ship")
        assert first.status_code == 200, first.text
        second = vote(browser, b, SMOL, "skip")  # ... is the same voter on machine b
        assert second.status_code == 200, second.text
        assert second.json()["community"]["label"] == "1 vote · 0% ship"
        assert httpx.get(a.url + f"api/tools/{SMOL}").json()["community"]["votes"] == 1
        assert vote(browser, a, SMOL, "ship").status_code == 200  # the address's third vote
        limited = vote(browser, b, SMOL, "skip")  # its fourth, on the other machine
        assert limited.status_code == 429, limited.text

        sent = httpx.post(
            b.url + f"api/cards?compare={SMOL}",
            json=NEW_CARD,
            headers={"authorization": f"Bearer {TOKEN}"},
        )
        assert sent.status_code == 202, sent.text
        with FakeOpenAI() as model:  # a queue worker on a third machine
            ran = panel("queue", "run", env=env_for(model, db, tmp_path / "worker"))
            assert ran.returncode == 0, ran.stderr
        for server in (a, b):  # each machine rebuilds its own copy of the site
            page = wait_for(server.url + "tools/tiny-vision-1b.html")
            assert page.status_code == 200 and "Tiny Vision 1B" in page.text
            assert (
                wait_for(server.url + f"compare/tiny-vision-1b-vs-{SMOL}.html").status_code == 200
            )
    assert "site rebuilt" in (tmp_path / "a.log").read_text()
