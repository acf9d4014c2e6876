"""Files panel writes and reads: every page, document and cassette goes through write_atomic,
every file a user names is read through read_capped (memory bounded by the cap, not the file),
every document is serialised by json_text (orjson: the queue writes thousands of them).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from panel.errors import CardError, scrub

TEMP_SUFFIX = ".tmp"
_TEMP_WRITER = re.compile(r"\.(\d+)\.[^.]+\.tmp$")
"""A temporary file of write_atomic: `.<name>.<pid of the writer>.<random>.tmp`."""


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
    loss, and costs stalls of the whole batch on slow disks. A folder is swept for dead
    writers' temporaries once per process (a sweep lists the folder: the queue writes thousands).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent not in _swept:
        _remove_dead_temporaries(path.parent)
        _swept.add(path.parent)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX
    )
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a new file gets what umask gives
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(scrub(text))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """Return the process's umask: from /proc/self/status where there is one (writers run in
    threads, and reading it with os.umask means setting it for a moment), else by os.umask."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
    for tmp in folder.glob(f".*{TEMP_SUFFIX}"):
        writer = _TEMP_WRITER.search(tmp.name)
        if writer and not _running(int(writer.group(1))):
            tmp.unlink(missing_ok=True)


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
