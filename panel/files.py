"""Files panel writes: every page, document and cassette goes through write_atomic."""

from __future__ import annotations

import glob
import os
import re
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"
_TEMP_WRITER = re.compile(r"\.(\d+)\.[^.]+\.tmp$")
"""A temporary file of write_atomic: `.<name>.<pid of the writer>.<random>.tmp`."""


def write_atomic(path: Path, text: str) -> None:
    """Write text to path through a temporary file and a rename: never a half-written file.

    The rename is atomic, so a crash of panel leaves the old file or the new one, and at worst
    its temporary file, which names the writer's process: writing the same path again removes
    the temporaries of writers that have died. There is no fsync: it guards only against power
    loss, and costs stalls of the whole batch on slow disks.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temporaries(path)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_dead_temporaries(path: Path) -> None:
    """Remove the temporary files of path left by writers that are no longer running."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*{TEMP_SUFFIX}"):
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
