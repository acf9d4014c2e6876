"""The site's files as `panel serve` hands them out: Starlette's StaticFiles (which keeps every
path inside the output folder, symlinks resolved), narrowed to what panel publishes.

A dotfile or dot-folder (a temporary file of a write under way, the keeper's lock) is never
served, and neither is a file of a kind panel does not write into a site (a store file someone
put in the output folder, a key): those are 404, as a missing file is.
"""

from __future__ import annotations

import os
import stat
from pathlib import PurePath

from starlette.staticfiles import StaticFiles

SERVED_SUFFIXES = frozenset(
    {".html", ".md", ".json", ".atom", ".xml", ".js", ".css", ".svg", ".png"}
)
"""What a site holds: pages, documents, the feeds, the sitemaps, the scripts, and the eval
report's figures."""


class SiteFiles(StaticFiles):
    """StaticFiles that serves only published files (see the module docstring)."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if any(part.startswith(".") for part in PurePath(path).parts):
            return "", None
        full_path, found = super().lookup_path(path)
        if (
            found is not None
            and stat.S_ISREG(found.st_mode)
            and PurePath(full_path).suffix.lower() not in SERVED_SUFFIXES
        ):
            return "", None
        return full_path, found
