""" "People you may know" routes: a person's suggestions (each with its reasons), the suggestion policies in plain
words, and the person's uploaded-contacts choice (hashes only; used only where both people opted in).
``install(app)`` builds the SuggestionService beside the FeedService (docs/suggestions.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from glassfeed.api.auth import require_user_or_service
from glassfeed.api.routes_feed import JsonBodyRoute
from glassfeed.api.schemas import error_responses
from glassfeed.suggest.policy import describe
from glassfeed.suggest.service import SuggestionError, SuggestionService

router = APIRouter(route_class=JsonBodyRoute)
_ERR = error_responses(401, 404, 422)
#: The most hashes one upload may hold (own identifiers; contacts).
MAX_OWN, MAX_CONTACTS = 20, 5000
_HASH = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def _svc(request: Request) -> SuggestionService:
    return request.app.state.suggestions


class ContactsIn(BaseModel):
    """A person's uploaded contacts: SHA-256 hex of each trimmed, lower-cased phone number or e-mail address
    (``suggest.graph.contact_hash``). ``own``: the person's own; ``hashes``: their contacts'. Only people who both
    opted in are matched; ``opt_in: false`` deletes both lists."""

    model_config = ConfigDict(extra="forbid")
    opt_in: StrictBool
    own: list[_HASH] = Field(default_factory=list, max_length=MAX_OWN)
    hashes: list[_HASH] = Field(default_factory=list, max_length=MAX_CONTACTS)


@router.get("/v1/users/{user_id}/suggestions", tags=["suggestions"], responses=_ERR)
def suggestions(
    request: Request,
    user_id: str,
    limit: int | None = Query(None, ge=1, le=1000, description="how many (at most the policy's max_limit)"),
    policy: str | None = Query(None, max_length=64, description="a suggestion policy (default: growth)"),
    _: int = Depends(require_user_or_service),
) -> dict[str, Any]:
    """People you may know, best first: each with the reasons in words, the generators that found them and the
    feature values the ranking read. Never the person, accounts they follow, block or mute, or accounts that block
    them; contacts only where both people opted in."""
    return _svc(request).suggest(user_id, policy=policy, limit=limit)


@router.get("/v1/suggestion-policies", tags=["suggestions"])
def suggestion_policies(request: Request) -> dict[str, Any]:
    """Every suggestion policy, as data and in plain words."""
    return {"policies": [{**p.model_dump(), "statement": describe(p)} for p in _svc(request).policies.values()]}


@router.get("/v1/users/{user_id}/contacts", tags=["suggestions"], responses=error_responses(401, 404))
def get_contacts(request: Request, user_id: str, idx: int = Depends(require_user_or_service)) -> dict[str, Any]:
    """Whether the person opted in to contact matching, and how many hashes they uploaded."""
    return _svc(request).contacts(idx)


@router.put("/v1/users/{user_id}/contacts", tags=["suggestions"], responses=error_responses(400, 401, 404, 422))
def put_contacts(
    request: Request, user_id: str, body: ContactsIn, _: int = Depends(require_user_or_service)
) -> dict[str, Any]:
    """Opt in (with hashes) or out (deleting them) of suggestions from uploaded contacts."""
    return _svc(request).set_contacts(user_id, body.opt_in, list(body.own), list(body.hashes))


def _suggestion_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SuggestionError)
    return JSONResponse(
        {"error": str(exc), "detail": [{"index": -1, "field": exc.field, "reason": exc.reason}]}, status_code=exc.status
    )


def _document_policies(app: FastAPI, names: list[str]) -> None:
    """The suggestions route's ``policy`` parameter lists the suggestion policies (the feed's documentation sets
    every ``policy`` query parameter to the feed policies; this runs after it)."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = base()
        op = spec.get("paths", {}).get("/v1/users/{user_id}/suggestions", {}).get("get", {})
        for param in op.get("parameters", []):
            if param["name"] == "policy":
                param["schema"] = {"anyOf": [{"type": "string", "enum": names}, {"type": "null"}], "title": "Policy"}
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    """After ``routes_feed.install``: the SuggestionService reads the FeedService's state."""
    app.state.suggestions = SuggestionService(app.state.feed)
    app.add_exception_handler(SuggestionError, _suggestion_error)
    app.include_router(router)
    _document_policies(app, sorted(app.state.suggestions.policies))


__all__ = ["install", "router"]
