"""The JSON API of `panel serve` (names fixed: scripts use them).

    POST /api/votes        {"tool": SLUG, "verdict": "ship"|"skip"}  ->  200 {"tool",
                           "your_vote", "community"}; one vote per voter per tool, the latest
                           counts. 403 from another origin or without a voter cookie, 429 while
                           the voter cookie is too new or past the address's vote rate or its
                           network's day cap on the tool, 404 for an unknown tool, 422 for a bad
                           body.
    GET  /api/tools/{slug} ->  {"tool", "panel", "community": {"votes", "ship", "skip",
                           "ship_pct", "label", "networks"}, "your_vote", "votes_in": seconds
                           before this browser's votes count}; 404 for an unknown slug.
    POST /api/cards        a tool card as JSON (a card file's schema and limits), with
                           Authorization: Bearer TOKEN and ?compare=SLUG (repeatable) ->
                           202 {"tool", "queued", "pages"}; 422 with the CLI's one-line reason
                           for a bad card; 429 past the token's or the address's hourly cards or
                           with the review queue full; 404 when no submit token is configured.
    GET  /healthz          ->  {"ok": true} once the store took a write, or 503 {"ok": false,
                           "error": why} within about 2 s.

Every error is {"error": one line} with the security headers and Cache-Control: no-store; a
store that fails is 503 with Retry-After, and for a write it also says whether the write was
stored ("stored": "no", "yes" or "unknown"). Nothing a visitor types is stored: a vote is a slug
the store knows, a verdict of two words, the server's own voter id and the client's network.
"""

from __future__ import annotations

import hmac
import logging
import math
import re
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from panel.cards import MAX_CARD_BYTES, SLUG_PATTERN, card_from_bytes
from panel.config import Settings
from panel.errors import InputError, StoreUnavailable, validation_problem
from panel.parsing import ParseError, load_json
from panel.serve.desk import RETRY_SECONDS, Desk, Refused
from panel.serve.guard import (
    client_address,
    client_networks,
    foreign_origin,
    json_body_expected,
    read_body,
)

VOTE_BODY_BYTES = 1024
MAX_COMPARE = 20
"""Comparisons one submitted card may name."""
NO_STORE = {"cache-control": "no-store"}
SLUG = re.compile(SLUG_PATTERN)
log = logging.getLogger("uvicorn.error")


class VoteIn(BaseModel):
    """The body of POST /api/votes."""

    model_config = ConfigDict(extra="forbid", strict=True)

    tool: Annotated[str, Field(pattern=SLUG_PATTERN)]
    verdict: Literal["ship", "skip"]


def _desk(request: Request) -> Desk:
    desk: Desk = request.app.state.desk
    return desk


