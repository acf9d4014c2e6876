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
                  "provider", "model", "prompt_version", "attempts", "created_at",
                  "score_mean", "score_sd", "score_label", "split",
                  "samples": [{"sample", "score", "verdict"}],
                  "mitigations": ["rotate-fields" | "blind-names" | "strip-injection"]}],
     "judge":   {"judges": [{"provider", "model", "demo"}], "samples", "mitigations",
                 "demo", "notice", "line"},
     "errors":  [{"persona", "error"}]}

With --samples N a review entry stands for a persona's N samples: "score" is their mean as a
whole number (never across the ship line), "verdict" the rule on the mean, "score_sd" their
standard deviation (null for one sample), "score_label" "72 ± 6", "split" "2/1" (ship/skip
samples) when they disagree, and the text and fields are the first sample's. The panel adds
"samples" and "ship_pct_interval" ([low, high], 90%; null with one sample each).
"mitigations" names what was kept from the judge's view of the card (panel.mitigations; the
"tool" entry is always the real card). "expected_score" is the score read from the judge's
probabilities (panel.providers.decisions: the mean over the values it weighed, not only the one
it wrote), null where the provider reported none; the panel's "expected_mean" is their mean,
null unless every review has one. "judge" names who judged (`judge`); "demo" is true and
"notice" says so when a judge is the tiny embedded demo model.
"""

from __future__ import annotations

import datetime as dt
import statistics
from pathlib import Path
from typing import Any

from panel.aggregate import Judged, panel_result
from panel.cards import ToolCard
from panel.errors import ProviderError
from panel.mitigations import DESCRIPTIONS, NAMES
from panel.personas import Persona
from panel.providers.decisions import expected_score
from panel.rules import DEMO_NOTICE, is_demo_judge
from panel.store import StoredReview

SCHEMA = "panel.review/1"


def review_path(out: Path, slug: str) -> Path:
    """Return where a tool's review document is written under the output folder."""
    return out / "reviews" / f"{slug}.json"


def review_json(samples: list[StoredReview], persona: Persona | None) -> dict[str, Any]:
    """Return the review entry of one persona's samples (one question and model, by index)."""
    first = min(samples, key=lambda r: r.sample)
    judged = judgment(samples)
    split = judged.split
    return {
        "persona": first.persona,
        "display_name": persona.display_name if persona else first.persona.title(),
        "score": judged.score,
        "verdict": judged.verdict,
        "review": first.review,
        "fields": first.fields,
        "provider": first.provider,
        "model": first.model,
        "prompt_version": first.prompt_version,
        "attempts": max(r.attempts for r in samples),
        "created_at": dt.datetime.fromtimestamp(
            max(r.created_at for r in samples), dt.UTC
        ).isoformat(timespec="seconds"),
        "score_mean": round(judged.mean, 1),
        "score_sd": None if judged.sd is None else round(judged.sd, 1),
        "score_label": judged.label(),
        "split": None if split is None else f"{split[0]}/{split[1]}",
        "samples": [
            {"sample": r.sample, "score": r.score, "verdict": r.verdict}
            for r in sorted(samples, key=lambda r: r.sample)
        ],
        "mitigations": list(first.mitigations),
        "expected_score": _expected(samples),
    }


def _expected(samples: list[StoredReview]) -> float | None:
    """Return the mean of the samples' expected scores (None unless every one was read)."""
    found = [expected_score(r.probabilities) for r in samples]
    if not found or any(value is None for value in found):
        return None
    return round(statistics.fmean(value for value in found if value is not None), 1)


def judgment(samples: list[StoredReview]) -> Judged:
    """Return what the panel counts of one persona's samples."""
    ordered = sorted(samples, key=lambda r: r.sample)
    return Judged(ordered[0].persona, tuple(r.score for r in ordered))


