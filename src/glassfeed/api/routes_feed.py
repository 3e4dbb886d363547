"""Feed routes: pages with explanations, why-panels, policies and their statements, preferences, muted words,
a person's own events, and data rights (export / delete). ``install(app)`` builds the FeedService."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StrictFloat

from glassfeed.api.auth import require_service_key, require_user_or_service
from glassfeed.api.routes_ingest import read_items
from glassfeed.api.schemas import (
    OwnEventIn,
    batch_body_schema,
    error_responses,
    event_item_schema,
    json_error_responses,
    object_response,
    string_patterns,
    whole_number,
)
from glassfeed.feed.policy import HEADS, Policy, describe
from glassfeed.feed.service import MAX_LIMIT, FeedError, FeedService
from glassfeed.feed.train import NotEnoughData
from glassfeed.ingest import IngestError, ItemError
from glassfeed.settings import packaged_settings


class JsonBodyRoute(APIRoute):
    """A route whose body is JSON whatever content type the client named, as ``/v1/events`` and the other ingest
    routes read theirs: ``curl -d`` sends ``application/x-www-form-urlencoded``, and FastAPI would otherwise
    refuse such a body with a 422 that does not say why. A body that is not JSON still gets a 400."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            is_json = ctype == "application/json" or ctype.endswith("+json")
            if request.method in ("POST", "PUT", "PATCH") and not is_json:
                headers = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"]
                scope = {**request.scope, "headers": [*headers, (b"content-type", b"application/json")]}
                request = Request(scope, request.receive)
            return await handler(request)

        return route


router = APIRouter(route_class=JsonBodyRoute)
_LIMITS = packaged_settings().ingest  # the documented defaults; the live limits are checked by the service


