"""Files panel writes and reads: every page, document and cassette goes through write_atomic,
every file a user names is read through read_capped (memory bounded by the cap, not the file),
every document is serialised by json_text (orjson: the queue writes thousands of them).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from panel.errors import CardError, scrub

TEMP_SUFFIX = ".tmp"
_TEMP_WRITER = re.compile(r"\.(\d+)\.[^.]+\.tmp$")
"""A temporary file of write_atomic: `.<name>.<pid of the writer>.<random>.tmp`."""


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_swept: set[Path] = set()
"""Folders whose dead writers' temporaries this process has removed already."""


def json_text(value: Any) -> str:
    """Return value as indented JSON (two spaces, UTF-8 text) with a final newline: what every
    document file holds. NaN and infinity become null, so the file is always valid JSON."""
    import orjson

    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write text to path through a temporary file and a rename: never a half-written file.

    The rename is atomic, so a crash of panel leaves the old file or the new one, and at worst
    its temporary file, which names the writer's process: writing the same path again removes
    the temporaries of writers that have died. There is no fsync: it guards only against power
    loss, and costs stalls of the whole batch on slow disks. A folder is made and swept for dead
    writers' temporaries once per process (a sweep lists the folder: the queue writes thousands
    of pages into one).
    """
    folder = path.parent
    if folder not in _swept:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_dead_temporaries(folder)
        _swept.add(folder)
    data = scrub(text).encode("utf-8")
    try:
        tmp, fd = _temporary(path)
    except FileNotFoundError:  # the folder went away since this process made it
        _swept.discard(folder)
        return write_atomic(path, text)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _temporary(path: Path) -> tuple[str, int]:
    """Return a new temporary file beside path, `.<name>.<pid>.<random>.tmp`, and its open file
    descriptor. Made with mode 0666, so the file gets what the umask gives, as any new file."""
    while True:
        tmp = f"{path.parent}/.{path.name}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}"
        try:
            return tmp, os.open(tmp, _CREATE, 0o666)
        except FileExistsError:
            continue


def read_capped(path: Path, limit: int, what: str = "file") -> bytes:
    """Return the bytes of path, reading at most limit + 1 of them: a longer file, a device
    such as /dev/zero or a pipe that never ends raises CardError (one line) instead of
    filling memory. CardError names the file."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise CardError(str(path), "no such file") from None
    except IsADirectoryError:
        raise CardError(str(path), "is a folder, not a file") from None
    except OSError as exc:
        raise CardError(str(path), f"cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise CardError(str(path), f"{what} is larger than {_size(limit)}")
    return data


def _size(limit: int) -> str:
    """Return a byte count as people say it: "64 KiB", "50 MiB"."""
    for unit, factor in (("MiB", 2**20), ("KiB", 2**10)):
        if limit >= factor and limit % factor == 0:
            return f"{limit // factor} {unit}"
    return f"{limit} bytes"


def _remove_dead_temporaries(folder: Path) -> None:
    """Remove the temporary files in folder left by writers that are no longer running."""
    with os.scandir(folder) as entries:  # a plain listing: a site's folder holds 300,000 files
        names = [e.name for e in entries if e.name[0] == "." and e.name.endswith(TEMP_SUFFIX)]
    for name in names:
        writer = _TEMP_WRITER.search(name)
        if writer and not _running(int(writer.group(1))):
            (folder / name).unlink(missing_ok=True)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True
