"""A Hugging Face Hub on loopback, for `panel models pull` (HF_ENDPOINT points at it).

It answers `/{repo}/resolve/{revision}/{file}` as huggingface_hub's file_download expects:
HEAD and GET with `X-Repo-Commit`, `ETag` and `Content-Length`, a `Range: bytes=N-` GET with
206 and `Content-Range` (a resumed download), and 404 with `X-Error-Code: EntryNotFound` for a
file it does not hold. `cut_first` drops the first GET after that many bytes.
"""

from __future__ import annotations

import hashlib
import re

from panel.testing.fakes.http import LoopbackServer, Reply, Seen

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<file>[^?]+)")
_RANGE = re.compile(r"^bytes=(\d+)-$")


class FakeHub(LoopbackServer):
    """Serves files[(repo, file)] at any revision; records every request in `seen`."""

    def __init__(self, files: dict[tuple[str, str], bytes], cut_first: int | None = None) -> None:
        super().__init__()
        self.files = files
        self.cut_first = cut_first
        self.seen: list[Seen] = []

    def respond(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
        match = _RESOLVE.match(seen.path)
        data = self.files.get((match["repo"], match["file"])) if match else None
        if data is None:
            return Reply(404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT})
        headers = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
            "Accept-Ranges": "bytes",
        }
        start = _RANGE.match(seen.headers.get("range", ""))
        if seen.method == "GET" and start:
            first = int(start[1])
            headers["Content-Range"] = f"bytes {first}-{len(data) - 1}/{len(data)}"
            return Reply(206, data[first:], headers)
        return Reply(200, data, headers, cut=self._cut(seen))

    def _cut(self, seen: Seen) -> int | None:
        with self._lock:
            cut, self.cut_first = (
                (self.cut_first, None) if seen.method == "GET" else (None, self.cut_first)
            )
        return cut

    def gets(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "GET"]