class FastJSON(Response):
    """orjson-encoded JSON: feed pages are large nested dicts, and FastAPI's generic encoder is slow on them."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def _svc(request: Request) -> FeedService:
    return request.app.state.feed


#: A person's topic choices: the rule of every topic name (``ingest.names_problem``).
_TOPICS: dict[str, Any] = {
    "maxItems": _LIMITS.max_list_items,
    "items": {"type": "string", "maxLength": _LIMITS.max_topic_chars, "pattern": string_patterns()["name"]},
}


class PrefsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is a 422 naming it, not silently ignored

    policy: str | None = Field(None, description="the feed to use by default")
    weights: dict[str, StrictFloat] | None = Field(
        None,
        description=f"head -> weight for ``policy`` (required with weights), within its bounds; heads: {HEADS}",
        json_schema_extra={"propertyNames": {"enum": list(HEADS)}},
    )
    topics_more: list[str] | None = Field(None, json_schema_extra=_TOPICS)
    topics_less: list[str] | None = Field(None, json_schema_extra=_TOPICS)
    daily_minutes: whole_number(0, packaged_settings().wellbeing.budget_min[1]) | None = Field(  # type: ignore[valid-type]
        None,
        description="a daily usage budget in minutes (0 removes it): past it, pages carry a stopping cue",
    )


class MutedWordsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    words: list[str] = Field(
        ...,
        json_schema_extra={
            "maxItems": _LIMITS.max_muted_words,
            "items": {
                "type": "string",
                "maxLength": _LIMITS.max_muted_word_chars,
                "pattern": string_patterns()["plain"],
            },
        },
    )


_USER = error_responses(401, 404)  # routes behind require_user_or_service


_PAGE = "a feed page: items (each with its explanation), cursor (absent at the end), policy, request id"


@router.get(
    "/v1/users/{user_id}/feed",
    tags=["feed"],
    response_class=FastJSON,
    responses={**object_response(_PAGE), **_USER, **error_responses(400)},
)
def get_feed(
    request: Request,
    user_id: str,
    policy: str | None = None,
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
    _: int = Depends(require_user_or_service),
) -> Response:
    """One page of the person's feed: every item says why it is there. Follow ``cursor`` for the next page;
    no cursor means the end ("you're all caught up")."""
    return FastJSON(_svc(request).feed(user_id, policy=policy, limit=limit, cursor=cursor))


@router.get(
    "/v1/feed",
    tags=["feed"],
    response_class=FastJSON,
    responses={**object_response(_PAGE), **error_responses(400, 429)},
)
def public_feed(
    request: Request, policy: str | None = None, limit: int = Query(50, ge=1, le=MAX_LIMIT), cursor: str | None = None
) -> Response:
    """The non-personalised feed (no account, no profiling of the reader)."""
    return FastJSON(_svc(request).feed(None, policy=policy, limit=limit, cursor=cursor))


@router.get(
    "/v1/users/{user_id}/feed/{post_id}/why",
    tags=["feed"],
    response_class=FastJSON,
    responses={**object_response("the breakdown of one served post"), **_USER},
)
def why(request: Request, user_id: str, post_id: str, _: int = Depends(require_user_or_service)) -> Response:
    """The full breakdown for a served post: source, head x weight contributions, adjustments."""
    return FastJSON(_svc(request).why(user_id, post_id))


@router.get("/v1/policies", tags=["policies"])
def policies(request: Request) -> dict[str, Any]:
    """Every policy the platform offers, as data."""
    return {"policies": [_policy_json(p) for p in _svc(request).policies.values()]}


@router.get("/v1/policies/{name}", tags=["policies"], responses=error_responses(404))
def policy(request: Request, name: str) -> dict[str, Any]:
    pol = _svc(request).policies.get(name)
    if pol is None:
        raise FeedError("policy", f"unknown policy {name!r}", 404)
    return {**_policy_json(pol), "statement": describe(pol, _svc(request).typical_contributions(pol.name))}


@router.get(
    "/v1/policies/{name}/statement",
    response_class=PlainTextResponse,
    tags=["policies"],
    responses=json_error_responses(404, 413, 422, 429),
)
def statement(request: Request, name: str) -> str:
    """The plain-language main-parameters statement (EU DSA Art. 27), generated from the policy file, its
    parameters ordered by their typical contribution to recently served scores (by weight size until measured)."""
    svc = _svc(request)
    pol = svc.policies.get(name)
    if pol is None:
        raise FeedError("policy", f"unknown policy {name!r}", 404)
    return describe(pol, svc.typical_contributions(pol.name))


@router.get("/v1/users/{user_id}/prefs", tags=["controls"], responses=_USER)
def get_prefs(request: Request, user_id: str, idx: int = Depends(require_user_or_service)) -> dict[str, Any]:
    svc = _svc(request)
    pol = svc.policy_for(idx, None)
    return {
        "prefs": dict(svc.state.feedback.prefs(idx)),
        "policy": pol.name,
        "weights": pol.weights,
        "bounds": {k: list(v) for k, v in pol.bounds.items()},
    }


@router.put("/v1/users/{user_id}/prefs", tags=["controls"], responses={**_USER, **error_responses(400)})
def put_prefs(
    request: Request, user_id: str, body: PrefsIn, _: int = Depends(require_user_or_service)
) -> dict[str, Any]:
    """Save the person's feed choices; weights outside the policy's bounds are refused with a 422."""
    prefs = _svc(request).save_prefs(
        user_id,
        policy=body.policy,
        weights=body.weights,
        topics_more=body.topics_more,
        topics_less=body.topics_less,
        daily_minutes=body.daily_minutes,
    )
    return {"prefs": prefs}


@router.get("/v1/users/{user_id}/muted-words", tags=["controls"], responses=_USER)
def get_muted(request: Request, user_id: str, idx: int = Depends(require_user_or_service)) -> dict[str, Any]:
    return {"words": _svc(request).state.feedback.muted_words(idx)}


@router.put("/v1/users/{user_id}/muted-words", tags=["controls"], responses={**_USER, **error_responses(400)})
def put_muted(
    request: Request, user_id: str, body: MutedWordsIn, _: int = Depends(require_user_or_service)
) -> dict[str, Any]:
    """Replace the person's muted words (case-insensitive substrings of post text)."""
    return {"words": request.app.state.ingestor.set_muted_words(user_id, body.words)}


@router.post(
    "/v1/users/{user_id}/events",
    tags=["feed"],
    responses={**_USER, **error_responses(400, 403)},
    openapi_extra=batch_body_schema(OwnEventIn, "events", _LIMITS.max_batch, event_item_schema(OwnEventIn)),
)
async def own_events(request: Request, user_id: str, _: int = Depends(require_user_or_service)) -> dict[str, Any]:
    """Events a person sends about themself (like, repost, see_less, ...) with their own token."""
    items = await read_items(request, "events")
    for i, ev in enumerate(items):
        if not isinstance(ev, dict):
            raise IngestError([ItemError(i, "", "must be an object")])
        if ev.get("user", user_id) != user_id:
            raise IngestError([ItemError(i, "user", "must be the path's user (or omitted)")], status=403)
        ev["user"] = user_id
    res = await run_in_threadpool(request.app.state.ingestor.ingest_events, items)
    return {"accepted": res.accepted, "duplicates": res.duplicates, "ids": res.ids}


