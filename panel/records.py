"""`panel import`: tools and reviews made elsewhere, one JSON object per line, all or nothing.

Records are validated exactly as cards and model answers are, and every value is held to sane
bounds (a date between 2000 and tomorrow, at most MAX_IMPORT_RECORDS lines, bounded strings),
so nothing imported can break a page later; a bad line is reported as file:line and field, and
nothing from the file is stored.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from panel.cards import SLUG_PATTERN, ToolCard, parse_card
from panel.errors import CardError, validation_problem
from panel.files import read_capped
from panel.parsing import ParseError, load_json
from panel.personas import Persona
from panel.store import Store, StoredReview

MAX_IMPORT_BYTES = 50 * 1024 * 1024
MAX_IMPORT_RECORDS = 100_000
EARLIEST = 946_684_800.0
"""2000-01-01 UTC: no review of an AI tool is older; created_at must be later than this."""
FUTURE_SLACK = 86_400.0
"""created_at may be at most a day ahead of this machine's clock."""

IMPORT_PROVIDER = "import"
"""The provider name imported reviews carry; their prompt version is the same word."""


class ReviewRecord(BaseModel):
    """The envelope of an imported review; the answer itself is checked by the persona's model."""

    model_config = ConfigDict(extra="allow")

    type: Literal["review"]
    tool: Annotated[str, Field(pattern=SLUG_PATTERN)]
    persona: Annotated[str, Field(min_length=1, max_length=80)]
    model: Annotated[str, Field(min_length=1, max_length=200)] = "unknown"
    created_at: Annotated[float, Field(ge=EARLIEST)] | None = None
    fields: dict[str, Any] | None = None


def read_records(
    path: Path, personas: list[Persona], store: Store
) -> tuple[list[ToolCard], list[StoredReview]]:
    """Parse and validate every line of path; raise CardError naming the first bad line."""
    by_key = {p.key: p for p in personas}
    try:
        text = read_capped(path, MAX_IMPORT_BYTES).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CardError(str(path), f"is not UTF-8 text (bad byte at offset {exc.start})") from None
    cards: dict[str, ToolCard] = {}
    reviews: dict[tuple[str, str], tuple[int, StoredReview]] = {}
    now = time.time()
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{path}:{number}"
        if not line.strip():
            continue
        if number > MAX_IMPORT_RECORDS:
            raise CardError(where, f"more than {MAX_IMPORT_RECORDS} lines in one file")
        try:
            data: Any = load_json(line)
        except ParseError as exc:
            raise CardError(where, f"not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise CardError(where, "each line must be a JSON object")
        kind = data.get("type")
        if kind == "tool":
            card = parse_card({k: v for k, v in data.items() if k != "type"}, where)
            if card.slug in cards:
                raise CardError(where, f"duplicate tool '{card.slug}' in this file", "slug")
            cards[card.slug] = card
        elif kind == "review":
            review = _review(data, where, by_key, cards, store, now)
            key = (review.tool, review.persona)
            if key in reviews:
                raise CardError(
                    where,
                    f"second review of '{key[0]}' by {key[1]} (first on line {reviews[key][0]})",
                )
            reviews[key] = (number, review)
        else:
            raise CardError(where, 'must be "tool" or "review"', "type")
    if not cards and not reviews:
        raise CardError(str(path), "no records in file")
    needed = {review.tool for _, review in reviews.values()} - set(cards)
    for slug in needed:
        stored = store.get_tool(slug)
        if stored is None:  # checked per line already; kept for safety against races
            raise CardError(str(path), f"unknown tool '{slug}'")
        cards[slug] = stored
    return list(cards.values()), [review for _, review in reviews.values()]


def _review(
    data: dict[str, Any],
    where: str,
    personas: dict[str, Persona],
    cards: dict[str, ToolCard],
    store: Store,
    now: float,
) -> StoredReview:
    try:
        envelope = ReviewRecord.model_validate(data)
    except ValidationError as exc:
        field, problem = validation_problem(exc)
        raise CardError(where, problem, field) from None
    if envelope.created_at is not None and envelope.created_at > now + FUTURE_SLACK:
        raise CardError(where, "is in the future", "created_at")
    persona = personas.get(envelope.persona)
    if persona is None:
        raise CardError(
            where, f"unknown persona '{envelope.persona}' (panel: {', '.join(personas)})", "persona"
        )
    if envelope.tool not in cards and store.get_tool(envelope.tool) is None:
        raise CardError(
            where, f"unknown tool '{envelope.tool}': add a tool record before its reviews", "tool"
        )
    answer_data = {k: v for k, v in data.items() if k not in ReviewRecord.model_fields}
    answer_data.update(envelope.fields or {})
    try:
        answer = persona.import_model.model_validate(answer_data)
    except ValidationError as exc:
        field, problem = validation_problem(exc)
        raise CardError(where, problem, field) from None
    problems = answer.check_rules()
    if problems:
        raise CardError(where, problems[0])
    fields = {
        k: v
        for k, v in answer.model_dump(exclude={"score", "verdict", "review"}).items()
        if v is not None
    }
    return StoredReview(
        tool=envelope.tool,
        card_hash="",  # set from the card when stored
        persona=persona.key,
        prompt_version=IMPORT_PROVIDER,
        provider=IMPORT_PROVIDER,
        model=envelope.model,
        score=answer.score,
        verdict=answer.verdict,
        review=answer.review,
        fields=fields,
        attempts=0,
        created_at=envelope.created_at or now,
    )


def import_file(path: Path, personas: list[Persona], store: Store) -> tuple[int, int]:
    """Import path into store atomically; return (tools, reviews) imported."""
    cards, reviews = read_records(path, personas, store)
    store.import_records(cards, reviews)
    return len(cards), len(reviews)
