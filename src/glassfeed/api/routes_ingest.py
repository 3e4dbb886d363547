"""Write endpoints (users, posts, events, follows) and small reads (user, stats, health).

Bodies are parsed with orjson straight from the request bytes and validated by the Ingestor, so a
10,000-event batch costs one column-by-column parse, vectorised checks and one durable transaction.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from glassfeed.api import schemas as s
from glassfeed.api.auth import require_service_key, require_user_or_service
from glassfeed.domain import EventKind
from glassfeed.ingest import IngestError, Ingestor, ItemError
from glassfeed.settings import packaged_settings
from glassfeed.store import UserSummary

router = APIRouter()
_MAX = packaged_settings().ingest.max_batch  # the documented default; the live limit is settings.ingest


def _ingestor(request: Request) -> Ingestor:
    return request.app.state.ingestor


async def read_items(request: Request, key: str) -> list[Any]:
    """Parse the body as one item, a list, or ``{key: [...]}``; 400 on malformed JSON, 413 when too large."""
    body = await request.body()
    if not body.strip():
        raise IngestError([ItemError(-1, "body", "empty body; expected JSON")], status=400)
    try:
        data = await run_in_threadpool(orjson.loads, body)  # a 10 MB batch takes ~100 ms: not on the event loop
    except orjson.JSONDecodeError as e:
        raise IngestError([ItemError(-1, "body", f"malformed JSON: {e}")], status=400) from None
    if isinstance(data, dict) and key in data:
        if extra := sorted(set(data) - {key}):
            raise IngestError([ItemError(-1, extra[0], f"unknown field beside {key!r}")])
        data = data[key]
        if not isinstance(data, list):
            raise IngestError([ItemError(-1, key, "must be an array")])
    elif isinstance(data, dict):
        data = [data]
    elif not isinstance(data, list):
        raise IngestError([ItemError(-1, "body", f"must be an object, an array or {{{key!r}: [...]}}")])
    limit = request.app.state.settings.ingest.max_batch
    if len(data) > limit:
        raise IngestError([ItemError(-1, key, f"batch of {len(data)} exceeds the limit of {limit}")], status=413)
    if not data:
        raise IngestError([ItemError(-1, key, "empty batch")])
    return data


@router.post(
    "/v1/users",
    status_code=201,
    response_model=s.UsersOut,
    tags=["ingest"],
    dependencies=[Depends(require_service_key)],
    responses=s.ERROR_RESPONSES,
    openapi_extra=s.batch_body_schema(s.UserIn, "users", _MAX),
)
async def create_users(request: Request) -> dict[str, Any]:
    """Create users (one, a list, or ``{"users": [...]}``); each gets a read token, shown only here."""
    items = await read_items(request, "users")
    out = await run_in_threadpool(_ingestor(request).create_users, items)
    return {"users": out}


@router.post(
    "/v1/posts",
    status_code=201,
    response_model=s.PostsOut,
    tags=["ingest"],
    dependencies=[Depends(require_service_key)],
    responses=s.ERROR_RESPONSES,
    openapi_extra=s.batch_body_schema(s.PostIn, "posts", _MAX),
)
async def create_posts(request: Request) -> dict[str, Any]:
    """Create posts; hashtags in the text become topics. Authors and reply/quote targets must exist."""
    items = await read_items(request, "posts")
    out = await run_in_threadpool(_ingestor(request).create_posts, items)
    return {"posts": out}


async def _ingest(request: Request, items: list[Any]) -> dict[str, Any]:
    return asdict(await run_in_threadpool(_ingestor(request).ingest_events, items))


@router.post(
    "/v1/events",
    response_model=s.EventsOut,
    tags=["ingest"],
    dependencies=[Depends(require_service_key)],
    responses=s.ERROR_RESPONSES,
    openapi_extra=s.batch_body_schema(s.EventIn, "events", _MAX, s.event_item_schema(s.EventIn)),
)
async def ingest_events(request: Request) -> dict[str, Any]:
    """Append up to 10,000 events, all-or-nothing: one bad item rejects the batch and nothing is written.
    The answer comes after a durable commit; events whose ``id`` was already stored count as duplicates."""
    return await _ingest(request, await read_items(request, "events"))


@router.post(
    "/v1/follows",
    response_model=s.EventsOut,
    tags=["ingest"],
    dependencies=[Depends(require_service_key)],
    responses=s.ERROR_RESPONSES,
    openapi_extra=s.batch_body_schema(s.FollowIn, "follows", _MAX),
)
async def follow(request: Request) -> dict[str, Any]:
    """Convenience: ``{user, target}`` pairs become ``follow`` events (same rules as /v1/events)."""
    items = await read_items(request, "follows")
    events: list[Any] = []
    for i, f in enumerate(items):
        if not isinstance(f, dict):
            raise IngestError([ItemError(i, "", "must be an object")])
        extra = f.keys() - {"user", "target", "ts", "id"}
        if extra:
            raise IngestError([ItemError(i, sorted(extra)[0], "unknown field")])
        if "target" not in f:
            raise IngestError([ItemError(i, "target", "required")])
        ev = {"kind": EventKind.FOLLOW.wire, "user": f.get("user"), "target_user": f["target"]}
        ev.update({k: f[k] for k in ("ts", "id") if k in f})
        events.append(ev)
    try:
        return await _ingest(request, events)
    except IngestError as e:  # name the follow fields, not the event fields
        raise IngestError(
            [ItemError(x.index, "target" if x.field == "target_user" else x.field, x.reason) for x in e.errors],
            e.status,
        ) from None


@router.get("/v1/users/{user_id}", response_model=UserSummary, tags=["read"], responses=s.ERROR_RESPONSES)
def get_user(request: Request, user_id: str, idx: int = Depends(require_user_or_service)) -> UserSummary:
    """A user's profile and counts (needs that user's token or the service key)."""
    summary = request.app.state.store.user_summary(idx)
    assert summary is not None  # require_user_or_service resolved the id, and user rows are never deleted
    return summary


@router.get("/v1/stats", response_model=s.StatsOut, tags=["read"])
def stats(request: Request) -> dict[str, Any]:
    """Aggregate counts (public: no per-user data)."""
    store = request.app.state.store
    return {
        "users": store.count("users"),
        "posts": store.count("posts"),
        "events": store.count("events"),
        "follows": store.count("follows"),
        "max_seq": store.max_seq(),
        "schema_version": store.schema_version,
    }


@router.get("/healthz", tags=["read"])
def healthz(request: Request) -> dict[str, Any]:
    """Liveness: the store answers."""
    return {"ok": True, "max_seq": request.app.state.store.max_seq()}
