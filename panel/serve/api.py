"""The JSON API of `panel serve` (names fixed: scripts use them).

    POST /api/votes        {"tool": SLUG, "verdict": "ship"|"skip"}  ->  200 {"tool",
                           "your_vote", "community"}; one vote per voter per tool, the latest
                           counts. 403 from another origin or without a voter cookie, 429 past
                           the address's vote rate, 404 for an unknown tool, 422 for a bad body.
    GET  /api/tools/{slug} ->  {"tool", "panel", "community": {"votes", "ship", "skip",
                           "ship_pct", "label"}, "your_vote"}; 404 for an unknown slug.
    POST /api/cards        a tool card as JSON (a card file's schema and limits), with
                           Authorization: Bearer TOKEN and ?compare=SLUG (repeatable) ->
                           202 {"tool", "queued", "pages"}; 422 with the CLI's one-line reason
                           for a bad card; 404 when no submit token is configured.
    GET  /healthz          ->  {"ok": true} (503 when the store does not answer).

Every error is {"error": one line}. Nothing a visitor types is stored: a vote is a slug the
store knows, a verdict of two words and the server's own voter id.
"""

from __future__ import annotations

import hmac
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from panel.cards import MAX_CARD_BYTES, SLUG_PATTERN, card_from_bytes
from panel.errors import InputError, validation_problem
from panel.parsing import ParseError, load_json
from panel.serve.desk import Desk
from panel.serve.guard import client_address, foreign_origin, json_body_expected, read_body

VOTE_BODY_BYTES = 1024
MAX_COMPARE = 20
"""Comparisons one submitted card may name."""
NO_STORE = {"cache-control": "no-store"}
SLUG = re.compile(SLUG_PATTERN)


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
    voted = await _desk(request).vote(vote.tool, voter, vote.verdict, client_address(request))
    if voted.wait > 0:
        seconds = max(1, round(voted.wait + 0.5))
        raise HTTPException(
            429,
            f"too many votes from your address: wait {seconds} s",
            {"retry-after": str(seconds)},
        )
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


async def get_tool(request: Request) -> Response:
    slug = request.path_params["slug"]
    found = None if not SLUG.match(slug) else await _desk(request).tool(slug, request.state.voter)
    if found is None:
        raise HTTPException(404, f"no tool {slug[:100]!r} on this site")
    return answer(found)


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
        queued = await _desk(request).submit(card, compare_with)
    except InputError as exc:
        raise HTTPException(422, str(exc)) from None
    return answer(queued, 202)


async def healthz(request: Request) -> Response:
    try:
        await _desk(request).healthy()
    except Exception as exc:  # the store is down: say so, do not crash the worker
        return answer({"ok": False, "error": type(exc).__name__}, 503)
    return answer({"ok": True})


async def http_error(request: Request, exc: Exception) -> Response:
    """Return an HTTPException as {"error": ...} (API) or a line of text (site)."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if request.url.path.startswith("/api/") or request.url.path == "/healthz":
        return answer({"error": exc.detail}, exc.status_code, headers)
    return PlainTextResponse(f"{exc.status_code} {exc.detail}\n", exc.status_code, headers)


ROUTES = [
    Route("/api/votes", post_vote, methods=["POST"]),
    Route("/api/tools/{slug}", get_tool, methods=["GET"]),
    Route("/api/cards", post_card, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
]
