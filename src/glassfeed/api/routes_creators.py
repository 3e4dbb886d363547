"""Creator analytics routes, "why did my post travel": an author's own numbers, behind the author's token or the
service key (``require_user_or_service``: another person's token is refused with 401, as on every per-person
route; a post of someone else's is refused with 403). ``install(app)`` builds the CreatorService beside the
FeedService (docs/creators.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse

from glassfeed.api.auth import require_user_or_service
from glassfeed.api.routes_feed import FastJSON
from glassfeed.api.schemas import error_responses, object_response
from glassfeed.creators.service import CreatorError, CreatorService
from glassfeed.settings import CreatorBucket

router = APIRouter()
_DAYS = Query(ge=1, description="the window, in days up to now (default and most: [creators] default_days, max_days)")
_BUCKET = Query(description="the time series' bucket (default: [creators] default_bucket)")


def _svc(request: Request) -> CreatorService:
    return request.app.state.creators


@router.get(
    "/v1/users/{user_id}/creator",
    tags=["creators"],
    response_class=FastJSON,
    responses={
        **object_response("the person's posts with their split by channel and policy, series and follower growth"),
        **error_responses(401, 404, 422),
    },
)
def creator(
    request: Request,
    user_id: str,
    days: Annotated[int | None, _DAYS] = None,
    bucket: Annotated[CreatorBucket | None, _BUCKET] = None,
    idx: int = Depends(require_user_or_service),
) -> FastJSON:
    """The person's posts in the window (newest first), each with its impressions, people reached and engagements
    split by how it reached them (the candidate source that placed it on the page, a notification, or unrecorded)
    and by the feed policy that ranked the page, and a summary in words; the same split over time for all their
    posts, and their follower growth."""
    return FastJSON(_svc(request).overview(idx, days, bucket))


@router.get(
    "/v1/users/{user_id}/creator/posts/{post_id}",
    tags=["creators"],
    response_class=FastJSON,
    responses={
        **object_response("one post's split by channel and policy, engagements, series and why it travelled"),
        **error_responses(401, 403, 404, 422),
    },
)
def creator_post(
    request: Request,
    user_id: str,
    post_id: str,
    days: Annotated[int | None, _DAYS] = None,
    bucket: Annotated[CreatorBucket | None, _BUCKET] = None,
    idx: int = Depends(require_user_or_service),
) -> FastJSON:
    """One of the person's posts: its split by channel and policy, the (channel, policy) pairs, engagements by kind,
    its series, and why it travelled in words. Another person's post: 403."""
    return FastJSON(_svc(request).post(idx, post_id, days, bucket))


def _creator_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CreatorError)
    return JSONResponse(
        {"error": str(exc), "detail": [{"index": -1, "field": exc.field, "reason": exc.reason}]}, status_code=exc.status
    )


def install(app: FastAPI) -> None:
    """After ``routes_feed.install``: the CreatorService reads the FeedService's store, state and clock."""
    app.state.creators = CreatorService(app.state.feed)
    app.add_exception_handler(CreatorError, _creator_error)
    app.include_router(router)


__all__ = ["install", "router"]
