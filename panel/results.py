"""The review document of one tool: card + panel result + reviews, and who wrote them when.

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
from typing import Any

from panel.aggregate import panel_result
from panel.cards import ToolCard
from panel.errors import ProviderError
from panel.personas import Persona
from panel.store import StoredReview

SCHEMA = "panel.review/1"


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


def provenance(reviews: list[dict[str, Any]]) -> dict[str, Any]:
    """Return who wrote reviews (review_json entries) and when: models, prompt versions, and the
    first and last review time."""
    times = sorted(review["created_at"] for review in reviews)
    return {
        "models": sorted({f"{review['provider']}/{review['model']}" for review in reviews}),
        "prompt_versions": sorted({review["prompt_version"] for review in reviews}),
        "reviewed_from": times[0] if times else None,
        "reviewed_to": times[-1] if times else None,
    }
