"""A private PostgreSQL server for the tests: initdb in a temporary folder, pg_ctl on a unix socket.

It listens on no TCP port, only on a socket in its own folder; as root (CI) initdb and pg_ctl run
as the `postgres` user, which initdb demands. Each test gets a fresh database (`database()`).
One role, `panel_pw`, logs in with a password, for the tests of a wrong password.
PostgreSQL missing fails the tests that need it, loudly: `make test` installs it.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PASSWORD_ROLE, PASSWORD = "panel_pw", "s3cret-Pa55word-xyz"


def pg_bin() -> Path:
    """Return the folder of initdb and pg_ctl (PANEL_PG_BIN, Debian's layout, or PATH)."""
    candidates = [os.environ.get("PANEL_PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    candidates += [str(Path(found).parent) for found in [shutil.which("initdb")] if found]
    for folder in candidates:
        if folder and (Path(folder) / "initdb").exists():
            return Path(folder)
    raise RuntimeError(
        "PostgreSQL is not installed: `make postgres` (as root: apt-get install -y postgresql)"
    )


class PostgresServer:
    """One server for the session: start(), database() per test, stop()."""

    def __init__(self, *, fsync: bool = False) -> None:
        """fsync False (the tests): commits are not flushed to disk, which a throwaway server
        does not need; True (benchmarks): PostgreSQL's own defaults, every commit durable."""
        self.fsync = fsync
        self.bin = pg_bin()
        self.root = Path(tempfile.mkdtemp(prefix="panel-pg-"))
        self.data = self.root / "data"
        self.as_root = os.geteuid() == 0
        self._numbers = itertools.count(1)

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        subprocess.run([*prefix, *argv], check=True, capture_output=True, cwd=self.root)

    def start(self) -> PostgresServer:
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        (self.data / "pg_hba.conf").write_text(
            f"local all {PASSWORD_ROLE} scram-sha-256\nlocal all all trust\n"
        )
        self._pg_ctl("start")
        self.admin(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")
        return self

    def _pg_ctl(self, action: str, *more: str) -> None:
        durability = "" if self.fsync else " -c fsync=off"
        options = f"-k {self.root} -c listen_addresses=''{durability} -c max_connections=200"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            *more,
            action,
        )

    def restart(self, mode: str = "fast") -> None:
        """Restart the server as an operator would (`pg_ctl restart`): every connection is cut
        (mode fast: sessions are ended; immediate: as a crash), and it is back when this returns."""
        self._pg_ctl("restart", "-m", mode)

    def crash(self) -> None:
        """Stop the server as a crash would (`pg_ctl stop -m immediate`: every connection cut,
        commits in flight may or may not land), keeping its data: down until resume()."""
        self._pg_ctl("stop", "-m", "immediate")

    def resume(self) -> None:
        """Start a server crash() stopped; it takes connections when this returns."""
        self._pg_ctl("start")

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", user: str = "postgres", password: str = "") -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@/{database}?host={self.root}"

    def admin(self, sql: str, database: str = "postgres") -> list[Any]:
        """Run one statement as the superuser and return its rows."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cursor = conn.execute(sql.encode())
            return cursor.fetchall() if cursor.description else []

    def database(self) -> str:
        """Create an empty database (owned by the password role too) and return its URL."""
        name = f"t{os.getpid()}_{next(self._numbers)}"
        self.admin(f"CREATE DATABASE {name} OWNER {PASSWORD_ROLE}")
        return self.url(name)


def serve() -> Iterator[PostgresServer]:
    """Yield a started server; stop it and remove its folder afterwards."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()