@router.get(
    "/v1/users/{user_id}/data",
    tags=["data rights"],
    responses={**object_response("everything held and inferred about the person"), **_USER},
)
def export_data(request: Request, user_id: str, _: int = Depends(require_user_or_service)) -> JSONResponse:
    """Everything the engine holds and infers about the person, as a JSON download."""
    data = _svc(request).user_data(user_id)
    return JSONResponse(data, headers={"Content-Disposition": attachment(f"glassfeed-{user_id}.json")})


_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._@+:-]")


def attachment(filename: str) -> str:
    """An RFC 6266 ``Content-Disposition`` for a download named ``filename``, whatever its characters: the exact
    name as ``filename*=UTF-8''...`` (RFC 5987 percent-encoding, so no quote, ``;`` or control character reaches
    the header) and an ASCII ``filename`` fallback with every other character replaced by ``_``."""
    fallback = _UNSAFE_FILENAME.sub("_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.delete("/v1/users/{user_id}/data", tags=["data rights"], responses=_USER)
def delete_data(
    request: Request,
    user_id: str,
    posts: bool = Query(False, description="also erase the person's posts (kept as tombstones, dropped from feeds)"),
    _: int = Depends(require_user_or_service),
) -> dict[str, Any]:
    """Erase everything the person gave and everything derived from them: events, follows/blocks/mutes, muted
    words, preferences, the profile's handle, interests and community, inferred interests, affinities, the learned
    bridging side and collaborative factor (in memory and in the model files); with ``posts=true`` their posts
    too. ``deleted`` counts what changed; ``kept`` says what stays, and why."""
    return _svc(request).delete_user_data(user_id, posts=posts)


@router.post(
    "/v1/admin/train", tags=["admin"], dependencies=[Depends(require_service_key)], responses=error_responses(401, 409)
)
async def train(request: Request) -> dict[str, Any]:
    """Retrain every model from the store and swap it in."""
    try:
        report = await run_in_threadpool(_svc(request).retrain)
    except NotEnoughData as e:
        raise FeedError("store", str(e), 409) from None
    return {"table": report.table(), "seconds": report.seconds}


def _policy_json(p: Policy) -> dict[str, Any]:
    return {
        "name": p.name,
        "title": p.title,
        "summary": p.summary,
        "profiling": p.profiling,
        "ranker": p.ranker,
        "weights": p.weights,
        "bounds": {k: list(v) for k, v in p.bounds.items()},
        "sources": p.sources,
        "adjustments": p.adjustments.model_dump(),
        "filters": p.filters.model_dump(),
        "mixing": p.mixing.model_dump(),
        "fatigue": p.fatigue.model_dump(),
    }


def _feed_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FeedError)
    return JSONResponse(
        {"error": str(exc), "detail": [{"index": -1, "field": exc.field, "reason": exc.reason}]}, status_code=exc.status
    )


def _weights_schema(policies: dict[str, Policy]) -> list[dict[str, Any]]:
    """``PrefsIn`` alternatives: no weights, or weights for a named policy, each head within that policy's
    bounds (a policy without bounds takes none)."""
    out: list[dict[str, Any]] = [{"properties": {"weights": {"type": "null"}}}]
    for name, pol in sorted(policies.items()):
        heads = {h: {"type": "number", "minimum": lo, "maximum": hi} for h, (lo, hi) in pol.bounds.items()}
        weights = {"type": "object", "properties": heads, "additionalProperties": False}
        out.append({"required": ["policy", "weights"], "properties": {"policy": {"const": name}, "weights": weights}})
    return out


def _document_policies(app: FastAPI, policies: dict[str, Policy]) -> None:
    """Make ``app.openapi()`` list the served policies' names as the enum of every ``policy`` query parameter
    and of ``PrefsIn.policy`` (any other name is refused with a 400), and each policy's weight bounds."""
    base = app.openapi
    names = sorted(policies)
    enum = {"type": "string", "enum": names}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = base()  # generates and caches app.openapi_schema
        for ops in spec.get("paths", {}).values():
            for op in ops.values():
                for param in op.get("parameters", []):
                    if param["name"] == "policy" and param["in"] == "query":
                        param["schema"] = {**enum, "title": "Policy"}
        prefs = spec.get("components", {}).get("schemas", {}).get("PrefsIn")
        if prefs is not None:
            prefs["properties"]["policy"]["anyOf"] = [enum, {"type": "null"}]
            prefs["anyOf"] = _weights_schema(policies)
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    """Build the FeedService over the app's store and settings, and add the feed routes."""
    app.state.feed = FeedService(
        app.state.ingestor, app.state.settings, compile_trees=app.state.settings.serving.compiled_trees
    )
    app.add_exception_handler(FeedError, _feed_error)
    app.include_router(router)
    _document_policies(app, app.state.feed.policies)
