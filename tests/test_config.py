"""The config file a command writes (`panel models use`): one setting set, every other line kept."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from panel.config import load_settings, write_setting
from panel.errors import ConfigError


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    monkeypatch.setenv("PANEL_CONFIG", str(path))
    monkeypatch.delenv("PANEL_LOCAL_MODEL")
    return path


def test_a_setting_goes_into_a_new_file(config: Path) -> None:
    assert write_setting("local_model", "qwen2.5-coder-1.5b") == config
    assert load_settings().local_model == "qwen2.5-coder-1.5b"


def test_a_setting_replaces_its_line_and_keeps_the_others(config: Path) -> None:
    config.write_text('# mine\nprovider = "local"\nlocal_model = "tiny"  # fast\n')
    write_setting("local_model", 'a "quoted" \\ name')
    assert config.read_text().startswith('# mine\nprovider = "local"\n')
    assert tomllib.loads(config.read_text())["local_model"] == 'a "quoted" \\ name'


def test_a_setting_goes_under_the_panel_table_when_there_is_one(config: Path) -> None:
    config.write_text("[panel]\nsamples = 2\n")
    write_setting("local_model", "tiny")
    assert tomllib.loads(config.read_text()) == {"panel": {"local_model": "tiny", "samples": 2}}


def test_a_file_it_cannot_keep_valid_is_left_alone(config: Path) -> None:
    config.write_text("[panel\n")
    with pytest.raises(ConfigError, match="cannot set local_model in the config file"):
        write_setting("local_model", "tiny")
    assert config.read_text() == "[panel\n"
