"""`panel serve` as a user meets it before it serves: its help, and bad flags and settings as one
line and exit 2 (a secret that is refused is never echoed)."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.cli.test_cli import panel


def test_serve_help_names_the_api_and_every_option() -> None:
    result = panel("serve", "--help")
    assert result.returncode == 0
    shown = " ".join(result.stdout.split())
    for text in ("POST /api/votes", "GET /api/tools/SLUG", "POST /api/cards", "GET /healthz"):
        assert text in shown
    for flag in (
        "--host HOST",
        "--port PORT",
        "--workers N",
        "--vote-rate N",
        "--trusted-proxy ADDRESS|CIDR",
        "--allowed-host NAME",
        "--submit-token TOKEN",
        "--signing-key KEY",
        "--rebuild-every SECONDS",
        "--db PATH|URL",
    ):
        assert flag in result.stdout, flag


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = panel("serve", "--port", str(port), "--db", tmp_path / "panel.db")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"panel: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_bad_settings_are_one_line_and_secrets_are_not_echoed(tmp_path: Path) -> None:
    db = str(tmp_path / "panel.db")
    short = panel("serve", "--db", db, env={"PANEL_SUBMIT_TOKEN": "hunter2-short"})
    assert short.returncode == 2
    assert "submit_token" in short.stderr and "at least 16 characters" in short.stderr
    assert "hunter2" not in short.stderr + short.stdout
    key = panel("serve", "--db", db, "--signing-key", "too-short-a-key")
    assert key.returncode == 2 and "too-short-a-key" not in key.stderr
    proxy = panel("serve", "--db", db, "--trusted-proxy", "my-proxy")
    assert proxy.returncode == 2
    assert "'my-proxy' is not an IP address or network" in proxy.stderr
    level = panel("serve", "--db", db, "--log-level", "loud")
    assert level.returncode == 2 and "--log-level must be one of" in level.stderr
    rate = panel("serve", "--db", db, "--vote-rate", "0")
    assert rate.returncode == 2 and "vote_rate" in rate.stderr
    for result in (short, key, proxy, level, rate):
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_listening_beyond_loopback_needs_allowed_host_names(tmp_path: Path) -> None:
    db = str(tmp_path / "panel.db")
    open_wide = panel("serve", "--host", "0.0.0.0", "--port", "0", "--db", db)
    assert open_wide.returncode == 2
    assert open_wide.stderr.strip().splitlines() == [
        "panel: error: --host 0.0.0.0 listens beyond this machine: name the host names the "
        "site is served under (--allowed-host verdicts.example.com, or PANEL_ALLOWED_HOSTS)"
    ]
    for bad in ("https://verdicts.example.com", "verdicts.example.com:8000", "a b/c", "*"):
        named = panel("serve", "--db", db, "--allowed-host", bad)
        assert named.returncode == 2 and "is not a host name" in named.stderr, bad
        assert len(named.stderr.strip().splitlines()) == 1


def test_secrets_are_stripped_of_surrounding_space_before_they_are_checked() -> None:
    from pydantic import SecretStr

    from panel.config import Settings, load_settings

    token = "a-submit-token-0123456789"
    settings = Settings(
        submit_token=SecretStr(f"  {token}\n"), signing_key=SecretStr(f" {'k' * 32} ")
    )
    assert settings.submit_token is not None and settings.submit_token.get_secret_value() == token
    assert settings.signing_key is not None and settings.signing_key.get_secret_value() == "k" * 32
    spaced = panel("serve", env={"PANEL_SUBMIT_TOKEN": "   short-token   "})
    assert spaced.returncode == 2 and "at least 16 characters" in spaced.stderr
    assert load_settings(submit_token=f"\t{token} ").submit_token == SecretStr(token)
