"""The key that signs voter cookies: from the settings, or made once with mode 0600 and then
reused, by one process or by several starting at once."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from panel.config import Settings
from panel.errors import ConfigError
from panel.serve.keys import key_from_file, key_path, signing_key


def test_a_key_is_made_once_with_mode_0600_and_reused() -> None:
    key, path = signing_key(Settings())
    assert path == key_path() and path is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 64
    assert signing_key(Settings()) == (key, path)
    assert list(path.parent.glob(".*.tmp")) == []  # no temporary file left


def test_the_setting_wins_and_no_file_is_made() -> None:
    given = "a-signing-key-from-the-settings-0123456789"
    key, path = signing_key(Settings(signing_key=SecretStr(given)))
    assert (key, path) == (given.encode(), None)
    assert not key_path().exists()


def _read_key(path: str, keys: multiprocessing.Queue[bytes]) -> None:
    keys.put(key_from_file(Path(path)))


def test_processes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "serve-signing-key"
    context = multiprocessing.get_context("fork")
    keys: multiprocessing.Queue[bytes] = context.Queue()
    processes = [context.Process(target=_read_key, args=(str(path), keys)) for _ in range(8)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
    found = {keys.get(timeout=5) for _ in processes}
    assert found == {path.read_bytes().strip()}


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "serve-signing-key"
    path.write_text("k" * 64)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        key_from_file(path)
    path.chmod(0o600)
    path.write_text("short")
    with pytest.raises(ConfigError, match="fewer than 32"):
        key_from_file(path)