def answer(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """Return a JSON answer that no cache keeps (it may depend on the voter's cookie)."""
    return JSONResponse(body, status, headers={**NO_STORE, **(headers or {})})


async def post_vote(request: Request) -> Response:
    refused = foreign_origin(request)
    if refused is not None:
        raise HTTPException(403, f"vote refused: {refused}")
    voter = request.state.voter
    if voter is None:
        raise HTTPException(
            403, "vote refused: no valid voter cookie (open a page of the site first)"
        )
    json_body_expected(request)
    vote = _vote_from(await read_body(request, VOTE_BODY_BYTES))
    young = _votes_in(request)
    if young > 0:
        raise Refused("this browser's voter cookie is new: its votes count a moment later", young)
    voted = await _desk(request).vote(vote.tool, voter, vote.verdict, client_networks(request))
    if voted.unknown:
        raise HTTPException(404, f"no tool {vote.tool!r} on this site")
    return answer({"tool": vote.tool, "your_vote": voted.your_vote, "community": voted.community})


def _vote_from(body: bytes) -> VoteIn:
    """Return the vote a body holds, or raise 422 with one line saying what is wrong."""
    try:
        return VoteIn.model_validate(load_json(body.decode("utf-8")))
    except UnicodeDecodeError:
        raise HTTPException(422, "the body is not UTF-8 text") from None
    except ParseError as exc:
        raise HTTPException(422, str(exc)) from None
    except ValidationError as exc:
        field, problem = validation_problem(exc)
        raise HTTPException(422, f"{field or 'body'}: {problem}") from None


def _votes_in(request: Request) -> float:
    """Return the seconds before the votes of this request's voter cookie count (0: they do):
    a cookie counts voter_min_age seconds after the answer that set it."""
    made: float = request.state.voter_since
    settings: Settings = request.app.state.settings
    return max(0.0, made + settings.voter_min_age - time.time())


async def get_tool(request: Request) -> Response:
    slug = request.path_params["slug"]
    found = None if not SLUG.match(slug) else await _desk(request).tool(slug, request.state.voter)
    if found is None:
        raise HTTPException(404, f"no tool {slug[:100]!r} on this site")
    return answer({**found, "votes_in": math.ceil(_votes_in(request) * 10) / 10})


async def post_card(request: Request) -> Response:
    token = request.app.state.settings.submit_token
    if token is None:
        raise HTTPException(404, "card submission is off (no submit token is configured)")
    if "origin" in request.headers and foreign_origin(request) is not None:
        raise HTTPException(403, "card refused: sent from another site's page")  # scripts send none
    given = request.headers.get("authorization", "")
    scheme, _, credentials = given.partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        credentials.strip().encode(), expected
    ):
        raise HTTPException(
            401, "a valid Authorization: Bearer token is needed", {"www-authenticate": "Bearer"}
        )
    json_body_expected(request)
    body = await read_body(request, MAX_CARD_BYTES)
    compare_with = request.query_params.getlist("compare")
    if len(compare_with) > MAX_COMPARE:
        raise HTTPException(422, f"compare: at most {MAX_COMPARE} tools per card")
    if not all(SLUG.match(slug) for slug in compare_with):
        raise HTTPException(422, "compare: each must be the slug of a stored tool")
    try:
        card = card_from_bytes(body, "card", as_json=True)
        queued = await _desk(request).submit(card, compare_with, client_address(request))
    except InputError as exc:
        raise HTTPException(422, str(exc)) from None
    return answer(queued, 202)


async def healthz(request: Request) -> Response:
    problem = await _desk(request).health()
    if problem is not None:
        return answer({"ok": False, "error": problem}, 503, {"retry-after": str(RETRY_SECONDS)})
    return answer({"ok": True})


async def http_error(request: Request, exc: Exception) -> Response:
    """Return an HTTPException as every error is answered, the site's files' too (a missing
    page): {"error": ...}, not stored by any cache."""
    assert isinstance(exc, HTTPException)
    return answer({"error": exc.detail}, exc.status_code, dict(exc.headers or {}))


async def refused(request: Request, exc: Exception) -> Response:
    """Return a request past one of its limits (desk.Refused) as 429 with Retry-After."""
    assert isinstance(exc, Refused)
    seconds = max(1, round(exc.wait + 0.5))
    return answer({"error": f"{exc.message}: wait {seconds} s"}, 429, {"retry-after": str(seconds)})


STORED = {False: "no", True: "yes", None: "unknown"}


async def store_error(request: Request, exc: Exception) -> Response:
    """Return a store fault as 503 with Retry-After; for a write, whether it was stored (a vote
    whose outcome is unknown may be sent again: a vote replaces the voter's earlier one)."""
    assert isinstance(exc, StoreUnavailable)
    log.warning("panel: %s %s: the store failed: %s", request.method, request.url.path, exc)
    body: dict[str, Any] = {"error": f"the store is unavailable ({exc.message}): try again shortly"}
    if request.method == "POST":
        body["stored"] = STORED[exc.written]
        if exc.written is None:
            body["error"] = (
                f"the store did not confirm the write ({exc.message}): it may have been "
                "stored; sending it again is safe (a vote replaces the voter's earlier one, a "
                "card the stored card of its slug)"
            )
    return answer(body, 503, {"retry-after": str(RETRY_SECONDS)})


ROUTES = [
    Route("/api/votes", post_vote, methods=["POST"]),
    Route("/api/tools/{slug}", get_tool, methods=["GET"]),
    Route("/api/cards", post_card, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
]
