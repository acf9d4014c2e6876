"""The key that signs voter cookies: the `signing_key` setting, or one generated once and kept in
the user's data folder with mode 0600.

Several processes may start at once and all find no key: each writes a key of its own to a
temporary file and links it into place, which only the first does; every one then reads the
winner's key, so the workers of one machine always agree.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from pathlib import Path

from panel.config import Settings
from panel.errors import ConfigError
from panel.files import read_capped

KEY_FILE = "serve-signing-key"
MIN_KEY_CHARS = 32


def key_path() -> Path:
    """Return where a generated key is kept: the user's data folder (platformdirs)."""
    import platformdirs

    return platformdirs.user_data_path("panel") / KEY_FILE


def signing_key(settings: Settings) -> tuple[bytes, Path | None]:
    """Return the key that signs voter cookies and the file it came from (None: the setting)."""
    if settings.signing_key is not None:
        return settings.signing_key.get_secret_value().encode(), None
    path = key_path()
    return key_from_file(path), path


def key_from_file(path: Path) -> bytes:
    """Return the key kept at path, made first if there is none; refuse a file others can read."""
    if not path.exists():
        _make_key(path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the signing key file is open to others (mode {stat.S_IMODE(mode):o}): chmod 600 it",
            path=str(path),
        )
    key = read_capped(path, 4096, "signing key file").strip()
    if len(key) < MIN_KEY_CHARS:
        raise ConfigError(
            f"the signing key file holds fewer than {MIN_KEY_CHARS} characters", path=str(path)
        )
    return key


def _make_key(path: Path) -> None:
    """Write a new random key to path with mode 0600, unless another process did first."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        # Linking is atomic and fails if a key is there already: the first process wins.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
