"""Shared fixtures: a temporary store, personas, prompts, a reviewer, card files, a browser."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from panel.cards import ToolCard, parse_card
from panel.config import Settings, data_dir
from panel.personas import Persona, load_personas
from panel.prompts import Prompts
from panel.providers.base import Provider
from panel.review import Reviewer
from panel.store import Store

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from panel.testing.postgres import PostgresServer

REPO = Path(__file__).resolve().parent.parent
TEST_MODEL = "tiny"
"""The local model every test runs on: SmolLM2-135M, fast; the tests check mechanics, not
judgment (the default, qwen2.5-coder-1.5b, is for users)."""
os.environ["PANEL_LOCAL_MODEL"] = TEST_MODEL  # before any fixture, module-scoped ones too
DEAD = "http://127.0.0.1:9"
"""Nothing listens on the discard port: a source out of reach."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        help="re-render tests/golden/*/expected from the cassettes",
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the session (see panel/testing/postgres.py)."""
    from panel.testing.postgres import serve

    yield from serve()


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store location on each backend: a SQLite path, then a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "panel.db")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.database()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "panel.db")
    yield s
    s.close()


@pytest.fixture
def personas() -> list[Persona]:
    return load_personas(data_dir("personas"))


@pytest.fixture
def prompts() -> Prompts:
    return Prompts(data_dir("prompts"))


@pytest.fixture
def card() -> ToolCard:
    return parse_card(
        yaml.safe_load((REPO / "examples" / "smolvlm-3b.yaml").read_text()), "smolvlm-3b.yaml"
    )


@pytest.fixture
def make_reviewer(store: Store, prompts: Prompts) -> Callable[[Provider], Reviewer]:
    def make(provider: Provider, max_attempts: int = 3) -> Reviewer:
        return Reviewer(
            providers={provider.name: provider},
            default=provider.name,
            default_model=None,
            prompts=prompts,
            store=store,
            max_attempts=max_attempts,
        )

    return make


@pytest.fixture
def write_card(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    """Return a function that writes a card file and returns its path."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db=tmp_path / "panel.db", out=tmp_path / "out", local_model=TEST_MODEL)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium (Debian's, under playwright) for the page tests."""
    from tests.browser import launch_browser

    yield from launch_browser()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep a developer's PANEL_* variables, config file and data folder out of the tests; run
    the local provider on the tiny model."""
    for name in list(os.environ):
        if name.startswith("PANEL_") and name != "PANEL_LIVE":
            monkeypatch.delenv(name)
    monkeypatch.setenv("PANEL_LOCAL_MODEL", TEST_MODEL)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user-data"))  # panel serve's key file
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def model_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point huggingface_hub and pip at nothing outside the test (`panel models pull`): each
    test names its own loopback Hub (HF_ENDPOINT) and index (PIP_INDEX_URL)."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", DEAD)
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "PIP_CONSTRAINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no user or system pip config
    monkeypatch.setenv("PIP_INDEX_URL", DEAD + "/simple/")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "5")
    monkeypatch.setenv("PANEL_MODELS_DIR", str(tmp_path / "models"))