def tool_document(
    card: ToolCard,
    reviews: list[StoredReview],
    personas: list[Persona],
    errors: dict[str, ProviderError] | None = None,
) -> dict[str, Any]:
    """Return the review document of card: reviews (samples) grouped by persona, in panel order."""
    by_key = {p.key: p for p in personas}
    order = {p.key: i for i, p in enumerate(personas)}
    grouped: dict[str, list[StoredReview]] = {}
    for review in reviews:
        grouped.setdefault(review.persona, []).append(review)
    keys = sorted(grouped, key=lambda key: (order.get(key, len(order)), key))
    entries = [review_json(grouped[k], by_key.get(k)) for k in keys]
    expected = [e["expected_score"] for e in entries]
    panel = panel_result([judgment(grouped[k]) for k in keys], card.findings).to_json()
    panel["expected_mean"] = (
        round(statistics.fmean(expected), 1) if expected and None not in expected else None
    )
    return {
        "schema": SCHEMA,
        "tool": card.model_dump(mode="json", exclude={"outcome"} | _unless(card.source, "source")),
        "panel": panel,
        "reviews": entries,
        "judge": judge(entries),
        "errors": [{"persona": key, "error": str(e)} for key, e in (errors or {}).items()],
    }


def provenance(reviews: list[dict[str, Any]]) -> dict[str, Any]:
    """Return who wrote reviews (review_json entries) and when: models, prompt versions, the
    mitigations any of them was judged with, and the first and last review time."""
    times = sorted(review["created_at"] for review in reviews)
    mitigations = {name for review in reviews for name in review.get("mitigations") or []}
    return {
        "models": sorted({f"{review['provider']}/{review['model']}" for review in reviews}),
        "prompt_versions": sorted({review["prompt_version"] for review in reviews}),
        "mitigations": [name for name in NAMES if name in mitigations],
        "reviewed_from": times[0] if times else None,
        "reviewed_to": times[-1] if times else None,
    }


def judge(reviews: list[dict[str, Any]], pair_models: list[str] | None = None) -> dict[str, Any]:
    """Return who judged: each model (from review_json entries and, for a judged pair, its
    "provider/model" names), the most samples a persona's verdict rests on, the mitigations,
    and whether a judge is the tiny demo model (rules.is_demo_judge) with the notice to show.

        {"judges": [{"provider", "model", "demo"}], "samples": int, "mitigations": [str],
         "demo": bool, "notice": str|null, "line": str}
    """
    named = {(r["provider"], r["model"]) for r in reviews}
    named |= {_provider_model(name) for name in pair_models or []}
    judges = [
        {"provider": provider, "model": model, "demo": is_demo_judge(provider, model)}
        for provider, model in sorted(named)
    ]
    samples = max((len(r.get("samples") or [None]) for r in reviews), default=1)
    mitigations = provenance(reviews)["mitigations"]
    demo = any(j["demo"] for j in judges)
    return {
        "judges": judges,
        "samples": samples,
        "mitigations": mitigations,
        "demo": demo,
        "notice": DEMO_NOTICE if demo else None,
        "line": judge_line(judges, samples, mitigations),
    }


def judge_line(judges: list[dict[str, Any]], samples: int, mitigations: list[str]) -> str:
    """Return the judge in one sentence: "Judged by openai / gpt-4o, 3 samples per persona;
    names, maker and brands hidden from the judges." """
    who = ", ".join(f"{j['provider']} / {j['model']}" for j in judges) or "no model yet"
    line = f"Judged by {who}, {samples} sample{'s' if samples != 1 else ''} per persona"
    kept = [DESCRIPTIONS.get(name, name) for name in mitigations]
    return line + (f"; {'; '.join(kept)}." if kept else "; no mitigation.")


def _provider_model(name: str) -> tuple[str, str]:
    """Return "provider/model" as (provider, model); a model name may hold slashes."""
    provider, _, model = name.partition("/")
    return provider, model


def _unless(value: object, name: str) -> set[str]:
    """Return {name} if value is None: a field a document leaves out rather than shows empty."""
    return {name} if value is None else set()
