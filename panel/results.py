"""The review document of one tool (card + panel result + reviews) and how files are written.

`tool_document` is the stable JSON schema printed by `panel review --json` and embedded in
comparison documents. Schema "panel.review/1":

    {"schema": "panel.review/1",
     "tool":    {card fields..., "slug"},
     "panel":   {"ships", "skips", "reviews", "ship_pct", "verdict", "label",
                 "score_mean", "score_min", "score_max",
                 "flags": [{"kind": "injection" | "unanimous-extreme", "message",
                            "found": [{"kind", "field", "excerpt"}]}]},
     "reviews": [{"persona", "display_name", "score", "verdict", "review", "fields",
                  "provider", "model", "prompt_version", "attempts", "created_at"}],
     "errors":  [{"persona", "error"}]}
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from panel.aggregate import panel_result
from panel.cards import ToolCard
from panel.errors import ProviderError
from panel.personas import Persona
from panel.store import StoredReview

SCHEMA = "panel.review/1"

TEMP_SUFFIX = ".tmp"
_TEMP_WRITER = re.compile(r"\.(\d+)\.[^.]+\.tmp$")
"""A temporary file of write_atomic: `.<name>.<pid of the writer>.<random>.tmp`."""


def review_json(review: StoredReview, persona: Persona | None) -> dict[str, Any]:
    return {
        "persona": review.persona,
        "display_name": persona.display_name if persona else review.persona.title(),
        "score": review.score,
        "verdict": review.verdict,
        "review": review.review,
        "fields": review.fields,
        "provider": review.provider,
        "model": review.model,
        "prompt_version": review.prompt_version,
        "attempts": review.attempts,
        "created_at": dt.datetime.fromtimestamp(review.created_at, dt.UTC).isoformat(
            timespec="seconds"
        ),
    }


def tool_document(
    card: ToolCard,
    reviews: list[StoredReview],
    personas: list[Persona],
    errors: dict[str, ProviderError] | None = None,
) -> dict[str, Any]:
    """Return the review document of card, reviews in panel order."""
    by_key = {p.key: p for p in personas}
    order = {p.key: i for i, p in enumerate(personas)}
    ordered = sorted(reviews, key=lambda r: (order.get(r.persona, len(order)), r.persona))
    return {
        "schema": SCHEMA,
        "tool": card.model_dump(mode="json"),
        "panel": panel_result(ordered, card.findings).to_json(),
        "reviews": [review_json(r, by_key.get(r.persona)) for r in ordered],
        "errors": [{"persona": key, "error": str(e)} for key, e in (errors or {}).items()],
    }


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
